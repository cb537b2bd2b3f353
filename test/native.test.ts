/**
 * The native addon and the `cpu` backend: the capability report, threads, the clean
 * unavailable path (no addon, no cmake), that the generated bindings check every argument
 * (storage sizes, freed buffers, dtype and enum codes, arity) and throw JS errors rather than
 * crash, and that the faulting kernels report faults instead of following bad data.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { backends, gelu, getBackend, getNumThreads, linear, matmul, nativeCapabilities, randn, relu, setNumThreads, silu, tidy, type Tensor } from '../src/index.js';
import { CpuBackend } from '../src/backend/cpu/cpu.js';
import { loadAddon } from '../src/backend/cpu/addon.js';
import type { Storage } from '../src/backend/backend.js';
import { KERNEL_FAMILIES } from '../src/backend/ops.gen.js';
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
  // the default (what tensors use when no backend is named) is ref; webgpu, where its package is
  // installed, is listed as available until a device is requested, and is never the default unasked
  const code = "import('./src/index.ts').then((k) => console.log(k.defaultBackendName()))";
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], { cwd: root, env: { ...process.env, KILN_DISABLE_NATIVE: '1' }, encoding: 'utf8' });
  expect(r.stdout.trim(), r.stderr).toBe('ref');
  expect(list.find((b) => b.name === 'ref')!.available).toBe(true);
});

test('a missing build is reported with the reason the build script recorded', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-nobuild-'));
  try {
    // the build script without cmake on PATH: one warning, exit 0, the reason recorded
    const out = join(dir, 'out');
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs')], {
      cwd: root,
      env: { ...process.env, PATH: '/nonexistent', KILN_NATIVE_BUILD: out, KILN_NO_PREBUILT: '1' },
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/WARNING: the native addon was not built \(cmake was not found on PATH\)/);
    const status = JSON.parse(readFileSync(join(out, 'kiln-status.json'), 'utf8')) as { ok: boolean; reason: string };
    expect(status).toMatchObject({ ok: false, reason: 'cmake was not found on PATH' });
    const list = JSON.parse(runKiln({ KILN_NATIVE_BUILD: out, KILN_NO_PREBUILT: '1' })) as { name: string; available: boolean; reason: string }[];
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

  test('the caching allocator reuses freed buffers by size and, when full, drops the sizes freed longest ago', () => {
    const addon = loadAddon();
    if ('unavailable' in addon) throw new Error(addon.unavailable);
    const KB64 = 65536;
    const be = new CpuBackend(addon, { cacheLimit: 3 * KB64 });
    const buf = (s: Storage): ArrayBuffer => (s as unknown as { buf: ArrayBuffer }).buf;
    const a = be.alloc('f32', KB64 / 4); // one 64 KiB buffer
    const first = buf(a);
    be.free(a);
    expect(be.cacheBytes).toBe(KB64);
    const b = be.alloc('i32', KB64 / 4 - 5); // the same size class: the same memory again
    expect(buf(b)).toBe(first);
    expect(be.cacheBytes).toBe(0);
    // sizes freed in the order 64, 128 KiB, then 64 KiB again (most recent): the cache holds 192 KiB
    const c = be.alloc('f32', (2 * KB64) / 4);
    be.free(b);
    be.free(c);
    expect(be.cacheBytes).toBe(3 * KB64);
    const d = be.alloc('f32', KB64 / 4);
    be.free(d); // 64 KiB is now the newest size
    const e = be.alloc('f32', (2 * KB64) / 4);
    const eBuf = buf(e);
    be.free(e); // then 128 KiB
    // a new size that needs room: the 64 KiB buffer (freed before the 128 KiB one) goes, and only it
    const f = be.alloc('f32', (KB64 - 4096) / 4); // a 60 KiB class
    be.free(f);
    expect(be.cacheBytes).toBe(2 * KB64 + KB64 - 4096);
    expect(buf(be.alloc('f32', (2 * KB64) / 4))).toBe(eBuf); // the most recent sizes stayed
    // a buffer larger than the whole cache is released at once
    be.free(be.alloc('f32', KB64));
    expect(be.cacheBytes).toBeLessThanOrEqual(3 * KB64);
    be.emptyCache();
    expect(be.cacheBytes).toBe(0);
  });

  test('the bf16 matmul kernel is the one KILN_CPU_BF16_MATMUL asks for (avx512 table), else the CPU default', () => {
    const caps = nativeCapabilities();
    if ('unavailable' in caps) throw new Error(caps.unavailable);
    const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
    const want = process.env.KILN_CPU_BF16_MATMUL;
    if (caps.isa !== 'avx512') {
      expect(caps.bf16Matmul).toBe('f32'); // the avx2 and base tables convert to f32 while packing
    } else if (want) {
      // asked for amx on a CPU without it, this fails: CI asks only where cpuinfo lists amx_bf16
      expect(caps.bf16Matmul).toBe(want);
    } else {
      const amx = /\bamx_bf16\b/.test(cpuinfo) && /\bamx_tile\b/.test(cpuinfo);
      const amd = /AuthenticAMD/.test(cpuinfo);
      expect(caps.bf16Matmul).toBe(amx ? 'amx' : amd ? 'dpbf16' : 'f32');
    }
  });

  test('computes() is what the running kernel table reports: every family f32/f64, matmul also bf16 and f16', async () => {
    const caps = nativeCapabilities();
    if ('unavailable' in caps) throw new Error(caps.unavailable);
    const be = await getBackend('cpu');
    for (const family of KERNEL_FAMILIES) {
      expect(caps.computes[family], family).toEqual(expect.arrayContaining(['f32', 'f64']));
      for (const dtype of ['f32', 'f64', 'i32', 'bf16', 'f16', 'bool'] as const) expect(be.computes(family, dtype), `${family} ${dtype}`).toBe(caps.computes[family]!.includes(dtype));
    }
    // every table (avx512: bf16 by AMX or vdpbf16ps where they pay; avx2 and base: converted to f32 while packing)
    expect(caps.computes.matmul).toEqual(['f32', 'f64', 'bf16', 'f16']);
    expect(caps.computes.attention).toEqual(['f32', 'f64']);
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
      // out = a @ wᵀ + bias, then the activation, in the kernel's epilogue (storages as handle, size, dtype code)
      k.matmul!(await buf(a), m * kk, 0, await buf(w), n * kk, 0, out, m * n, 0, await buf(bias), n, 0, [], [], [], m, n, kk, false, true, act, false, null, 0, 0);
      const want = f(linear(a, w, bias));
      expectClose(new Float32Array(out), await want.data(), { rtol: 1e-4, atol: 1e-5 }, `act ${act}`);
    }
  });

  test('the addon itself throws JS errors for bad arguments, never aborts', () => {
    const file = resolve(root, process.env.KILN_NATIVE_BUILD ?? 'build', 'Release', 'kiln.node');
    const k = loadAddonFile(file);
    const F32 = 0;
    const F64 = 1;
    expect(() => k.alloc!(-1)).toThrow(/^kiln native: alloc: bad size/);
    const b16 = k.alloc!(16) as ArrayBuffer; // 4 f32 or 2 f64
    // storages: (handle, element count, dtype code), checked before any native code runs
    expect(() => k.fill!('not a buffer', 4, F32, 1)).toThrow(/^kiln native: fill: argument 0 must be a storage/);
    expect(() => k.fill!(b16, 5, F32, 1)).toThrow(/^kiln native: fill: argument 0: 5 f32 elements do not fit its buffer of 16 bytes/);
    expect(() => k.fill!(b16, 3, F64, 1)).toThrow(/argument 0: 3 f64 elements do not fit/);
    expect(() => k.fill!(b16, -1, F32, 1)).toThrow(/argument 0: a storage cannot have -1 elements/);
    expect(() => k.fill!(b16, 2.5, F32, 1)).toThrow(/argument 0's size must be an integer/);
    expect(() => k.fill!(null, 4, F32, 1)).toThrow(/argument 0 is null but claims 4 elements/);
    expect(() => k.fill!(b16, 4, 6, 1)).toThrow(/argument 0's dtype: code 6 is not in \[0, 6\)/);
    expect(() => k.fill!(b16, 4, -1, 1)).toThrow(/argument 0's dtype: code -1/);
    k.fill!(b16, 4, F32, 1.5);
    expect(Array.from(new Float32Array(b16))).toEqual([1.5, 1.5, 1.5, 1.5]);
    // a freed storage is a detached buffer
    const freed = k.alloc!(16) as ArrayBuffer;
    k.free!(freed);
    k.free!(freed); // twice is harmless
    expect(() => k.fill!(freed, 4, F32, 1)).toThrow(/argument 0 is a freed storage/);
    expect(() => k.fill!(freed, 0, F32, 1)).toThrow(/argument 0 is a freed storage/);
    // arity, enum codes, numbers, flags, shapes
    expect(() => k.fill!(b16, 4, F32)).toThrow(/^kiln native: fill: expected 4 arguments, got 3/);
    expect(() => k.fill!(b16, 4, F32, 1, 2)).toThrow(/expected 4 arguments, got 5/);
    expect(() => k.fill!(b16, 4, F32, '1')).toThrow(/argument 3 must be a number/);
    expect(() => k.unary!(20, b16, 4, F32, b16, 4, F32)).toThrow(/^kiln native: unary: argument 0: code 20 is not in \[0, 20\)/);
    expect(() => k.softmax!(b16, 4, F32, b16, 4, F32, 1, 4, 0)).toThrow(/argument 8 must be a boolean/);
    expect(() => k.random!(b16, 4, F32, 0, 0, 1, 0.5, 0)).toThrow(/argument 6 must be an integer, got 0.5/);
    const rank17 = new Array(17).fill(1);
    expect(() => k.copy!(b16, 4, F32, 0, rank17, b16, 4, F32, 0, rank17, rank17)).toThrow(/argument 4: rank 17 exceeds 16/);
    expect(() => k.copy!(b16, 4, F32, 0, [1], b16, 4, F32, 0, [1], ['x'])).toThrow(/argument 10\[0\] must be a number/);
    // storage lists: three arrays of one length, every storage checked
    const out = k.alloc!(8) as ArrayBuffer;
    expect(() => k.multiNorm!([b16], [4, 4], [F32], 2, out, 2, F32)).toThrow(/argument 0: 1 storages but 2 sizes and 1 dtypes/);
    expect(() => k.multiNorm!([b16, b16], [4, 8], [F32, F32], 2, out, 2, F32)).toThrow(/argument 0\[1\]: 8 f32 elements do not fit/);
    expect(() => k.multiNorm!([b16, freed], [4, 4], [F32, F32], 2, out, 2, F32)).toThrow(/argument 0\[1\] is a freed storage/);
    k.multiNorm!([b16, b16], [4, 1], [F32, F32], 2, out, 2, F32);
    expect(Array.from(new Float32Array(out))).toEqual([3, 1.5]); // ‖[1.5 ×4]‖ = 3, ‖[1.5]‖ = 1.5
  });

  test('index kernels never follow a bad index, whatever its value, and report the first as a fault', () => {
    const k = loadAddonFile(resolve(root, process.env.KILN_NATIVE_BUILD ?? 'build', 'Release', 'kiln.node'));
    const I32 = 2;
    const F32 = 0;
    const n = 6;
    const x = k.alloc!(3 * 4) as ArrayBuffer; // x [3] f32
    new Float32Array(x).set([10, 20, 30]);
    const index = k.alloc!(n * 4) as ArrayBuffer;
    new Int32Array(index).set([2, 2 ** 31 - 1, 0, -(2 ** 31), 3, 1]);
    const out = k.alloc!(n * 4) as ArrayBuffer;
    new Float32Array(out).fill(-1);
    // gather: out[j] = x[index[j]] over [outer 1, n, inner 1]; bad indices give 0, the first is reported
    expect(k.gather!(x, 3, F32, out, n, F32, index, n, I32, [0, 1, 0], 1, 3, n, 1)).toEqual([1, 2 ** 31 - 1, 3]);
    expect(Array.from(new Float32Array(out))).toEqual([30, 0, 10, 0, 0, 20]);
    // scatterAdd: dst[index[j]] += src[j]; bad indices are skipped
    const dst = k.alloc!(3 * 4) as ArrayBuffer;
    new Float32Array(dst).fill(0);
    const src = k.alloc!(n * 4) as ArrayBuffer;
    new Float32Array(src).set([1, 2, 3, 4, 5, 6]);
    expect(k.scatterAdd!(dst, 3, F32, src, n, F32, index, n, I32, [0, 1, 0], 1, 3, n, 1)).toEqual([1, 2 ** 31 - 1, 3]);
    expect(Array.from(new Float32Array(dst))).toEqual([3, 6, 1]);
    // no bad index: no fault
    new Int32Array(index).set([0, 1, 2, 0, 1, 2]);
    expect(k.gather!(x, 3, F32, out, n, F32, index, n, I32, [0, 1, 0], 1, 3, n, 1)).toBeNull();
  });

  test('check reports the value of the first failing element exactly, integer or float', () => {
    const k = loadAddonFile(resolve(root, process.env.KILN_NATIVE_BUILD ?? 'build', 'Release', 'kiln.node'));
    const [F32, F64, I32, BOOL] = [0, 1, 2, 5];
    const cond = k.alloc!(4) as ArrayBuffer;
    new Uint8Array(cond).set([1, 0, 1, 0]);
    const f32 = k.alloc!(16) as ArrayBuffer;
    new Float32Array(f32).set([1, 0.1, Infinity, NaN]);
    expect(k.check!(cond, 4, BOOL, f32, 4, F32)).toEqual([3, Math.fround(0.1), 0]);
    new Float32Array(f32).set([1, -Infinity, 1, 1]);
    expect(k.check!(cond, 4, BOOL, f32, 4, F32)).toEqual([3, -Infinity, 0]);
    const f64 = k.alloc!(32) as ArrayBuffer;
    new Float64Array(f64).set([1, NaN, 1, 1]);
    expect(k.check!(cond, 4, BOOL, f64, 4, F64)).toEqual([3, NaN, 0]);
    const i32 = k.alloc!(16) as ArrayBuffer;
    new Int32Array(i32).set([0, -7, 0, 0]);
    expect(k.check!(cond, 4, BOOL, i32, 4, I32)).toEqual([3, -7, 0]);
    expect(k.check!(cond, 4, BOOL, null, 0, 0)).toEqual([3, 1, 0]); // without values: the position
    new Uint8Array(cond).fill(1);
    expect(k.check!(cond, 4, BOOL, i32, 4, I32)).toBeNull();
  });
});

function loadAddonFile(file: string): Record<string, (...a: unknown[]) => unknown> {
  const m = { exports: {} as Record<string, (...a: unknown[]) => unknown> };
  process.dlopen(m, file);
  return m.exports;
}
