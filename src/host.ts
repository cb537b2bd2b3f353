/**
 * File access for the parts of the browser-safe core that take a path as a convenience
 * (`tokenizer.save(path)`, `loadSafetensors(path)`). The core never imports `node:` modules: the
 * Node entry point installs these functions, and without it (in a browser) a path is an Error
 * that names the call and the in-memory alternative.
 * @module
 */
import { show } from './tensor/validate.js';

/** What the core needs from a file system. */
export interface HostFiles {
  readText(path: string): string;
  readBytes(path: string): Uint8Array;
  writeText(path: string, text: string): void;
  /** Replace `path` with `data` atomically (a temporary file, fsync, rename). */
  writeAtomic(path: string, data: Uint8Array): Promise<void>;
  /** {@link HostFiles.writeAtomic}, synchronously. */
  writeAtomicSync(path: string, data: Uint8Array): void;
}

let files: HostFiles | null = null;

/** @internal Install file access (the Node entry point does); `null` removes it, as in a browser. */
export function installHostFiles(f: HostFiles | null): void {
  const need = ['readText', 'readBytes', 'writeText', 'writeAtomic', 'writeAtomicSync'] as const;
  if (f === null) {
    files = null;
    return;
  }
  if (typeof f !== 'object' || need.some((k) => typeof f[k] !== 'function'))
    throw new Error(`installHostFiles: expected an object with the functions ${need.join(', ')}, got ${show(f)}${f && typeof f === 'object' ? ` (missing ${need.filter((k) => typeof f[k] !== 'function').join(', ')})` : ''}`);
  files = f;
}

/** File access for `op`, or an Error naming `op` and what to pass instead of a path. */
export function hostFiles(op: string, instead: string): HostFiles {
  if (!files) throw new Error(`${op}: reading and writing files needs kiln's Node entry point ('kilnjs' in Node); here pass ${instead}`);
  return files;
}
