/** @internal attention kernels on webgpu (being written). @module */
import type { Runtime } from './common.js';
export function attention(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: attention is not written yet'); }
export function attentionBackward(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: attentionBackward is not written yet'); }
