/**
 * The webgpu backend's own machinery, beyond the parameterised suite (which runs every op on it):
 * how work is batched into submits, that writes keep call order, that freed buffers are pooled
 * and pipelines cached, that faults name the op, that 16-bit casts round exactly as the reference
 * for every bit pattern, and that a CPU driver ranks below the native cpu backend.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import * as k from '../src/index.js';
import { PRIORITY } from '../src/backend/registry.js';
import type { WebGPUBackend } from '../src/backend/webgpu/webgpu.js';
import { MAX_UNTURNED, sizeClass, grid } from '../src/backend/webgpu/runtime.js';

const info = k.backends().find((b) => b.name === 'webgpu');
const available = !!info?.available;
if (!available) console.warn(`[kiln tests] webgpu machinery tests skipped: ${info?.reason ?? 'not registered'}`);

describe('webgpu runtime helpers', () => {
  test('size classes: multiples of 256 bytes, four per power of two above 1 KiB, never below the request', () => {
    expect(sizeClass(1)).toBe(256);
    expect(sizeClass(256)).toBe(256);
    expect(sizeClass(257)).toBe(512);
    expect(sizeClass(1025)).toBe(1280);
    expect(sizeClass(1 << 20)).toBe(1 << 20);
    expect(sizeClass((1 << 20) + 1)).toBe((1 << 20) + (1 << 18));
    for (let b = 1; b < 1e7; b = Math.ceil(b * 1.37)) {
      const c = sizeClass(b);
      expect(c).toBeGreaterThanOrEqual(b);
      expect(c).toBeLessThanOrEqual(Math.max(256, b * 1.25 + 256));
    }
  });

  test('grids stay within the per-dimension limit and cover every invocation', () => {
    for (const n of [1, 255, 256, 257, 65535 * 256, 65535 * 256 + 1, 1e9]) {
      const [x, y, z] = grid(n, 65535);
      expect(x).toBeLessThanOrEqual(65535);
      expect(y).toBeLessThanOrEqual(65535);
      expect(z).toBe(1);
      expect(x * y * 256).toBeGreaterThanOrEqual(n);
    }
  });
});

test('requestWebGPU refuses what is not a GPU object, naming itself', async () => {
  for (const bad of [null, undefined, 3, 'gpu', {}, { requestAdapter: 1 }])
    await expect(k.requestWebGPU(bad as never)).rejects.toThrow(/^requestWebGPU: expected a GPU object/);
});

describe.skipIf(!available)(`webgpu backend${available ? '' : `: unavailable, ${info?.reason}`}`, () => {
  const backend = (): WebGPUBackend => k.backendSync('webgpu') as WebGPUBackend;

  test('names its adapter; a CPU driver ranks below the native cpu backend, which stays the default', () => {
    const b = backend();
    expect(b.adapter.description.length + b.adapter.device.length).toBeGreaterThan(0);
    if (b.adapter.software) {
      expect(b.priority).toBeLessThan(PRIORITY.cpu);
      expect(k.backends().find((x) => x.name === 'webgpu')!.priority).toBe(b.priority);
    }
    expect(b.dtypes).not.toContain('f64');
    expect('readSync' in b).toBe(false);
  });

  test('a loop that queues kernels without ever awaiting gets an Error past MAX_UNTURNED, not a driver crash; an await resets it', async () => {
    const x = k.ones([4], { backend: 'webgpu' });
    await new Promise((r) => setTimeout(r, 0));
    let thrown: unknown = null;
    let n = 0;
    try {
      for (; n < MAX_UNTURNED + 10; n++) k.tidy(() => x.add(1));
    } catch (e) {
      thrown = e;
    }
    expect(String(thrown)).toContain(`${MAX_UNTURNED} kernels were queued without the event loop turning`);
    expect(n).toBe(MAX_UNTURNED);
    await new Promise((r) => setTimeout(r, 0));
    expect(Array.from(await x.add(1).data())).toEqual([2, 2, 2, 2]);
    x.dispose();
  });

  test('a run of kernels is one submit, at the read; nothing is submitted before', async () => {
    const b = backend();
    await k.sync('webgpu');
    const before = b.stats();
    const x = k.ones([1000], { backend: 'webgpu' });
    let y = x;
    for (let i = 0; i < 50; i++) y = y.add(1);
    const mid = b.stats();
    expect(mid.submits).toBe(before.submits);
    expect(mid.dispatches - before.dispatches).toBeGreaterThanOrEqual(51);
    const data = await y.data();
    expect(data[0]).toBe(51);
    expect(data[999]).toBe(51);
    expect(b.stats().submits - before.submits).toBe(1);
  });

  test('a write never overtakes a kernel queued before it, and its data is taken at the call', async () => {
    const t = k.zeros([4], { backend: 'webgpu' });
    const doubled = t.add(1).mul(2); // queued, reads t
    const src = new Float32Array([5, 6, 7, 8]);
    const s = t._storage('test');
    backend().write(s, src); // overwrites t after the queued kernels read it
    src.fill(-1);
    expect(Array.from(await doubled.data())).toEqual([2, 2, 2, 2]);
    expect(Array.from(await t.data())).toEqual([5, 6, 7, 8]);
  });

  test('freed buffers are reused and pipelines compiled once: a repeated step creates nothing new', async () => {
    const b = backend();
    const step = async (): Promise<void> => {
      const s = k.tidy(() => k.randn([64, 64], { backend: 'webgpu', generator: new k.Generator(3) }).matmul(k.ones([64, 32], { backend: 'webgpu' })).relu().sum());
      await s.data();
      s.dispose();
    };
    await step();
    await step();
    const before = b.stats();
    for (let i = 0; i < 5; i++) await step();
    const after = b.stats();
    expect(after.buffersCreated).toBe(before.buffersCreated);
    expect(after.pipelines).toBe(before.pipelines);
    expect(after.liveBytes).toBe(before.liveBytes);
  });

  test('a fault found on the device is an Error naming the op, at the next read, and only once', async () => {
    const table = k.randn([5, 3], { backend: 'webgpu' });
    const ids = k.tensor([1, 7, 2], { dtype: 'i32', backend: 'webgpu' });
    const out = k.indexSelect(table, 0, ids);
    await expect(out.data()).rejects.toThrow(/^indexSelect: index 7 is out of range \[0, 5\)/);
    expect((await k.tensor([1, 2], { backend: 'webgpu' }).data())[1]).toBe(2);
  });

  test('f16 and bf16 casts round exactly as the reference for every 16-bit pattern and for f32 values between them', async () => {
    const bits = new Uint16Array(65536).map((_, i) => i);
    // a tensor holding every bit pattern, written raw (tensor() would read the array as values)
    const fromBits = (dt: 'f16' | 'bf16', name: string): k.Tensor => {
      const t = k.zeros([65536], { dtype: dt, backend: name });
      k.backendSync(name).write(t._storage('test'), bits);
      return t;
    };
    for (const dt of ['f16', 'bf16'] as const) {
      const wide = fromBits(dt, 'webgpu').cast('f32');
      const back = wide.cast(dt);
      const ref = fromBits(dt, 'ref').cast('f32');
      const [w, r] = [await wide.data(), await ref.data()];
      expect(Array.from(w).map((v) => (Number.isNaN(v) ? 'NaN' : v))).toEqual(Array.from(r).map((v) => (Number.isNaN(v) ? 'NaN' : v)));
      // values between neighbours (ties included) round as the reference rounds them
      const mids = new Float32Array(4096).map((_, i) => (r[i * 16]! + r[i * 16 + 1]!) / 2);
      const g = await k.tensor(mids, { backend: 'webgpu' }).cast(dt).cast('f32').data();
      const want = await k.tensor(mids, { backend: 'ref' }).cast(dt).cast('f32').data();
      expect(Array.from(g).map(String)).toEqual(Array.from(want).map(String));
      expect(await back.cast('f32').data()).toEqual(w);
    }
  });

  test('alloc past the largest binding is an Error naming the op, not a device error', () => {
    const max = backend().maxElements('f32');
    expect(() => k.zeros([max + 1], { backend: 'webgpu' })).toThrow(/^zeros: /);
  });

  test('kiln train --backend webgpu --steps 50 trains: the loss falls', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-webgpu-train-'));
    const words = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'and', 'dog', 'ran', 'to', 'its', 'bed'];
    let s = 7;
    const paragraph = (): string => Array.from({ length: 40 }, () => words[Math.floor((s = (s * 1103515245 + 12345) % 2147483648) / 65536) % words.length]).join(' ');
    const text = Array.from({ length: 100 }, paragraph).join('\n\n');
    writeFileSync(join(dir, 'corpus.txt'), text);
    const bin = fileURLToPath(new URL('../bin/kiln.mjs', import.meta.url));
    const r = spawnSync(process.execPath, [bin, 'train', '--data', 'corpus.txt', '--config', 'micro', '--backend', 'webgpu', '--steps', '50', '--log-every', '5', '--out', 'run'], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, KILN_DEBUG: '' },
    });
    expect(r.status, r.stderr).toBe(0);
    const losses = [...r.stderr.matchAll(/^step \d+\/50 \(\d+%\) loss (\d+\.\d+)/gm)].map((m) => Number(m[1]));
    expect(losses.length).toBeGreaterThanOrEqual(5);
    const m = JSON.parse(readFileSync(join(dir, 'run', 'metrics.json'), 'utf8'));
    expect(m.backend).toBe('webgpu');
    expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.8);
    expect(m.valLoss).toBeLessThan(losses[0]!);
  }, 300_000);
});
