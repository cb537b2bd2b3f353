/**
 * Where a step's time goes, per kernel: {@link profileKernels} wraps every kernel method of one
 * backend instance with a timer (the instance's own properties shadow its class's methods, so
 * tensors already holding the backend are measured too) until `stop()` removes the wrappers.
 * Kernel calls do not nest, so the sums add up. On a backend whose kernels run at the call (`cpu`,
 * `ref`) a call's time is the kernel's; on a queueing backend (`webgpu`) it is only the time to
 * record it, and the device's time shows up in the read that waits for it.
 * @module
 */
import type { Backend } from './backend.js';
import { KERNEL_NAMES, type KernelName } from './ops.gen.js';
import { backendSync } from './registry.js';

/** One kernel's share of a profile. */
export interface KernelProfileRow {
  kernel: KernelName;
  calls: number;
  /** Milliseconds inside the kernel's method, summed over its calls. */
  ms: number;
}

/** A running profile (see {@link profileKernels}). */
export interface KernelProfile {
  /** Remove the timers; the rows, slowest first (kernels never called are left out). */
  stop(): KernelProfileRow[];
}

const active = new WeakSet<Backend>();

/**
 * Time every kernel call of backend `name` (the default backend when omitted) until `stop()`.
 *
 * @example
 * const p = profileKernels('cpu');
 * step();
 * console.table(p.stop());
 */
export function profileKernels(name?: string): KernelProfile {
  let backend: Backend;
  try {
    backend = backendSync(name);
  } catch (e) {
    // the registry's message, named as the caller's call
    if (e instanceof Error) e.message = `profileKernels: ${e.message.replace(/^backendSync: /, '')}`;
    throw e;
  }
  if (active.has(backend)) throw new Error(`profileKernels: backend '${backend.name}' is already being profiled (stop that profile first)`);
  active.add(backend);
  const rows = new Map<KernelName, KernelProfileRow>();
  const target = backend as unknown as Record<string, (...a: unknown[]) => unknown>;
  // kernels may be the class's methods or the instance's own properties: put back exactly what was there
  const own = new Map(KERNEL_NAMES.map((k) => [k, Object.getOwnPropertyDescriptor(backend, k)]));
  for (const k of KERNEL_NAMES) {
    const inner = target[k]!;
    const row: KernelProfileRow = { kernel: k, calls: 0, ms: 0 };
    rows.set(k, row);
    target[k] = function (this: unknown, ...args: unknown[]): unknown {
      const t0 = performance.now();
      try {
        return inner.apply(this, args);
      } finally {
        row.ms += performance.now() - t0;
        row.calls++;
      }
    };
  }
  let stopped = false;
  return {
    stop(): KernelProfileRow[] {
      if (!stopped) {
        stopped = true;
        for (const k of KERNEL_NAMES) {
          const d = own.get(k);
          if (d) Object.defineProperty(backend, k, d);
          else delete target[k];
        }
        active.delete(backend);
      }
      return [...rows.values()].filter((r) => r.calls > 0).sort((a, b) => b.ms - a.ms);
    },
  };
}
