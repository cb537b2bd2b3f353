/**
 * The webgpu backend in Node: Dawn from the optional npm package `webgpu`. When Dawn finds no
 * adapter and VK_ICD_FILENAMES is unset, the CPU Vulkan driver that `scripts/setup-webgpu.sh`
 * extracts into the project's `.vulkan/` is tried (found from this file upwards).
 * @module
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BackendEntry } from '../registry.js';
import { PRIORITY } from '../registry.js';
import { requestWebGPU } from './webgpu.js';

const require = createRequire(import.meta.url);

/** Why `webgpu` cannot be imported here, or null. */
function probe(): string | null {
  try {
    require.resolve('webgpu');
    return null;
  } catch {
    return "the optional npm package 'webgpu' (Dawn) is not installed";
  }
}

/** `.vulkan/icd.json` in this package's folder or one above it. */
export function projectIcd(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let up = 0; up < 6; up++) {
    const icd = join(dir, '.vulkan', 'icd.json');
    if (existsSync(icd)) return icd;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return null;
}

interface Dawn {
  create(options: string[]): GPU;
  globals: Record<string, unknown>;
}

/** The registry entry of `webgpu` in Node. */
export function webgpuEntry(): BackendEntry {
  return {
    name: 'webgpu',
    priority: PRIORITY.webgpu,
    probe,
    load: async () => {
      const dawn = (await import('webgpu')) as unknown as Dawn;
      // GPUBufferUsage, GPUMapMode and the rest, as a browser has them
      for (const [k, v] of Object.entries(dawn.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
      let made = await requestWebGPU(dawn.create([]));
      const icd = projectIcd();
      if (typeof made === 'string' && !process.env.VK_ICD_FILENAMES && icd) {
        process.env.VK_ICD_FILENAMES = icd;
        made = await requestWebGPU(dawn.create([]));
        if (typeof made === 'string') made += ` (also with ${icd})`;
      }
      if (typeof made === 'string') throw new Error(`${made}; on a machine without a GPU, run scripts/setup-webgpu.sh for a CPU Vulkan driver`);
      return made;
    },
  };
}
