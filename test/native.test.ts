/**
 * The native addon and the `cpu` backend: the capability report, threads, the clean
 * unavailable path (no addon, no cmake), and that the addon's own argument checks throw
 * JS errors rather than crash.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { backends, gelu, getNumThreads, linear, matmul, nativeCapabilities, randn, relu, setNumThreads, silu, tidy, type Tensor } from '../src/index.js';
import { expectClose } from './harness.js';

const root = join(import.meta.dirname, '..');
const cpu = backends().find((b) => b.name === 'cpu')!;

test('the cpu backend is registered, and says why when it is unavailable', () => {
  expect(cpu).toBeDefined();
  expect(cpu.priority).toBeGreaterThan(backends().find((b) => b.name === 'ref')!.priority);
  if (!cpu.available) {
    console.warn(`[kiln tests] cpu backend unavailable: ${cpu.reason}`);
    expect(cpu.reason).toMatch(/native addon/);
  }
});

function runKiln(env: Record<string, string>): string {
  const code = "import('./src/index.ts').then((k) => console.log(JSON.stringify(k.backends())))";
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], { cwd: root, env: { ...process.env, ...env }, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

test('without the addon kiln runs on ref, and backends() says why cpu is unavailable', () => {
  const list = JSON.parse(runKiln({ KILN_DISABLE_NATIVE: '1' })) as { name: string; available: boolean; reason: string }[];
  const c = list.find((b) => b.name === 'cpu')!;
  expect(c.available).toBe(false);
  expect(c.reason).toBe('disabled by KILN_DISABLE_NATIVE=1');
  expect(list.find((b) => b.available)!.name).toBe('ref');
});

test('a missing build is reported with the reason the build script recorded', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-nobuild-'));
  try {
    // the build script without cmake on PATH: one warning, exit 0, the reason recorded
    const out = join(dir, 'out');
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs')], {
      cwd: root,
      env: { ...process.env, PATH: '/nonexistent', KILN_NATIVE_BUILD: out },
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/WARNING: the native addon was not built \(cmake was not found on PATH\)/);
    const status = JSON.parse(readFileSync(join(out, 'kiln-status.json'), 'utf8')) as { ok: boolean; reason: string };
    expect(status).toMatchObject({ ok: false, reason: 'cmake was not found on PATH' });
    const list = JSON.parse(runKiln({ KILN_NATIVE_BUILD: out })) as { name: string; available: boolean; reason: string }[];
    expect(list.find((b) => b.name === 'cpu')!.reason).toBe('the native addon was not built: cmake was not found on PATH');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe.skipIf(!cpu.available)(`cpu backend${cpu.available ? '' : `: unavailable, ${cpu.reason}`}`, () => {
  test('capabilities name the kernel table and report CUDA cleanly', () => {
    const caps = nativeCapabilities();
    if ('unavailable' in caps) throw new Error(caps.unavailable);
    expect(['avx512', 'avx2', 'base']).toContain(caps.isa);
    expect(caps.threads).toBeGreaterThanOrEqual(1);
    expect(typeof caps.cuda.compiled).toBe('boolean');
    // without a driver or device, CUDA is "no device" with the runtime's reason, never a crash
    if (caps.cuda.devices === 0 && caps.cuda.compiled) expect(caps.cuda.error).toMatch(/cudaGetDeviceCount|no CUDA device/);
  });

  test('setNumThreads resizes the pool, and a matmul gives the same result on 1, 2 and 3 threads', async () => {
    const before = getNumThreads();
    expect(before).toBeGreaterThanOrEqual(1);
    const [a, b] = tidy((): [Tensor, Tensor] => [randn([200, 150], { backend: 'cpu' }), randn([150, 170], { backend: 'cpu' })]);
    try {
      // each product is read before the thread count changes again
      const runs: number[][] = [];
      for (const n of [1, 2, 3]) {
        setNumThreads(n);
        expect(getNumThreads()).toBe(n);
        const c = matmul(a, b);
        try {
          runs.push(Array.from(await c.data()));
        } finally {
          c.dispose();
        }
      }
      expectClose(runs[1]!, runs[0]!, { rtol: 1e-5, atol: 1e-5 });
      expectClose(runs[2]!, runs[0]!, { rtol: 1e-5, atol: 1e-5 });
    } finally {
      a.dispose();
      b.dispose();
    }
    setNumThreads(before);
    expect(() => setNumThreads(0)).toThrow(/^setNumThreads: /);
  });

  test('each instruction set exports only its table: no inline or template code is shared across ISAs', () => {
    const dir = resolve(root, process.env.KILN_NATIVE_BUILD ?? 'build');
    const nm = spawnSync('nm', ['--version'], { encoding: 'utf8' });
    if (nm.status !== 0) {
      console.warn('[kiln tests] nm not found: ISA symbol check skipped');
      return;
    }
    for (const isa of ['avx512', 'avx2', 'base']) {
      const r = spawnSync('nm', ['-C', '--defined-only', join(dir, `kiln_isa_${isa}_merged.o`)], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const globals = r.stdout.split('\n').filter((l) => / [A-Z] /.test(l)).map((l) => l.slice(l.indexOf(' ', 17) + 1));
      expect(globals).toEqual([`kiln::${isa}::table()`]);
    }
  });

  test('the fused bias + activation epilogue of matmul equals linear then the activation on ref', async () => {
    const k = loadAddonFile(resolve(root, process.env.KILN_NATIVE_BUILD ?? 'build', 'Release', 'kiln.node'));
    const acts: [number, (t: Tensor) => Tensor][] = [
      [0, (t) => t],
      [1, relu],
      [2, (t) => gelu(t)],
      [3, (t) => gelu(t, { approximate: 'tanh' })],
      [4, silu],
    ];
    const [m, n, kk] = [37, 53, 29];
    const a = randn([m, kk], { backend: 'ref' });
    const w = randn([n, kk], { backend: 'ref' });
    const bias = randn([n], { backend: 'ref' });
    const buf = async (t: Tensor): Promise<ArrayBuffer> => {
      const b = k.alloc!(t.size * 4) as ArrayBuffer;
      new Float32Array(b).set((await t.data()) as Float32Array);
      return b;
    };
    for (const [act, f] of acts) {
      const out = k.alloc!(m * n * 4) as ArrayBuffer;
      // out = a @ wᵀ + bias, then the activation, in the kernel's epilogue
      k.matmul!(await buf(a), await buf(w), out, await buf(bias), 0, [], [], [], m, n, kk, false, true, act);
      const want = f(linear(a, w, bias));
      expectClose(new Float32Array(out), await want.data(), { rtol: 1e-4, atol: 1e-5 }, `act ${act}`);
    }
  });

  test('the addon itself throws JS errors for bad arguments, never aborts', () => {
    const file = resolve(root, process.env.KILN_NATIVE_BUILD ?? 'build', 'Release', 'kiln.node');
    const k = loadAddonFile(file);
    expect(() => k.fill!('not a buffer', 0, 4, 1)).toThrow(/kiln native: /);
    expect(() => k.alloc!(-1)).toThrow(/kiln native: alloc: bad size/);
    const buf = k.alloc!(16) as ArrayBuffer;
    k.free!(buf);
    k.free!(buf); // twice is harmless
    expect(() => k.fill!(buf, 0, 4, 1)).toThrow(/freed storage|not in this build/);
    expect(() => k.copy!(k.alloc!(16), 0, k.alloc!(16), 0, 0, new Array(17).fill(1), new Array(17).fill(1), new Array(17).fill(1))).toThrow(/exceeds 16/);
    expect(() => k.binary!(0, k.alloc!(4), k.alloc!(4), k.alloc!(4), 0, [1], [1], [1, 1])).toThrow(/rank/);
  });
});

function loadAddonFile(file: string): Record<string, (...a: unknown[]) => unknown> {
  const m = { exports: {} as Record<string, (...a: unknown[]) => unknown> };
  process.dlopen(m, file);
  return m.exports;
}
