/**
 * The backend registry: every backend kiln knows, whether it can run here and why not, and the
 * default one. Backends are plugins: an entry says how to probe for the backend without creating
 * it, and how to create it, synchronously (`create`: the reference backend, the CPU addon) or
 * asynchronously (`load`: a dynamic import, a GPU device request), in which case it must be
 * awaited once (`await useBackend(name)` or `await getBackend(name)`) before tensors use it.
 * @module
 */
import type { Backend } from './backend.js';
import { RefBackend } from './ref/ref.js';
import { checkKeys, checkNumber, show } from '../tensor/validate.js';

/** What {@link backends} reports for each backend. */
export interface BackendInfo {
  name: string;
  /** Whether it can run here (for a backend not yet created: as far as its probe can tell). */
  available: boolean;
  /** Why it is unavailable ('available' when it is). */
  reason: string;
  /** Higher is preferred as the default. */
  priority: number;
  /** Whether it has been created (and initialised). */
  created: boolean;
}

/** How a backend joins the registry. Give `create` or `load`. */
export interface BackendEntry {
  name: string;
  priority: number;
  /** Cheap check whether the backend can exist here, creating nothing: null, or why not. */
  probe?(): string | null;
  /** Create the backend at once (it is ready when returned, or after its `init()`). */
  create?(): Backend;
  /** Create the backend asynchronously (a dynamic import, a device request). */
  load?(): Promise<Backend>;
}

/** Preference order for the default backend (higher wins): cuda > webgpu > cpu > ref. */
export const PRIORITY = { ref: 0, cpu: 10, webgpu: 20, cuda: 30 } as const;

interface Slot {
  entry: BackendEntry;
  backend: Backend | null;
  failure: string | null;
  pending: Promise<Backend> | null;
}

const slots = new Map<string, Slot>();
// the default chosen with useBackend/setBackend, and the one found when none was chosen (cached
// until the registry changes: finding it probes every backend)
let chosen: string | null = null;
let found: string | null = null;

/** Add a backend to the registry (replacing one of the same name, which is forgotten). */
export function registerBackend(entry: BackendEntry): void {
  const op = 'registerBackend';
  if (entry === null || typeof entry !== 'object') throw new Error(`${op}: expected an entry { name, priority, create | load }, got ${show(entry)}`);
  checkKeys(op, entry, ['name', 'priority', 'probe', 'create', 'load']);
  if (typeof entry.name !== 'string' || !entry.name) throw new Error(`${op}: an entry needs a name, got ${show(entry.name)}`);
  checkNumber(op, 'priority', entry.priority);
  for (const k of ['probe', 'create', 'load'] as const)
    if (entry[k] !== undefined && typeof entry[k] !== 'function') throw new Error(`${op}: ${k} of entry '${entry.name}' must be a function, got ${show(entry[k])}`);
  if (!entry.create === !entry.load) throw new Error(`${op}: entry '${entry.name}' must give exactly one of create and load`);
  slots.set(entry.name, { entry, backend: null, failure: null, pending: null });
  found = null;
}

function slot(op: string, name: unknown): Slot {
  if (typeof name !== 'string') throw new Error(`${op}: expected a backend's name, got ${show(name)}`);
  const s = slots.get(name);
  if (!s) throw new Error(`${op}: backend '${name}' is not registered (registered: ${[...slots.keys()].join(', ')})`);
  return s;
}

function probeReason(s: Slot): string | null {
  if (s.backend) return null;
  if (s.failure) return s.failure;
  try {
    return s.entry.probe?.() ?? null;
  } catch (e) {
    return `probe failed: ${(e as Error).message}`;
  }
}

function accept(s: Slot, b: Backend): Backend {
  if (b.name !== s.entry.name) throw new Error(`the entry '${s.entry.name}' created a backend named '${b.name}'`);
  s.backend = b;
  return b;
}

// A created backend's own priority where it gives one (a GPU device on a CPU driver), else its entry's.
const priorityOf = (s: Slot): number => s.backend?.priority ?? s.entry.priority;

/** Every registered backend, most preferred first, with whether it can run here and why not. Creates nothing. */
export function backends(): BackendInfo[] {
  return [...slots.values()]
    .sort((a, b) => priorityOf(b) - priorityOf(a))
    .map((s) => {
      const reason = probeReason(s);
      return { name: s.entry.name, available: reason === null, reason: reason ?? 'available', priority: priorityOf(s), created: s.backend !== null };
    });
}

/**
 * The backend called `name` (the default when omitted), created and initialised on first use.
 * Rejects with the reason when it cannot run here.
 */
export async function getBackend(name?: string): Promise<Backend> {
  return loadBackend('getBackend', name);
}

async function loadBackend(op: string, name?: string): Promise<Backend> {
  const s = slot(op, name ?? defaultBackendName());
  if (s.backend) return s.backend;
  const reason = probeReason(s);
  if (reason !== null) throw new Error(`${op}: backend '${s.entry.name}' is not available: ${reason}`);
  s.pending ??= (async () => {
    try {
      const b = s.entry.create ? s.entry.create() : await s.entry.load!();
      await b.init?.();
      return accept(s, b);
    } catch (e) {
      s.failure = `failed to load: ${(e as Error).message}`;
      throw new Error(`backend '${s.entry.name}' is not available: ${s.failure}`);
    } finally {
      s.pending = null;
    }
  })();
  try {
    return await s.pending;
  } catch (e) {
    throw new Error(`${op}: ${(e as Error).message}`);
  }
}

/**
 * The backend called `name` (the default when omitted), without waiting: it is created now when
 * its entry can do so synchronously, otherwise it must have been loaded before with
 * `await getBackend(name)` or `await useBackend(name)`. Throws with the reason.
 */
export function backendSync(name?: string): Backend {
  return backendFor('backendSync', name);
}

/** @internal {@link backendSync} for the public function `op` (its errors start with `op: `). */
export function backendFor(op: string, name?: string): Backend {
  const s = slot(op, name ?? defaultBackendName());
  if (s.backend) return s.backend;
  const reason = probeReason(s);
  if (reason !== null) throw new Error(`${op}: backend '${s.entry.name}' is not available: ${reason}`);
  const { create } = s.entry;
  if (!create) throw new Error(`${op}: backend '${s.entry.name}' loads asynchronously: await useBackend('${s.entry.name}') (or getBackend) before using it`);
  let b: Backend;
  try {
    b = create();
    if (b.name !== s.entry.name) throw new Error(`the entry '${s.entry.name}' created a backend named '${b.name}'`);
  } catch (e) {
    s.failure = `failed to load: ${(e as Error).message}`;
    throw new Error(`${op}: backend '${s.entry.name}' is not available: ${s.failure}`);
  }
  if (b.init) throw new Error(`${op}: backend '${s.entry.name}' needs asynchronous set-up: await useBackend('${s.entry.name}') (or getBackend) before using it`);
  return accept(s, b);
}

/**
 * The default backend's name: the one chosen with {@link useBackend}/{@link setBackend}, else the
 * most preferred that is ready or can be created at once (call {@link ready} to also consider
 * backends that load asynchronously, such as WebGPU).
 */
export function defaultBackendName(): string {
  if (chosen !== null && slots.has(chosen)) return chosen;
  if (found !== null) return found;
  for (const info of backends()) {
    if (!info.available || info.priority < 0) continue;
    const s = slots.get(info.name)!;
    if (s.backend || s.entry.create) {
      try {
        backendSync(info.name);
        return (found = info.name);
      } catch {
        // it failed to load: backends() now says why; try the next
      }
    }
  }
  return (found = 'ref');
}

/** Load `name` (awaiting its set-up) and make it the default backend for new tensors. */
export async function useBackend(name: string): Promise<Backend> {
  if (typeof name !== 'string') throw new Error(`useBackend: expected a backend's name, got ${show(name)}`);
  const b = await loadBackend('useBackend', name);
  chosen = name;
  return b;
}

/**
 * Make `name` the default backend now; it must be creatable synchronously or already loaded
 * (else use {@link useBackend}). `setBackend(null)` returns to the automatic choice.
 */
export function setBackend(name: string | null): void {
  if (name !== null) {
    if (typeof name !== 'string') throw new Error(`setBackend: expected a backend's name or null, got ${show(name)}`);
    backendFor('setBackend', name);
  }
  chosen = name;
}

/**
 * Load the most preferred backend that can run here, waiting for asynchronous ones (a GPU), make
 * it the default, and return its name. Backends that fail to load are skipped (backends() says why).
 */
export async function ready(): Promise<string> {
  // A backend may rank lower once created (WebGPU on a CPU driver): keep trying those its entry
  // ranked below it until none could beat the best found.
  let best: { name: string; priority: number } | null = null;
  for (const info of backends()) {
    if (!info.available || info.priority < 0) continue;
    if (best && info.priority <= best.priority) break;
    try {
      await loadBackend('ready', info.name);
      const p = priorityOf(slots.get(info.name)!);
      if (!best || p > best.priority) best = { name: info.name, priority: p };
    } catch {
      // failed to load: try the next
    }
  }
  if (!best) return defaultBackendName();
  chosen = best.name;
  return best.name;
}

/**
 * Wait for the queued work of backend `name`, or of every backend in use when omitted (as
 * `torch.cuda.synchronize()`); rejects with a pending device fault, naming the op that found it.
 */
export async function sync(name?: string): Promise<void> {
  if (name !== undefined) return (await loadBackend('sync', name)).sync();
  for (const s of slots.values()) if (s.backend) await s.backend.sync();
}

/** Submit the queued work of backend `name` (of every backend in use when omitted) without waiting. */
export function flush(name?: string): void {
  if (name !== undefined) return backendFor('flush', name).flush();
  for (const s of slots.values()) s.backend?.flush();
}

registerBackend({ name: 'ref', priority: PRIORITY.ref, create: () => new RefBackend() });
