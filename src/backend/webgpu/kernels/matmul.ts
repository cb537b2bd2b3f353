/** @internal matmul kernels on webgpu (being written). @module */
import type { Runtime } from './common.js';
export function matmul(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: matmul is not written yet'); }
