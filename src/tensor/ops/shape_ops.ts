/**
 * Shape and indexing ops. Views that keep the element order (reshape, flatten, squeeze,
 * unsqueeze) share storage; the rest go through the backend's strided `copy`, `gather` and
 * `scatterAdd` kernels.
 * @module
 */
import { noGrad, record } from '../../autograd/tape.js';
import { broadcastStrides, fmt, sizeOf, stridesOf, tryBroadcast } from '../shape.js';
import { tidy } from '../memory.js';
import { Tensor } from '../tensor.js';
import * as ew from './elementwise.js';
import { sum } from './reduce.js';
import { checkChoice, checkNumber, show } from '../validate.js';
import { computeDtype, desc, fail, freeTemps, inCompute, live, liveList, normAxes, normAxis, rawCast, scalarTensor } from './util.js';

/** Same elements, another shape (one entry may be −1, inferred). Shares storage. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  live('reshape', x);
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < -1))
    fail('reshape', `shape must be an array of integers ≥ -1, got ${show(shape)}`);
  const infer = shape.filter((d) => d === -1).length;
  if (infer > 1) fail('reshape', `only one dimension can be -1, got ${fmt(shape)}`);
  let target = [...shape];
  if (infer) {
    const known = sizeOf(shape.filter((d) => d !== -1));
    if (known === 0 || x.size % known !== 0)
      fail('reshape', `cannot infer -1 in ${fmt(shape)} for ${x.size} elements (shape ${fmt(x.shape)})`);
    target = shape.map((d) => (d === -1 ? x.size / known : d));
  }
  if (sizeOf(target) !== x.size)
    fail('reshape', `cannot reshape ${fmt(x.shape)} (${x.size} elements) to ${fmt(target)} (${sizeOf(target)} elements)`);
  return record('reshape', [x], x._view(target), { shape: x.shape });
}

/** Merge axes startDim..endDim (inclusive) into one. */
export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  live('flatten', x);
  if (x.rank === 0) {
    // a 0-d tensor flattens to [1]; its only axes are 0 and −1
    normAxis('flatten', startDim, 0);
    normAxis('flatten', endDim, 0);
    return reshape(x, [1]);
  }
  const s = normAxis('flatten', startDim, x.rank);
  const e = normAxis('flatten', endDim, x.rank);
  if (s > e) fail('flatten', `startDim ${startDim} comes after endDim ${endDim} for rank ${x.rank}`);
  return reshape(x, [...x.shape.slice(0, s), sizeOf(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

/** Remove axes of size 1 (all of them, or those named). */
export function squeeze(x: Tensor, axis?: number | number[]): Tensor {
  live('squeeze', x);
  const axes = axis === undefined ? x.shape.map((_, i) => i) : normAxes('squeeze', axis, x.rank);
  return reshape(
    x,
    x.shape.filter((d, i) => !(axes.includes(i) && d === 1)),
  );
}

/** Insert an axis of size 1 at `axis` (−1 appends). */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  live('unsqueeze', x);
  const a = normAxis('unsqueeze', axis, x.rank + 1);
  return reshape(x, [...x.shape.slice(0, a), 1, ...x.shape.slice(a)]);
}

function notScalar(op: string, x: Tensor): void {
  if (x.rank === 0) fail(op, 'cannot be applied to a 0-d tensor (it has no axis)');
}

/** Strided copy of `x` into a new contiguous tensor of `shape` (no autograd). */
function stridedCopy(x: Tensor, shape: readonly number[], srcStrides: readonly number[], srcOffset = 0): Tensor {
  const out = Tensor._empty(x.backend, shape, x.dtype);
  if (out.size > 0)
    x.backend.copy({
      src: x._storage('copy'),
      srcOffset,
      srcStrides,
      dst: out._storage('copy'),
      dstOffset: 0,
      dstStrides: stridesOf(shape),
      shape,
    });
  return out;
}

/** Reorder axes: output axis i is input axis dims[i]. */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  live('permute', x);
  if (!Array.isArray(dims) || dims.length !== x.rank)
    fail('permute', `expected ${x.rank} dims for shape ${fmt(x.shape)}, got ${show(dims)}`);
  const d = dims.map((a) => normAxis('permute', a, x.rank));
  if (new Set(d).size !== d.length) fail('permute', `dims ${fmt(dims)} repeat an axis`);
  const strides = stridesOf(x.shape);
  const out = stridedCopy(
    x,
    d.map((a) => x.shape[a]!),
    d.map((a) => strides[a]!),
  );
  return record('permute', [x], out, { dims: d });
}

/** Swap two axes (the last two by default). */
export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  live('transpose', x);
  if (x.rank < 2 && dim0 === -2 && dim1 === -1) fail('transpose', `needs at least 2 dimensions, got shape ${fmt(x.shape)}`);
  const a = normAxis('transpose', dim0, x.rank);
  const b = normAxis('transpose', dim1, x.rank);
  const dims = x.shape.map((_, i) => (i === a ? b : i === b ? a : i));
  return permute(x, dims);
}

/** Broadcast to `shape` (−1 keeps a size), materialised. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  live('expand', x);
  if (!Array.isArray(shape) || shape.length < x.rank || shape.some((d) => !Number.isInteger(d) || d < -1))
    fail('expand', `cannot expand ${fmt(x.shape)} to ${show(shape)}`);
  const lead = shape.length - x.rank;
  if (shape.some((d, i) => d === -1 && i < lead)) fail('expand', `-1 is not allowed for a new leading dimension: ${fmt(x.shape)} to ${fmt(shape)}`);
  const target = shape.map((d, i) => (d === -1 ? x.shape[i - lead]! : d));
  const b = tryBroadcast(x.shape, target);
  if (!b || b.some((d, i) => d !== target[i])) fail('expand', `cannot expand ${fmt(x.shape)} to ${fmt(target)}`);
  if (b.length === x.rank && b.every((d, i) => d === x.shape[i])) return x;
  return record('expand', [x], stridedCopy(x, target, broadcastStrides(x.shape, target)), { shape: x.shape });
}

/** Elements start, start+step, … (< end) along `axis`; negative start/end count from the end. */
export function slice(x: Tensor, axis: number, start = 0, end?: number, step = 1): Tensor {
  live('slice', x);
  notScalar('slice', x);
  const a = normAxis('slice', axis, x.rank);
  const n = x.shape[a]!;
  checkNumber('slice', 'start', start, { integer: true });
  if (end !== undefined) checkNumber('slice', 'end', end, { integer: true });
  checkNumber('slice', 'step', step, { integer: true, min: 1 });
  const clampIdx = (i: number): number => Math.min(n, Math.max(0, i < 0 ? i + n : i));
  const s = clampIdx(start);
  const e = end === undefined ? n : clampIdx(end);
  const len = Math.max(0, Math.ceil((e - s) / step));
  const strides = stridesOf(x.shape);
  const shape = x.shape.map((d, i) => (i === a ? len : d));
  const out = stridedCopy(
    x,
    shape,
    strides.map((st, i) => (i === a ? st * step : st)),
    s * strides[a]!,
  );
  return record('slice', [x], out, { axis: a, start: s, step, shape: x.shape });
}

/** `length` elements from `start` along `axis` (as `torch.narrow`). */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  live('narrow', x);
  notScalar('narrow', x);
  const a = normAxis('narrow', axis, x.rank);
  const n = x.shape[a]!;
  checkNumber('narrow', 'start', start, { integer: true });
  checkNumber('narrow', 'length', length, { integer: true, min: 0 });
  const s = start < 0 ? start + n : start;
  if (!Number.isInteger(start) || !Number.isInteger(length) || s < 0 || length < 0 || s + length > n)
    fail('narrow', `start ${start} and length ${length} are out of range for axis ${axis} of shape ${fmt(x.shape)}`);
  return slice(x, a, s, s + length);
}

/**
 * @internal The gradient of `slice`: `g` written into zeros of `shape` at the sliced positions.
 */
export function sliceBackward(g: Tensor, shape: readonly number[], axis: number, start: number, step: number): Tensor {
  const out = Tensor._empty(g.backend, shape, g.dtype);
  g.backend.fill({ out: out._storage('slice'), value: 0 });
  const strides = stridesOf(shape);
  if (g.size > 0)
    g.backend.copy({
      src: g._storage('slice'),
      srcOffset: 0,
      srcStrides: stridesOf(g.shape),
      dst: out._storage('slice'),
      dstOffset: start * strides[axis]!,
      dstStrides: strides.map((s, i) => (i === axis ? s * step : s)),
      shape: g.shape,
    });
  return out;
}

/** Join tensors along an existing axis (as `torch.cat`). */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  const backend = liveList('concat', xs);
  const first = xs[0]!;
  notScalar('concat', first);
  const a = normAxis('concat', axis, first.rank);
  const dtype = first.dtype;
  for (const t of xs) {
    if (t.rank !== first.rank || t.shape.some((d, i) => i !== a && d !== first.shape[i]))
      fail('concat', `shapes must match except along axis ${axis}: ${xs.map((t) => fmt(t.shape)).join(', ')}`);
    if (t.dtype !== dtype) fail('concat', `dtypes differ: ${xs.map((t) => t.dtype).join(', ')} (cast them to one first)`);
  }
  const total = xs.reduce((s, t) => s + t.shape[a]!, 0);
  const shape = first.shape.map((d, i) => (i === a ? total : d));
  const out = Tensor._empty(backend, shape, dtype);
  const dstStrides = stridesOf(shape);
  let offset = 0;
  for (const t of xs) {
    if (t.size > 0)
      backend.copy({
        src: t._storage('concat'),
        srcOffset: 0,
        srcStrides: stridesOf(t.shape),
        dst: out._storage('concat'),
        dstOffset: offset * dstStrides[a]!,
        dstStrides,
        shape: t.shape,
      });
    offset += t.shape[a]!;
  }
  return record('concat', [...xs], out, { axis: a, sizes: xs.map((t) => t.shape[a]!) });
}

/** Join tensors of one shape along a new axis. */
export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  liveList('stack', xs);
  const first = xs[0]!;
  for (const t of xs) {
    if (t.rank !== first.rank || t.shape.some((d, i) => d !== first.shape[i]))
      fail('stack', `all tensors must have one shape: ${xs.map((t) => fmt(t.shape)).join(', ')}`);
    if (t.dtype !== first.dtype) fail('stack', `dtypes differ: ${xs.map((t) => t.dtype).join(', ')} (cast them to one first)`);
  }
  const a = normAxis('stack', axis, first.rank + 1);
  const parts = xs.map((t) => unsqueeze(t, a));
  const out = concat(parts, a);
  freeTemps(out, ...parts);
  return out;
}

/** Split along `axis` into pieces of `size` (the last may be smaller) or of the listed sizes. */
export function split(x: Tensor, sizeOrSections: number | number[], axis = 0): Tensor[] {
  live('split', x);
  notScalar('split', x);
  const a = normAxis('split', axis, x.rank);
  const n = x.shape[a]!;
  let sizes: number[];
  if (!Array.isArray(sizeOrSections)) {
    checkNumber('split', 'the split size', sizeOrSections, { integer: true, min: 1 });
    sizes = [];
    for (let s = 0; s < n; s += sizeOrSections) sizes.push(Math.min(sizeOrSections, n - s));
    if (n === 0) sizes.push(0);
  } else {
    sizes = sizeOrSections;
    sizes.forEach((s, i) => checkNumber('split', `section ${i}`, s, { integer: true, min: 0 }));
    if (sizes.reduce((p, s) => p + s, 0) !== n)
      fail('split', `sections ${fmt(sizes)} do not add up to ${n} (axis ${axis} of ${fmt(x.shape)})`);
  }
  let start = 0;
  return sizes.map((s) => {
    const piece = slice(x, a, start, start + s);
    start += s;
    return piece;
  });
}

/** Split into `chunks` pieces of ⌈n/chunks⌉ along `axis` (fewer when n is small, as torch.chunk). */
export function chunk(x: Tensor, chunks: number, axis = 0): Tensor[] {
  live('chunk', x);
  checkNumber('chunk', 'chunks', chunks, { integer: true, min: 1 });
  notScalar('chunk', x);
  const a = normAxis('chunk', axis, x.rank);
  // an empty axis splits into `chunks` empty pieces, as torch.chunk
  if (x.shape[a] === 0) return split(x, new Array<number>(chunks).fill(0), a);
  return split(x, Math.max(1, Math.ceil(x.shape[a]! / chunks)), a);
}

/**
 * @internal Index tensors are i32. Their values are checked by the kernels, on the device: an
 * index outside [0, limit) is a fault that the next read or sync throws, naming `op`.
 */
export function checkIndex(op: string, index: Tensor): void {
  if (index.dtype !== 'i32') fail(op, `index must be i32, got ${desc(index)}`);
}

/**
 * @internal Fault (at the next read or sync, naming `op`) when an element of `index` is outside
 * [0, limit): for ops whose kernels would not visit every index (an empty output) or that have none.
 */
export function checkIndexRange(op: string, index: Tensor, limit: number): void {
  if (index.size === 0) return;
  const ok = noGrad(() => tidy(() => ew.logicalAnd(ew.ge(index, 0), ew.lt(index, limit))));
  index.backend.check({ cond: ok._storage(op), values: index._storage(op), op, message: `index {value} is out of range [0, ${limit})` });
  ok.dispose();
}

// The gather/scatterAdd layout of `x` ([outer, srcDim, inner] around axis a) with index strides.
function indexLayout(shape: readonly number[], a: number, index: Tensor, n: number, strides: [number, number, number], op: string) {
  return {
    index: index._storage(op),
    indexStrides: strides,
    outer: sizeOf(shape.slice(0, a)),
    srcDim: shape[a]!,
    n,
    inner: sizeOf(shape.slice(a + 1)),
    op,
  };
}

/** @internal {@link indexSelect} reporting bad indices as `op` (embedding uses it). */
export function indexSelectAs(op: string, x: Tensor, axis: number, index: Tensor): Tensor {
  live(op, x, index);
  const a = normAxis(op, axis, x.rank);
  notScalar(op, x);
  if (index.rank !== 1) fail(op, `index must be 1-D, got ${desc(index)}`);
  checkIndex(op, index);
  const shape = x.shape.map((d, i) => (i === a ? index.size : d));
  const out = Tensor._empty(x.backend, shape, x.dtype);
  if (out.size > 0)
    x.backend.gather({ x: x._storage(op), out: out._storage(op), ...indexLayout(x.shape, a, index, index.size, [0, 1, 0], op) });
  else checkIndexRange(op, index, x.shape[a]!); // the kernel visits no index: check them anyway
  return record('indexSelect', [x], out, { axis: a, index, shape: x.shape, op });
}

/** Entries `index` (1-D i32) of `x` along `axis` (as `torch.index_select`). An index out of range is reported by the next read or sync. */
export function indexSelect(x: Tensor, axis: number, index: Tensor): Tensor {
  return indexSelectAs('indexSelect', x, axis, index);
}

/** `out[..., j, ...] = x[..., index[..., j, ...], ...]` along `axis` (as `torch.gather`; index has x's shape off the axis). */
export function gather(x: Tensor, axis: number, index: Tensor): Tensor {
  live('gather', x, index);
  const a = normAxis('gather', axis, x.rank);
  notScalar('gather', x);
  if (index.rank !== x.rank || index.shape.some((d, i) => i !== a && d !== x.shape[i]))
    fail('gather', `index shape ${fmt(index.shape)} must match input shape ${fmt(x.shape)} except along axis ${axis}`);
  checkIndex('gather', index);
  const n = index.shape[a]!;
  const inner = sizeOf(x.shape.slice(a + 1));
  const out = Tensor._empty(x.backend, index.shape, x.dtype);
  if (out.size > 0)
    x.backend.gather({ x: x._storage('gather'), out: out._storage('gather'), ...indexLayout(x.shape, a, index, n, [n * inner, inner, 1], 'gather') });
  else checkIndexRange('gather', index, x.shape[a]!);
  return record('gather', [x], out, { axis: a, index, shape: x.shape, op: 'gather' });
}

/**
 * @internal Add `src` into zeros (or a copy of `base`) at `index` along `axis`, with the index
 * strides of gather (`broadcast` false) or index_select (`broadcast` true).
 */
export function scatterAddInto(
  base: Tensor | readonly number[],
  axis: number,
  index: Tensor,
  src: Tensor,
  broadcast: boolean,
  op = 'scatterAdd',
): Tensor {
  const backend = src.backend;
  const shape = base instanceof Tensor ? base.shape : base;
  const cd = computeDtype(backend, 'elementwise', src.dtype);
  return inCompute(base instanceof Tensor ? [base, src] : [src], cd, src.dtype, (xs) => {
    const out = Tensor._empty(backend, shape, cd);
    if (base instanceof Tensor) backend.cast({ x: xs[0]!._storage(op), out: out._storage(op) });
    else backend.fill({ out: out._storage(op), value: 0 });
    const s = xs[xs.length - 1]!;
    const n = broadcast ? index.size : index.shape[axis]!;
    const inner = sizeOf(shape.slice(axis + 1));
    if (s.size > 0)
      backend.scatterAdd({
        dst: out._storage(op),
        src: s._storage(op),
        ...indexLayout(shape, axis, index, n, broadcast ? [0, 1, 0] : [n * inner, inner, 1], op),
      });
    else checkIndexRange(op, index, shape[axis]!);
    return out;
  });
}

/** `x` with `src[..., j, ...]` added at `x[..., index[..., j, ...], ...]` along `axis` (as `torch.scatter_add`). */
export function scatterAdd(x: Tensor, axis: number, index: Tensor, src: Tensor): Tensor {
  live('scatterAdd', x, index, src);
  const a = normAxis('scatterAdd', axis, x.rank);
  notScalar('scatterAdd', x);
  if (src.dtype !== x.dtype) fail('scatterAdd', `src dtype ${src.dtype} differs from input dtype ${x.dtype}`);
  if (index.rank !== x.rank || index.shape.some((d, i) => d !== src.shape[i] || (i !== a && d !== x.shape[i])))
    fail(
      'scatterAdd',
      `index ${fmt(index.shape)} must have src's shape ${fmt(src.shape)} and match input ${fmt(x.shape)} except along axis ${axis}`,
    );
  checkIndex('scatterAdd', index);
  return record('scatterAdd', [x, src], scatterAddInto(x, a, index, src, false), { axis: a, index });
}

/** One-hot encoding of i32 class indices: shape [...index.shape, numClasses], dtype i32 by default. */
export function oneHot(index: Tensor, numClasses: number, dtype: 'i32' | 'f32' | 'f64' | 'bool' = 'i32'): Tensor {
  live('oneHot', index);
  checkNumber('oneHot', 'numClasses', numClasses, { integer: true, min: 1 });
  checkChoice('oneHot', 'dtype', dtype, ['i32', 'f32', 'f64', 'bool'] as const);
  checkIndex('oneHot', index);
  checkIndexRange('oneHot', index, numClasses);
  const classes = Tensor._empty(index.backend, [numClasses], 'i32');
  index.backend.write(classes._storage('oneHot'), Int32Array.from({ length: numClasses }, (_, i) => i));
  const col = unsqueeze(index, -1);
  const hot = ew.eq(col, classes);
  col.dispose();
  classes.dispose();
  if (dtype === 'bool') return hot;
  const out = rawCast(hot, dtype);
  hot.dispose();
  return out;
}

/** Replace elements where `mask` (bool, broadcast to x) is true by `value`. */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  live('maskedFill', x, mask);
  if (mask.dtype !== 'bool') fail('maskedFill', `mask must be bool, got ${desc(mask)}`);
  if (typeof value !== 'number' && typeof value !== 'boolean') fail('maskedFill', `value must be a number, got ${show(value)}`);
  const b = tryBroadcast(x.shape, mask.shape);
  if (!b || b.length !== x.rank || b.some((d, i) => d !== x.shape[i]))
    fail('maskedFill', `mask ${fmt(mask.shape)} does not broadcast to input ${fmt(x.shape)}`);
  const v = scalarTensor(x.backend, Number(value), x.dtype, 'maskedFill');
  const out = ew.where(mask, v, x);
  freeTemps(out, v);
  return out;
}

// Mask of (col − row ≥ k) over the last two axes, [rows, cols].
function triangleMask(x: Tensor, op: string, diagonal: number, upper: boolean): Tensor {
  if (x.rank < 2) fail(op, `needs at least 2 dimensions, got shape ${fmt(x.shape)}`);
  checkNumber(op, 'diagonal', diagonal, { integer: true });
  const rows = x.shape[x.rank - 2]!;
  const cols = x.shape[x.rank - 1]!;
  const m = new Uint8Array(rows * cols);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) m[i * cols + j] = (upper ? j - i >= diagonal : j - i <= diagonal) ? 1 : 0;
  const t = Tensor._empty(x.backend, [rows, cols], 'bool');
  x.backend.write(t._storage(op), m);
  return t;
}

function triangle(x: Tensor, op: string, diagonal: number, upper: boolean): Tensor {
  live(op, x);
  const mask = triangleMask(x, op, diagonal, upper);
  const zero = scalarTensor(x.backend, 0, x.dtype);
  const out = ew.where(mask, x, zero);
  freeTemps(out, mask, zero);
  return out;
}

/** Upper triangle of the last two axes: entries with col − row ≥ diagonal kept, the rest 0. */
export const triu = (x: Tensor, diagonal = 0): Tensor => triangle(x, 'triu', diagonal, true);
/** Lower triangle of the last two axes: entries with col − row ≤ diagonal kept, the rest 0. */
export const tril = (x: Tensor, diagonal = 0): Tensor => triangle(x, 'tril', diagonal, false);

/** @internal Sum `g` down to `shape` over the axes that broadcasting expanded. */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (g.rank === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  const s = sum(g, axes, true);
  const out = s._view(shape);
  s.dispose();
  return out;
}

/** @internal Write `src` (broadcast and cast) into `dst`'s storage in place. */
export function copyInto(dst: Tensor, src: Tensor | number): void {
  live('copy_', dst);
  if (src instanceof Tensor) live('copy_', src);
  else if (typeof src !== 'number') fail('copy_', `src must be a Tensor or a number, got ${show(src)}`);
  // like torch's copy_, the source may live on another backend: it is moved first
  const s = src instanceof Tensor ? (src.backend === dst.backend ? src : noGrad(() => src.to(dst.backend.name))) : scalarTensor(dst.backend, Number(src), dst.dtype, 'copy_');
  const b = tryBroadcast(dst.shape, s.shape);
  if (!b || b.length !== dst.rank || b.some((d, i) => d !== dst.shape[i]))
    fail('copy_', `source ${fmt(s.shape)} does not broadcast to destination ${fmt(dst.shape)}`);
  const sc = rawCast(s, dst.dtype);
  if (dst.size > 0)
    dst.backend.copy({
      src: sc._storage('copy_'),
      srcOffset: 0,
      srcStrides: broadcastStrides(sc.shape, dst.shape),
      dst: dst._storage('copy_'),
      dstOffset: 0,
      dstStrides: stridesOf(dst.shape),
      shape: dst.shape,
    });
  if (sc !== s) sc.dispose();
  if (s !== src) s.dispose();
  dst._bumpVersion();
}
