/**
 * Loading the native addon (`build/Release/kiln.node`, built by `npm install`). Loading never
 * throws: it returns the addon or the reason it is not there, which `backends()` reports.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NativeKernelFns } from './marshal.gen.js';

/** Storage handle the addon hands out: an ArrayBuffer over native memory. */
export type NativeBuffer = ArrayBuffer;

/** What `capabilities()` reports. */
export interface NativeCapabilities {
  /** The kernel table in use: 'avx512', 'avx2' or 'base'. */
  isa: string;
  /**
   * How bf16 matrices are multiplied: 'amx' (tile instructions, recent Xeons), 'dpbf16'
   * (AVX-512 BF16 pairs, AMD) or 'f32' (converted while packing). `KILN_CPU_BF16_MATMUL` asks for one.
   */
  bf16Matmul: 'amx' | 'dpbf16' | 'f32';
  /** Per kernel family, the dtypes that table's kernels compute in natively (`Backend.computes`). */
  computes: Record<string, string[]>;
  threads: number;
  cuda: { compiled: boolean; devices: number; error: string };
}

/** The addon's functions: storage and threads here, and one function per kernel (native/bindings.gen.cc). */
export interface Addon extends NativeKernelFns {
  alloc(bytes: number): NativeBuffer;
  free(buf: NativeBuffer): void;
  capabilities(): NativeCapabilities;
  numThreads(): number;
  setNumThreads(n: number): void;
}

// The package root: the nearest folder above this module with kiln's package.json (named kilnjs on npm).
function packageRoot(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if (JSON.parse(readFileSync(pj, 'utf8')).name === 'kilnjs') return dir;
      } catch {
        // unreadable package.json: keep looking upwards
      }
    }
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

let cached: Addon | { unavailable: string } | null = null;

/** The addon, or why it cannot be used. `KILN_DISABLE_NATIVE=1` turns it off. */
export function loadAddon(): Addon | { unavailable: string } {
  if (cached) return cached;
  cached = load();
  return cached;
}

/** The folder the native addons are built into (`build`, or KILN_NATIVE_BUILD), or null without a package folder. */
export function nativeBuildDir(): string | null {
  const root = packageRoot();
  return root ? resolve(root, process.env.KILN_NATIVE_BUILD ?? 'build') : null;
}

/** The prebuilt addon the package ships for this platform (built by scripts/release.mjs), if any (KILN_NO_PREBUILT=1: none). */
export function prebuiltAddon(): string | null {
  if (process.env.KILN_NO_PREBUILT === '1') return null;
  const root = packageRoot();
  const file = root ? join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'kiln.node') : null;
  return file && existsSync(file) ? file : null;
}

/**
 * Where the addon is, or why it is not there, without loading it: the one built on this machine
 * (`build/Release`, made when the prebuilt one did not load, or on request), else the prebuilt one.
 */
export function findAddon(): { file: string } | { unavailable: string } {
  const files = addonFiles();
  return 'unavailable' in files ? files : { file: files.files[0]! };
}

function addonFiles(): { files: string[] } | { unavailable: string } {
  if (process.env.KILN_DISABLE_NATIVE === '1') return { unavailable: 'disabled by KILN_DISABLE_NATIVE=1' };
  const out = nativeBuildDir();
  if (!out) return { unavailable: "kiln's package folder was not found" };
  const files = [join(out, 'Release', 'kiln.node'), prebuiltAddon()].filter((f): f is string => f !== null && existsSync(f));
  if (files.length) return { files };
  let why = 'the native addon was not built';
  try {
    const status = JSON.parse(readFileSync(join(out, 'kiln-status.json'), 'utf8')) as { reason?: string };
    if (status.reason) why += `: ${status.reason}`;
  } catch {
    why += ' (run npm install, or npm run build:native)';
  }
  return { unavailable: why };
}

// the first addon that loads, in findAddon's order
function load(): Addon | { unavailable: string } {
  const found = addonFiles();
  if ('unavailable' in found) return found;
  const errors: string[] = [];
  for (const file of found.files) {
    try {
      return createRequire(import.meta.url)(file) as Addon;
    } catch (e) {
      errors.push(`${file}: ${(e as Error).message}`);
    }
  }
  return { unavailable: `the native addon failed to load: ${errors.join('; ')}` };
}
