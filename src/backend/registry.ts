/**
 * The backend registry: every backend kiln knows, whether it works on this machine and why not,
 * and the default one (the most preferred that works).
 * @module
 */
import type { Backend } from './backend.js';
import { loadCpuBackend } from './cpu/cpu.js';
import { RefBackend } from './ref/ref.js';

/** What {@link backends} reports for each backend. */
export interface BackendInfo {
  name: string;
  available: boolean;
  /** Why it is unavailable (or, when available, what it runs on). */
  reason: string;
  /** Higher is preferred as the default. */
  priority: number;
}

/** How a backend joins the registry. `load` is called once, on first use, and may fail. */
export interface BackendEntry {
  name: string;
  priority: number;
  /** Return the backend, or a reason it cannot run here. */
  load(): Backend | { unavailable: string };
}

/** Preference order for the default backend (higher wins): cuda > webgpu > cpu > ref. */
export const PRIORITY = { ref: 0, cpu: 10, webgpu: 20, cuda: 30 } as const;

const entries = new Map<string, BackendEntry>();
const loaded = new Map<string, Backend | { unavailable: string }>();
let defaultName: string | null = null;

/** Add a backend to the registry (replacing one of the same name). */
export function registerBackend(entry: BackendEntry): void {
  entries.set(entry.name, entry);
  loaded.delete(entry.name);
  defaultName = null;
}

function load(name: string): Backend | { unavailable: string } {
  let b = loaded.get(name);
  if (!b) {
    const entry = entries.get(name);
    if (!entry) return { unavailable: `no backend named '${name}' is registered` };
    try {
      b = entry.load();
      if (!('unavailable' in b) && b.name !== name) b = { unavailable: `load() returned a backend named '${b.name}'` };
    } catch (e) {
      b = { unavailable: `failed to load: ${(e as Error).message}` };
    }
    loaded.set(name, b);
  }
  return b;
}

/** Every registered backend, most preferred first, with whether it is available and why not. */
export function backends(): BackendInfo[] {
  return [...entries.values()]
    .sort((a, b) => b.priority - a.priority)
    .map((e) => {
      const b = load(e.name);
      const available = !('unavailable' in b);
      return {
        name: e.name,
        available,
        reason: available ? 'available' : (b as { unavailable: string }).unavailable,
        priority: e.priority,
      };
    });
}

/** The backend called `name`; throws with the reason when it is not available. */
export function getBackend(name?: string): Backend {
  const n = name ?? defaultBackendName();
  const b = load(n);
  if ('unavailable' in b) throw new Error(`backend '${n}' is not available: ${b.unavailable}`);
  return b;
}

/** The default backend's name: set by {@link setBackend}, else the most preferred available one. */
export function defaultBackendName(): string {
  if (defaultName === null) {
    const first = backends().find((b) => b.available);
    defaultName = first ? first.name : 'ref';
  }
  return defaultName;
}

/** Make `name` the default backend for new tensors. Throws if it is not available. */
export function setBackend(name: string): void {
  getBackend(name);
  defaultName = name;
}

registerBackend({ name: 'ref', priority: PRIORITY.ref, load: () => new RefBackend() });
registerBackend({ name: 'cpu', priority: PRIORITY.cpu, load: loadCpuBackend });
