/**
 * `Tensor`: a shape, a dtype, a backend and a refcounted storage, plus the autograd fields.
 * Tensors are row-major and contiguous; `reshape` and friends share storage, every other op
 * writes a new one. Methods are thin aliases of the functions in `ops/`.
 * @module
 */
import type { Backend, Storage } from '../backend/backend.js';
import { decode, itemSize, type DataArray, type DType, type StorageArray } from '../backend/dtype.js';
import { backendFor } from '../backend/registry.js';
import { isGradEnabled, record, runBackward, type Node } from '../autograd/tape.js';
import { StorageRef, track, untrack, type Tracked } from './memory.js';
import { fmt, sizeOf, type Shape } from './shape.js';
import * as ew from './ops/elementwise.js';
import * as red from './ops/reduce.js';
import * as sh from './ops/shape_ops.js';
import * as nn from './ops/nn.js';
import { isFloat } from '../backend/dtype.js';
import { checkBoolean, checkKeys, show } from './validate.js';

/** Nested arrays of numbers (or booleans), as `arraySync()` returns and `tensor()` accepts. */
export type NestedArray = number | boolean | NestedArray[];

let nextId = 1;

export class Tensor implements Tracked, Disposable {
  /** Unique id, for debugging and graph bookkeeping. */
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly backend: Backend;
  /** Accumulated gradient, set by `backward()` when this tensor requires grad. */
  grad: Tensor | null = null;
  /** @internal */ _scope: Set<Tracked> | null = null;
  private _buf: StorageRef | null;
  private _requiresGrad = false;
  private _gradFn: Node | null = null;
  private _retainsGrad = false;
  private _gradHooks: ((t: Tensor) => void)[] | null = null;
  // identity handed to the FinalizationRegistry (never the tensor itself, so it can be collected)
  private readonly _token = {};

  /** @internal Use the creation functions (`tensor`, `zeros`, …) instead. */
  constructor(buf: StorageRef, shape: Shape, dtype: DType) {
    this._buf = buf;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.backend = buf.backend;
    track(this, buf, this._token);
  }

  /** @internal A new tensor over a fresh storage. */
  static _fromStorage(backend: Backend, storage: Storage, shape: Shape): Tensor {
    return new Tensor(new StorageRef(backend, storage), shape, storage.dtype);
  }

  /**
   * @internal A new tensor of `shape` and `dtype` with uninitialised contents: the one allocation
   * path, which checks the size against what the backend can hold before it allocates. `op`
   * names the public op in the error.
   */
  static _empty(backend: Backend, shape: Shape, dtype: DType, op = 'alloc'): Tensor {
    if (!backend.dtypes.includes(dtype)) throw new Error(`${op}: ${storableMessage(backend, dtype)}`);
    const n = sizeOf(shape);
    const max = backend.maxElements(dtype);
    if (!(n <= max))
      throw new Error(
        `${op}: cannot allocate ${fmt(shape)} ${dtype} (${gib(n * itemSize(dtype))}): backend '${backend.name}' holds at most ${max} elements of ${dtype} in one tensor`,
      );
    let storage: Storage;
    try {
      storage = backend.alloc(dtype, n);
    } catch (e) {
      throw new Error(`${op}: cannot allocate ${fmt(shape)} ${dtype} (${gib(n * itemSize(dtype))}): ${(e as Error).message}`);
    }
    return Tensor._fromStorage(backend, storage, shape);
  }

  /** @internal A view with another shape over the same storage. */
  _view(shape: Shape): Tensor {
    return new Tensor(this._ref('reshape').retain(), shape, this.dtype);
  }

  /** @internal The version of this tensor's storage: how many in-place writes it has had. */
  get _version(): number {
    return this._ref('version').version;
  }

  /** @internal Record an in-place write to this tensor's storage (and so to every view of it). */
  _bumpVersion(): void {
    this._ref('version').version++;
  }

  /** @internal Whether another tensor shares this one's storage. */
  _isShared(): boolean {
    return this._ref('share').refs > 1;
  }

  /** Number of elements. */
  get size(): number {
    return sizeOf(this.shape);
  }

  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  get disposed(): boolean {
    return this._buf === null;
  }

  /** @internal The storage; throws, naming `op`, if the tensor was disposed. */
  _storage(op: string): Storage {
    return this._ref(op).storage;
  }

  private _ref(op: string): StorageRef {
    if (!this._buf) throw new Error(`${op}: tensor was disposed (shape ${fmt(this.shape)}, ${this.dtype})`);
    return this._buf;
  }

  /** Free the storage (once no view shares it) and the gradient. Safe to call twice. */
  dispose(): void {
    if (!this._buf) return;
    untrack(this, this._buf, this._token);
    this._buf = null;
    this._gradFn = null;
    this.grad?.dispose();
    this.grad = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return `Tensor(${fmt(this.shape)}, ${this.dtype}, ${this.backend.name}${this._requiresGrad ? ', requiresGrad' : ''})`;
  }

  // ---- autograd ------------------------------------------------------------------------

  /** Whether gradients flow to (or through) this tensor. */
  get requiresGrad(): boolean {
    return this._requiresGrad;
  }

  set requiresGrad(v: boolean) {
    checkBoolean('requiresGrad', 'the value', v);
    this._storage('requiresGrad');
    if (v && !isFloat(this.dtype))
      throw new Error(`requiresGrad: only floating tensors can require gradients (got ${this.dtype})`);
    if (!v && this._gradFn) throw new Error('requiresGrad: cannot turn off on a non-leaf tensor; use detach()');
    this._requiresGrad = v;
  }

  /** Set {@link requiresGrad} and return this tensor (like `requires_grad_()`). */
  requiresGrad_(v = true): this {
    this.requiresGrad = v;
    return this;
  }

  /** The node that produced this tensor, or null for a leaf. */
  get gradFn(): Node | null {
    return this._gradFn;
  }

  /** A leaf is a tensor created by the user rather than by an op on tensors that require grad. */
  get isLeaf(): boolean {
    return this._gradFn === null;
  }

  /** @internal */
  _setGradFn(node: Node): void {
    node.output = this;
    this._gradFn = node;
    this._requiresGrad = true;
  }

  /** Keep this non-leaf tensor's gradient in `.grad` during backward. */
  retainGrad(): this {
    this._retainsGrad = true;
    return this;
  }

  /** @internal */
  get retainsGrad(): boolean {
    return this._retainsGrad;
  }

  /**
   * Call `hook(this)` each time a backward has accumulated into this tensor's `.grad` (as
   * `torch.Tensor.register_post_accumulate_grad_hook`): its gradient for that backward is then
   * complete. Data parallelism starts reducing a bucket of gradients here, while the backward goes
   * on. Returns a function that removes the hook.
   */
  registerPostAccumulateGradHook(hook: (t: Tensor) => void): () => void {
    if (this.disposed) throw new Error(`registerPostAccumulateGradHook: the tensor was disposed (${this.toString()})`);
    if (typeof hook !== 'function') throw new Error(`registerPostAccumulateGradHook: hook must be a function, got ${show(hook)}`);
    (this._gradHooks ??= []).push(hook);
    return () => {
      const i = this._gradHooks?.indexOf(hook) ?? -1;
      if (i >= 0) this._gradHooks!.splice(i, 1);
    };
  }

  /** @internal The hooks of {@link registerPostAccumulateGradHook}. */
  get _postAccumulateGradHooks(): readonly ((t: Tensor) => void)[] {
    return this._gradHooks ?? [];
  }

  /**
   * Backpropagate from this tensor: accumulate d(this)/d(leaf) into `.grad` of every leaf that
   * requires grad. A non-scalar tensor needs `grad`, the upstream gradient of its shape.
   */
  backward(grad?: Tensor, opts: { retainGraph?: boolean } = {}): void {
    checkKeys('backward', opts, ['retainGraph']);
    if (grad !== undefined && grad !== null && !(grad instanceof Tensor)) throw new Error(`backward: grad must be a Tensor, got ${show(grad)}`);
    runBackward(this, grad ?? undefined, opts?.retainGraph === undefined ? false : checkBoolean('backward', 'retainGraph', opts.retainGraph));
  }

  /** A tensor sharing this one's storage, cut from the graph. */
  detach(): Tensor {
    this._storage('detach');
    return this._view(this.shape);
  }

  /** Drop the gradient. */
  zeroGrad(): void {
    this.grad?.dispose();
    this.grad = null;
  }

  // ---- reading ---------------------------------------------------------------------------

  /**
   * The elements, once all work queued on the backend before this call has finished (halves
   * widened to Float32Array). Rejects with a pending device fault (an index out of range found
   * by a kernel) naming the op that found it.
   */
  async data(): Promise<DataArray> {
    return decode(await this.backend.read(this._storage('data')), this.dtype);
  }

  /**
   * The elements, synchronously: only on backends whose memory the host reads at once (`ref`,
   * `cpu`); GPU backends have no synchronous read (use `await data()`).
   */
  dataSync(): DataArray {
    return decode(readSync('dataSync', this), this.dtype);
  }

  /** The elements as nested arrays (booleans for bool). */
  async array(): Promise<NestedArray> {
    this._storage('array');
    return nest(await this.data(), this.shape, this.dtype);
  }

  /** {@link array}, synchronously (see {@link dataSync}). */
  arraySync(): NestedArray {
    return nest(decode(readSync('arraySync', this), this.dtype), this.shape, this.dtype);
  }

  /** The value of a one-element tensor, once the work producing it has finished. */
  async item(): Promise<number> {
    this._storage('item');
    if (this.size !== 1) throw new Error(`item: tensor has ${this.size} elements (shape ${fmt(this.shape)}), expected 1`);
    return (await this.data())[0]!;
  }

  /** {@link item}, synchronously (see {@link dataSync}). */
  itemSync(): number {
    this._storage('itemSync');
    if (this.size !== 1) throw new Error(`itemSync: tensor has ${this.size} elements (shape ${fmt(this.shape)}), expected 1`);
    return decode(readSync('itemSync', this), this.dtype)[0]!;
  }

  /**
   * A copy on backend `name` (this tensor itself when already there); gradients flow back. The
   * source must be readable synchronously (a host backend); from a GPU use `await toAsync(name)`.
   */
  to(name: string): Tensor {
    this._storage('to');
    if (typeof name !== 'string') throw new Error(`to: expected a backend's name, got ${show(name)}`);
    const target = backendFor('to', name);
    if (target === this.backend) return this;
    return moveTo(this, target, readSync('to', this));
  }

  /** {@link to}, for any source backend: waits for the source's queued work. */
  async toAsync(name: string): Promise<Tensor> {
    this._storage('toAsync');
    if (typeof name !== 'string') throw new Error(`toAsync: expected a backend's name, got ${show(name)}`);
    const target = backendFor('toAsync', name);
    if (target === this.backend) return this;
    return moveTo(this, target, await this.backend.read(this._storage('toAsync')));
  }

  /**
   * Copy `src`'s values into this tensor's storage in place (like `copy_`), broadcasting src to
   * this shape. Views of this tensor see the change. Not recorded by autograd.
   */
  copy_(src: Tensor | number): this {
    if (this._requiresGrad && this.isLeaf && isGradEnabled())
      throw new Error('copy_: a leaf tensor that requires grad is used in an in-place op; wrap it in noGrad()');
    sh.copyInto(this, src);
    return this;
  }

  // ---- elementwise -----------------------------------------------------------------------
  add(b: Tensor | number): Tensor { return ew.add(this, b); }
  sub(b: Tensor | number): Tensor { return ew.sub(this, b); }
  mul(b: Tensor | number): Tensor { return ew.mul(this, b); }
  div(b: Tensor | number): Tensor { return ew.div(this, b); }
  pow(b: Tensor | number): Tensor { return ew.pow(this, b); }
  maximum(b: Tensor | number): Tensor { return ew.maximum(this, b); }
  minimum(b: Tensor | number): Tensor { return ew.minimum(this, b); }
  eq(b: Tensor | number): Tensor { return ew.eq(this, b); }
  ne(b: Tensor | number): Tensor { return ew.ne(this, b); }
  lt(b: Tensor | number): Tensor { return ew.lt(this, b); }
  le(b: Tensor | number): Tensor { return ew.le(this, b); }
  gt(b: Tensor | number): Tensor { return ew.gt(this, b); }
  ge(b: Tensor | number): Tensor { return ew.ge(this, b); }
  neg(): Tensor { return ew.neg(this); }
  abs(): Tensor { return ew.abs(this); }
  sign(): Tensor { return ew.sign(this); }
  exp(): Tensor { return ew.exp(this); }
  log(): Tensor { return ew.log(this); }
  sqrt(): Tensor { return ew.sqrt(this); }
  rsqrt(): Tensor { return ew.rsqrt(this); }
  square(): Tensor { return ew.mul(this, this); }
  /** A copy with its own storage (differentiable). */
  clone(): Tensor { return ew.clone(this); }
  sin(): Tensor { return ew.sin(this); }
  cos(): Tensor { return ew.cos(this); }
  tanh(): Tensor { return ew.tanh(this); }
  sigmoid(): Tensor { return ew.sigmoid(this); }
  relu(): Tensor { return ew.relu(this); }
  gelu(opts?: { approximate?: 'none' | 'tanh' }): Tensor { return ew.gelu(this, opts); }
  silu(): Tensor { return ew.silu(this); }
  erf(): Tensor { return ew.erf(this); }
  clamp(min?: number | Tensor | null, max?: number | Tensor | null): Tensor { return ew.clamp(this, min, max); }
  isfinite(): Tensor { return ew.isfinite(this); }
  logicalNot(): Tensor { return ew.logicalNot(this); }
  /** This tensor converted to `dtype` (itself when it already has it). */
  cast(dtype: DType): Tensor { return ew.cast(this, dtype); }

  // ---- reductions ------------------------------------------------------------------------
  sum(axis?: number | number[] | null, keepdim?: boolean): Tensor { return red.sum(this, axis, keepdim); }
  mean(axis?: number | number[] | null, keepdim?: boolean): Tensor { return red.mean(this, axis, keepdim); }
  max(axis?: number | number[] | null, keepdim?: boolean): Tensor { return red.max(this, axis, keepdim); }
  min(axis?: number | number[] | null, keepdim?: boolean): Tensor { return red.min(this, axis, keepdim); }
  argmax(axis?: number | null, keepdim?: boolean): Tensor { return red.argmax(this, axis, keepdim); }
  argmin(axis?: number | null, keepdim?: boolean): Tensor { return red.argmin(this, axis, keepdim); }
  logsumexp(axis?: number | number[] | null, keepdim?: boolean): Tensor { return red.logsumexp(this, axis, keepdim); }
  var(axis?: number | number[] | null, opts?: red.VarOptions): Tensor { return red.variance(this, axis, opts); }
  std(axis?: number | number[] | null, opts?: red.VarOptions): Tensor { return red.std(this, axis, opts); }
  norm(p?: number, axis?: number | number[] | null, keepdim?: boolean): Tensor { return red.norm(this, p, axis, keepdim); }

  // ---- shape -----------------------------------------------------------------------------
  reshape(shape: readonly number[]): Tensor { return sh.reshape(this, shape); }
  /** Alias of {@link reshape}. */
  view(shape: readonly number[]): Tensor { return sh.reshape(this, shape); }
  flatten(startDim?: number, endDim?: number): Tensor { return sh.flatten(this, startDim, endDim); }
  squeeze(axis?: number | number[]): Tensor { return sh.squeeze(this, axis); }
  unsqueeze(axis: number): Tensor { return sh.unsqueeze(this, axis); }
  transpose(dim0?: number, dim1?: number): Tensor { return sh.transpose(this, dim0, dim1); }
  /** Transpose of the last two axes. */
  get mT(): Tensor { return sh.transpose(this, -2, -1); }
  permute(dims: readonly number[]): Tensor { return sh.permute(this, dims); }
  expand(shape: readonly number[]): Tensor { return sh.expand(this, shape); }
  narrow(axis: number, start: number, length: number): Tensor { return sh.narrow(this, axis, start, length); }
  slice(axis: number, start?: number, end?: number, step?: number): Tensor { return sh.slice(this, axis, start, end, step); }
  split(sizeOrSections: number | number[], axis?: number): Tensor[] { return sh.split(this, sizeOrSections, axis); }
  chunk(chunks: number, axis?: number): Tensor[] { return sh.chunk(this, chunks, axis); }
  indexSelect(axis: number, index: Tensor): Tensor { return sh.indexSelect(this, axis, index); }
  gather(axis: number, index: Tensor): Tensor { return sh.gather(this, axis, index); }
  scatterAdd(axis: number, index: Tensor, src: Tensor): Tensor { return sh.scatterAdd(this, axis, index, src); }
  maskedFill(mask: Tensor, value: number): Tensor { return sh.maskedFill(this, mask, value); }
  triu(diagonal?: number): Tensor { return sh.triu(this, diagonal); }
  tril(diagonal?: number): Tensor { return sh.tril(this, diagonal); }

  // ---- nn --------------------------------------------------------------------------------
  matmul(b: Tensor, opts?: nn.MatmulOptions): Tensor { return nn.matmul(this, b, opts); }
  softmax(axis?: number): Tensor { return nn.softmax(this, axis); }
  logSoftmax(axis?: number): Tensor { return nn.logSoftmax(this, axis); }
}

const gib = (bytes: number): string => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toPrecision(3)} GiB` : bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toPrecision(3)} MiB` : `${bytes} bytes`);

/** @internal Why `backend` cannot hold `dtype`. */
export function storableMessage(backend: Backend, dtype: DType): string {
  return `backend '${backend.name}' cannot store ${dtype} tensors (it stores ${backend.dtypes.join(', ')}); cast to one of those first`;
}

// The raw elements of `t`, read synchronously, or an Error naming `op` and the async way.
function readSync(op: string, t: Tensor): StorageArray {
  const s = t._storage(op);
  const read = t.backend.readSync;
  if (!read) {
    const alt = op === 'to' ? 'await toAsync(name)' : op === 'itemSync' ? 'await item()' : op === 'arraySync' ? 'await array()' : 'await data()';
    throw new Error(`${op}: backend '${t.backend.name}' cannot read synchronously; use ${alt}`);
  }
  return read.call(t.backend, s);
}

function nest(data: DataArray, shape: Shape, dtype: DType): NestedArray {
  const asValue = dtype === 'bool' ? (v: number) => v !== 0 : (v: number) => v;
  if (shape.length === 0) return asValue(data[0]!);
  const build = (dim: number, offset: number): NestedArray[] => {
    const n = shape[dim]!;
    const stride = sizeOf(shape.slice(dim + 1));
    const out: NestedArray[] = [];
    for (let i = 0; i < n; i++)
      out.push(dim === shape.length - 1 ? asValue(data[offset + i]!) : build(dim + 1, offset + i * stride));
    return out;
  };
  return build(0, 0);
}

// A copy on `target`; differentiable (the gradient moves back to the source backend).
function moveTo(t: Tensor, target: Backend, data: StorageArray): Tensor {
  if (!target.dtypes.includes(t.dtype)) throw new Error(`to: ${storableMessage(target, t.dtype)}`);
  const s = target.alloc(t.dtype, t.size);
  target.write(s, data);
  return record('to', [t], Tensor._fromStorage(target, s, t.shape), { from: t.backend.name });
}
