/** @internal cross_entropy kernels on webgpu (being written). @module */
import type { Runtime } from './common.js';
export function crossEntropy(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: crossEntropy is not written yet'); }
export function crossEntropyBackward(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: crossEntropyBackward is not written yet'); }
