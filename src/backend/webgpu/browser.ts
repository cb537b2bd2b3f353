/**
 * The webgpu backend where the platform has `navigator.gpu` (browsers, Deno): registered by the
 * core, so `kiln` in a browser trains on the GPU the page can reach. Node registers its own entry
 * (Dawn, src/backend/webgpu/node.ts) under the same name.
 * @module
 */
import type { BackendEntry } from '../registry.js';
import { PRIORITY } from '../registry.js';
import { requestWebGPU } from './webgpu.js';

const navigatorGpu = (): GPU | undefined => (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;

/** The registry entry of `webgpu` through `navigator.gpu`. */
export function browserWebgpuEntry(): BackendEntry {
  return {
    name: 'webgpu',
    priority: PRIORITY.webgpu,
    probe: () => (navigatorGpu() ? null : 'navigator.gpu is not present (this browser or runtime has no WebGPU)'),
    load: async () => {
      const made = await requestWebGPU(navigatorGpu()!);
      if (typeof made === 'string') throw new Error(made);
      return made;
    },
  };
}
