/**
 * @internal What every webgpu kernel file uses: storages as GPU storages, flat dispatches.
 * @module
 */
import type { Storage } from '../../backend.js';
import { grid, GpuStorage, Params, type Dispatch, type Runtime } from '../runtime.js';

export { io, ld, st, computeType, Params, WG } from '../runtime.js';
export type { ComputeType, Runtime } from '../runtime.js';

/** The GPU storage behind `s` (refusing a freed one: a use after free above the contract). */
export function g(s: Storage): GpuStorage;
export function g(s: Storage | null): GpuStorage | null;
export function g(s: Storage | null): GpuStorage | null {
  if (s === null) return null;
  if (!(s instanceof GpuStorage)) throw new Error('webgpu: a kernel was given a storage of another backend');
  if (s.freed) throw new Error('webgpu: a kernel was given a freed storage (a use after free above the Backend contract)');
  return s;
}

/** Dispatch `n` invocations of a flat kernel (256 per workgroup). */
export function flat(rt: Runtime, d: Omit<Dispatch, 'groups'>, n: number): void {
  if (n <= 0) return;
  rt.run({ ...d, groups: grid(n, rt.maxGroups) });
}

/** Params starting with `n`. */
export function params(n: number): Params {
  return new Params().u32(n);
}
