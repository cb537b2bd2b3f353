/**
 * Automatic mixed precision: inside an {@link autocast} region the ops of {@link AUTOCAST_OPS}
 * `lower` (matmul, linear, attention) run in bf16 or f16, and those of `f32` (softmax, norms,
 * losses, reductions) in f32, whatever their inputs' dtypes; every other op runs in the dtype of
 * its inputs (mixed float inputs promote to the wider, so an f32 residual stream stays f32). The
 * casts are recorded, so gradients reach f32 weights as f32: master weights and optimizer state
 * never leave f32. A weight's cast is made once per region and reused by every op that reads it
 * (a leaf that requires grad, re-cast only when changed in place). As PyTorch's
 * `torch.autocast`, regions nest, `{ enabled: false }` turns autocast off inside one, and the
 * backward pass runs in the dtypes the forward chose (autocast does not apply to it).
 *
 * @example
 * const { loss } = autocast({ dtype: 'bf16' }, () => model.forward(x, y));
 * loss!.backward(); // weights' gradients are f32
 * @module
 */
import { isGradEnabled, record } from '../autograd/tape.js';
import { isFloat, type DType } from '../backend/dtype.js';
import { rawCast } from '../tensor/ops/util.js';
import { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkChoice, checkKeys, show } from '../tensor/validate.js';

/** The low-precision dtypes autocast runs in. */
export type AutocastDtype = 'bf16' | 'f16';

/** Options of {@link autocast} and {@link autocastScope}. */
export interface AutocastOptions {
  /** The low-precision dtype: 'bf16' (default; f32's range, no loss scaling needed) or 'f16' (use a {@link GradScaler}). */
  dtype?: AutocastDtype;
  /** false runs the region without autocast (to carve an f32 island out of an enclosing region). Default true. */
  enabled?: boolean;
  /** Reuse the cast of a weight within the region (default true). */
  cacheEnabled?: boolean;
}

/**
 * Which op runs in which dtype under autocast (PyTorch documents its lists the same way):
 * - `lower`: cast floating inputs to the region's dtype: the matrix products, where low
 *   precision is fast and safe (products accumulate in f32 in every kernel).
 * - `f32`: cast floating inputs to f32: ops whose range or accumulated error needs it (exp in
 *   softmax, the statistics of norms, the loss, sums).
 * Ops in neither list run in their inputs' dtype (elementwise ops, activations, dropout,
 * reshapes); mixed float inputs promote to the wider.
 */
export const AUTOCAST_OPS = {
  lower: ['matmul', 'linear', 'scaledDotProductAttention', 'packedAttention'],
  f32: ['softmax', 'logSoftmax', 'crossEntropy', 'layerNorm', 'rmsNorm', 'sum', 'mean', 'norm'],
} as const;

interface Region {
  dtype: AutocastDtype;
  enabled: boolean;
  cache: Map<Tensor, { version: number; dtype: DType; cast: Tensor }> | null;
}

const regions: Region[] = [];

function parse(op: string, opts: unknown): Region {
  if (opts === undefined) opts = {};
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: options must be an object, got ${show(opts)}`);
  checkKeys(op, opts as Record<string, unknown>, ['dtype', 'enabled', 'cacheEnabled']);
  const o = opts as AutocastOptions;
  const dtype = o.dtype === undefined ? 'bf16' : checkChoice(op, 'dtype', o.dtype, ['bf16', 'f16'] as const);
  const enabled = o.enabled === undefined ? true : checkBoolean(op, 'enabled', o.enabled);
  const cacheEnabled = o.cacheEnabled === undefined ? true : checkBoolean(op, 'cacheEnabled', o.cacheEnabled);
  // an inner enabled region shares the outermost cache, so a weight is cast once per step
  const outer = regions.find((r) => r.cache);
  return { dtype, enabled, cache: enabled && cacheEnabled ? (outer?.cache ?? new Map()) : null };
}

function exit(region: Region): void {
  const i = regions.lastIndexOf(region);
  if (i < 0) return;
  regions.splice(i, 1);
  // The cached casts stay where they were made (their tidy scope, or the graph that reads them
  // in the backward); the region only forgets them.
  if (region.cache && !regions.some((r) => r.cache === region.cache)) region.cache.clear();
}

/**
 * Run `fn` with autocast (see the module doc); returns what `fn` returns. `fn` must be
 * synchronous: a region spans no await (as tidy scopes), so run the forward pass inside and
 * await outside.
 */
export function autocast<T>(opts: AutocastOptions, fn: () => T): T {
  const region = parse('autocast', opts);
  if (typeof fn !== 'function') throw new Error(`autocast: expected a function, got ${show(fn)}`);
  regions.push(region);
  let result: T;
  try {
    result = fn();
  } finally {
    exit(region);
  }
  if (result instanceof Promise) throw new Error('autocast: the function returned a Promise; autocast regions are synchronous (await outside autocast)');
  return result;
}

/** A region opened by {@link autocastScope}: ends at `exit()`, or at the end of a `using` block. */
export interface AutocastScope {
  exit(): void;
  [Symbol.dispose](): void;
}

/**
 * Open an autocast region until the returned scope's `exit()` (or the end of its `using` block):
 * `using _ = autocastScope({ dtype: 'bf16' });`. Regions must be closed innermost first.
 */
export function autocastScope(opts: AutocastOptions = {}): AutocastScope {
  const region = parse('autocastScope', opts);
  regions.push(region);
  const close = (): void => {
    const top = regions[regions.length - 1];
    if (top !== region && regions.includes(region)) throw new Error('autocastScope: regions must be closed innermost first');
    exit(region);
  };
  return { exit: close, [Symbol.dispose]: close };
}

/** The dtype autocast runs `lower` ops in now, or null when no enabled region is open. */
export function autocastDtype(): AutocastDtype | null {
  const top = regions[regions.length - 1];
  return top?.enabled ? top.dtype : null;
}

/**
 * @internal The open regions, to re-enter later (checkpoint's recomputation runs in the dtypes of
 * its forward); without their caches, which end with the regions.
 */
export function autocastState(): readonly Region[] {
  return regions.map((r) => ({ ...r, cache: null }));
}

/** @internal Run `fn` with exactly `state`'s regions open (none for the backward pass). */
export function withAutocastState<T>(state: readonly Region[], fn: () => T): T {
  const saved = regions.splice(0, regions.length, ...state);
  try {
    return fn();
  } finally {
    regions.splice(0, regions.length, ...saved);
  }
}

function castFor(x: Tensor, dtype: DType, region: Region): Tensor {
  if (!x.backend.dtypes.includes(dtype)) throw new Error(`autocast: backend '${x.backend.name}' cannot store ${dtype} (it stores ${x.backend.dtypes.join(', ')})`);
  const cacheable = region.cache !== null && x.requiresGrad === isGradEnabled() && x.gradFn === null;
  if (cacheable) {
    const hit = region.cache!.get(x);
    if (hit && !hit.cast.disposed && hit.version === x._version && hit.dtype === dtype) return hit.cast;
  }
  const cast = record('cast', [x], rawCast(x, dtype));
  if (cacheable) region.cache!.set(x, { version: x._version, dtype, cast });
  return cast;
}

/**
 * @internal The inputs of `op` as autocast wants them: floating tensors cast to the region's dtype
 * (`lower` ops) or to f32 (`f32` ops); others, and everything outside a region, unchanged.
 */
export function autocastInputs<T extends readonly (Tensor | null | undefined)[]>(op: (typeof AUTOCAST_OPS)['lower' | 'f32'][number], ...xs: T): T {
  const region = regions[regions.length - 1];
  if (!region?.enabled) return xs;
  const to: DType = (AUTOCAST_OPS.lower as readonly string[]).includes(op) ? region.dtype : 'f32';
  return xs.map((x) => (x instanceof Tensor && isFloat(x.dtype) && x.dtype !== 'f64' && x.dtype !== to && !x.disposed ? castFor(x, to, region) : x)) as unknown as T;
}
