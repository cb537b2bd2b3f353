/** @internal binary kernels on webgpu (being written). @module */
import type { Runtime } from './common.js';
export function binary(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: binary is not written yet'); }
export function where(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: where is not written yet'); }
