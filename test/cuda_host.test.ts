/**
 * The CUDA backend's host-side logic, on a machine without a GPU: the caching allocator
 * (native/caching_allocator.h, over a fake device in the CPU addon: size classes, reuse, the
 * out-of-memory retry after emptying the cache, statistics), and CudaBackend over a fake
 * `addon.cuda` (storages as addresses, freed storages refused, device faults reported at the next
 * read or sync under the public op of the call that recorded them, computes from the table). The
 * kernels themselves run in test/gpu/ on a GPU machine (scripts/gpu-check.sh).
 */
import { expect, it } from 'vitest';
import { backends, CudaBackend, nativeCapabilities } from '../src/index.js';
import type { CudaAddon } from '../src/index.js';
import { loadAddon } from '../src/backend/cpu/addon.js';

interface AllocatorRun {
  results: (number | boolean | null)[];
  stats: Record<string, number>;
}
const addon = loadAddon() as unknown as { _testCachingAllocator?: (capacity: number, ops: unknown[][]) => AllocatorRun };
const MiB = 2 ** 20;

it('the caching allocator: size classes, reuse by class, statistics', () => {
  const run = addon._testCachingAllocator!(64 * MiB, [
    ['alloc', 1], // 512 B class
    ['alloc', 513], // 1024
    ['alloc', 3 * MiB + 1], // 4 MiB (2 MiB classes above 1 MiB)
    ['size', 0],
    ['size', 1],
    ['size', 2],
    ['free', 1],
    ['alloc', 1000], // the freed 1024-byte block again (block 3 is block 1's address)
    ['size', 3],
    ['free', 3],
    ['free', 1], // that address is no longer live
    ['alloc', 0], // a zero-byte storage still gets an address
  ]);
  expect(run.results).toEqual([0, 1, 2, 512, 1024, 4 * MiB, true, 3, 1024, true, false, 4]);
  expect(run.stats).toMatchObject({ deviceAllocs: 4, cacheHits: 1, blocks: 3, allocated: 512 + 4 * MiB + 512, reserved: 512 + 1024 + 4 * MiB + 512, cached: 1024, peakAllocated: 512 + 1024 + 4 * MiB });
});

it('the caching allocator: out of memory empties the cache and retries once, then reports null', () => {
  const run = addon._testCachingAllocator!(10 * MiB, [
    ['alloc', 4 * MiB],
    ['alloc', 4 * MiB],
    ['free', 0],
    ['free', 1], // 8 MiB cached, none in use
    ['alloc', 6 * MiB], // no 6 MiB block cached and 2 MiB left: the cache is released, then it fits
    ['alloc', 6 * MiB], // 4 MiB left and nothing cached: out of memory
  ]);
  expect(run.results).toEqual([0, 1, true, true, 2, null]);
  expect(run.stats).toMatchObject({ oomRetries: 1, deviceFrees: 2, cached: 0, allocated: 6 * MiB, reserved: 6 * MiB, deviceUsed: 6 * MiB });
});

it('backends() lists cuda with the reason it cannot run here', () => {
  const cuda = backends().find((b) => b.name === 'cuda')!;
  expect(cuda).toBeDefined();
  const caps = nativeCapabilities();
  if (!('unavailable' in caps) && caps.cuda.devices > 0) {
    console.log('[cuda host] this machine has a CUDA device: the probe says it is available');
    expect(cuda.available).toBe(true);
  } else {
    console.log(`[cuda host] cuda unavailable here: ${cuda.reason}`);
    expect(cuda.available).toBe(false);
    expect(cuda.reason.length).toBeGreaterThan(5);
  }
});

/** A fake addon.cuda: memory as host arrays by address; `gather` records a device fault like the real kernel. */
function fakeCuda(): CudaAddon & { tagsSet: number[] } {
  const mem = new Map<bigint, Uint8Array>();
  let next = 0x1000n;
  let tag = 0;
  let fault: [number, number, number, number] | null = null;
  const tagsSet: number[] = [];
  const fake = {
    tagsSet,
    init: () => ({ device: 0, name: 'fake', major: 9, minor: 0, multiprocessors: 132, totalMemory: 2 ** 30 }),
    alloc: (bytes: number) => {
      const a = next;
      next += BigInt(Math.max(512, bytes));
      mem.set(a, new Uint8Array(bytes));
      return a;
    },
    free: (a: bigint) => void mem.delete(a),
    write: (a: bigint, d: ArrayBufferView) => mem.get(a)!.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)),
    read: async (a: bigint, bytes: number): Promise<[ArrayBuffer, typeof fault]> => {
      const f = fault;
      fault = null;
      return [mem.get(a)!.slice(0, bytes).buffer, f];
    },
    sync: async (): Promise<[ArrayBuffer, typeof fault]> => {
      const f = fault;
      fault = null;
      return [new ArrayBuffer(0), f];
    },
    memoryStats: () => ({ allocated: 0, reserved: 0, cached: 0, peakAllocated: 0, deviceAllocs: 0, deviceFrees: 0, cacheHits: 0, oomRetries: 0, blocks: 0 }),
    emptyCache: () => {},
    computes: () => ({ elementwise: ['f32', 'f64', 'i32'], matmul: ['f32', 'bf16'] }),
    setFaultTag: (t: number) => {
      tag = t;
      tagsSet.push(t);
    },
    setAllowTf32: () => {},
    // gather(x, xn, xd, out, on, od, index, in, id, strides, outer, srcDim, n, inner): index 0 out of range → fault
    gather: (..._a: unknown[]) => {
      fault ??= [1, 7, 5, tag];
      return null;
    },
    fill: () => null,
  };
  return fake as unknown as CudaAddon & { tagsSet: number[] };
}

it('CudaBackend: a device fault surfaces at the next read or sync, naming the op of the call that recorded it', async () => {
  const fake = fakeCuda();
  const b = new CudaBackend(fake, fake.init(0));
  const s = b.alloc('f32', 4);
  b.write(s, Float32Array.of(1, 2, 3, 4));
  expect(Array.from((await b.read(s)) as Float32Array)).toEqual([1, 2, 3, 4]);
  const idx = b.alloc('i32', 1);
  b.gather({ x: s, out: s, index: idx, indexStrides: [0, 0, 0], outer: 1, srcDim: 4, n: 1, inner: 1, op: 'embedding' });
  b.gather({ x: s, out: s, index: idx, indexStrides: [0, 0, 0], outer: 1, srcDim: 4, n: 1, inner: 1, op: 'gather' });
  expect(fake.tagsSet).toHaveLength(2);
  // the first fault wins and names the first call's op
  await expect(b.read(s)).rejects.toThrow('embedding: index 7 is out of range [0, 5)');
  await expect(b.sync()).resolves.toBeUndefined();
  b.free(s);
  expect(() => b.fill({ out: s, value: 1 })).toThrow(/freed storage/);
  expect(b.computes('matmul', 'bf16')).toBe(true);
  expect(b.computes('matmul', 'f16')).toBe(false);
  expect(b.computes('softmax', 'f32')).toBe(false); // not reported by this fake table: the tensor layer would cast
});
