/** @internal softmax kernels on webgpu (being written). @module */
import type { Runtime } from './common.js';
export function softmax(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: softmax is not written yet'); }
