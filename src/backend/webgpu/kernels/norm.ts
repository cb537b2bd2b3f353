/** @internal norm kernels on webgpu (being written). @module */
import type { Runtime } from './common.js';
export function layerNorm(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: layerNorm is not written yet'); }
export function layerNormBackward(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: layerNormBackward is not written yet'); }
