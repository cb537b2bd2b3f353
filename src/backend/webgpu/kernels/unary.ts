/** @internal unary kernels on webgpu (being written). @module */
import type { Runtime } from './common.js';
export function unary(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: unary is not written yet'); }
export function unaryGrad(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: unaryGrad is not written yet'); }
