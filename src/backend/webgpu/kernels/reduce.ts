/** @internal reduce kernels on webgpu (being written). @module */
import type { Runtime } from './common.js';
export function reduce(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: reduce is not written yet'); }
