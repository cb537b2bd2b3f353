/** @internal index_ops kernels on webgpu (being written). @module */
import type { Runtime } from './common.js';
export function gather(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: gather is not written yet'); }
export function scatterAdd(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: scatterAdd is not written yet'); }
export function check(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: check is not written yet'); }
