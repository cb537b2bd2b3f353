/** @internal optim kernels on webgpu (being written). @module */
import type { Runtime } from './common.js';
export function multiNorm(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: multiNorm is not written yet'); }
export function multiScale(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: multiScale is not written yet'); }
export function adamUpdate(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: adamUpdate is not written yet'); }
export function lambUpdate(_rt: Runtime, _a: unknown): void { throw new Error('webgpu: lambUpdate is not written yet'); }
