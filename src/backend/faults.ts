/**
 * Faults: bad data a kernel finds on the device (an index out of range), held until the next
 * read or sync turns the first of them into an Error that names the public op.
 * @module
 */
import { FAULTS } from './ops.gen.js';
import { show } from '../tensor/validate.js';

type FaultName = keyof typeof FAULTS;

/** The Error message of a fault: `op: index 7 is out of range [0, 5)`. */
export function faultMessage(code: number, op: string, value: number, limit: number, message = ''): string {
  const f = Object.values(FAULTS).find((x) => x.code === code);
  if (!f) return `${op}: the kernel reported an unknown fault ${code} (value ${value}, limit ${limit})`;
  return f.message.replace('{op}', op).replace('{message}', message).replaceAll('{value}', String(value)).replace('{limit}', String(limit));
}

/**
 * The first fault since it was last taken. Backends record into it as kernels find faults and
 * take it (throwing) on read and sync.
 */
export class FaultLatch {
  private first: Error | null = null;

  /** Record a fault; only the first one is kept until {@link FaultLatch.throwIfAny}. */
  record(fault: FaultName | number, op: string, value: number, limit: number, message?: string): void {
    const known = typeof fault === 'number' ? Object.values(FAULTS).some((f) => f.code === fault) : typeof fault === 'string' && Object.hasOwn(FAULTS, fault);
    if (!known) throw new Error(`FaultLatch.record: unknown fault ${show(fault)} (faults: ${Object.keys(FAULTS).join(', ')})`);
    if (typeof op !== 'string') throw new Error(`FaultLatch.record: op must be the public op's name, got ${show(op)}`);
    if (typeof value !== 'number' || typeof limit !== 'number') throw new Error(`FaultLatch.record: value and limit must be numbers, got ${show(value)} and ${show(limit)}`);
    if (message !== undefined && typeof message !== 'string') throw new Error(`FaultLatch.record: message must be a string, got ${show(message)}`);
    if (this.first) return;
    const code = typeof fault === 'number' ? fault : FAULTS[fault].code;
    this.first = new Error(faultMessage(code, op, value, limit, message));
  }

  /** Record an Error of the backend's own (a use of freed memory, a lost device). */
  recordError(e: Error): void {
    if (!(e instanceof Error)) throw new Error(`FaultLatch.recordError: expected an Error, got ${show(e)}`);
    this.first ??= e;
  }

  /** Whether a fault is pending. */
  get pending(): boolean {
    return this.first !== null;
  }

  /** Throw the pending fault, if any, and clear it. */
  throwIfAny(): void {
    const e = this.first;
    if (!e) return;
    this.first = null;
    throw e;
  }
}

/**
 * `fn()` as a promise: resolved with its result or rejected with what it throws. For backends
 * whose work is done when a call returns (ref, cpu), whose read and sync only take pending faults.
 */
export function settled<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (e) {
    return Promise.reject(e as Error);
  }
}
