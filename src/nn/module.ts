/**
 * `Module`: the base of every layer and model. A module owns parameters (leaf tensors that
 * require grad), buffers (tensors that are state but not trained) and child modules, each under
 * a name; dotted paths of those names (`transformer.h.0.attn.c_attn.weight`) name every tensor
 * in a state dict, so checkpoints map 1:1 onto PyTorch and Hugging Face names. The layers keep
 * each child in a field spelled as its registered name (`block.ln_1`, `attn.c_attn`), so code
 * and checkpoint keys read the same.
 * @module
 */
import { isFloat } from '../backend/dtype.js';
import { backendFor } from '../backend/registry.js';
import { noGrad } from '../autograd/tape.js';
import { keep } from '../tensor/memory.js';
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkNumber, show } from '../tensor/validate.js';
import { options } from './validate.js';
import { asOp, relabel } from '../tensor/ops/util.js';

/** A state dict: dotted names to tensors, in registration order. */
export type StateDict = Record<string, Tensor>;

/** Options of {@link Module.loadStateDict}. */
export interface LoadStateDictOptions {
  /**
   * Throw when the state lacks an entry of the module or has one the module does not (default
   * true). Shape mismatches throw either way, as in PyTorch.
   */
  strict?: boolean;
}

/** What {@link Module.loadStateDict} did not load. */
export interface LoadStateDictResult {
  /** Entries of the module that the state did not provide. */
  missingKeys: string[];
  /** Entries of the state that the module does not have. */
  unexpectedKeys: string[];
}

/** Options of {@link Module.registerBuffer}. */
export interface BufferOptions {
  /** Whether the buffer is part of the state dict (default true). */
  persistent?: boolean;
}

interface BufferSlot {
  tensor: Tensor;
  persistent: boolean;
}

function checkName(owner: Module, kind: string, name: string): void {
  if (typeof name !== 'string' || name === '' || name.includes('.'))
    throw new Error(`${owner.constructor.name}.${kind}: name must be a non-empty string without '.', got ${show(name)}`);
}

// a name to look up (a member, a dotted path)
function checkString(op: string, what: string, value: unknown): string {
  if (typeof value !== 'string') throw new Error(`${op}: ${what} must be a string, got ${show(value)}`);
  return value;
}

// the optional flag of train(), requiresGrad_() and numParameters()
function optionalFlag(op: string, name: string, value: unknown, fallback: boolean): boolean {
  return value === undefined ? fallback : checkBoolean(op, name, value);
}

// a backend name for to() and toAsync(), checked before anything moves
function checkBackendName(op: string, name: unknown): string {
  if (typeof name !== 'string') throw new Error(`${op}: expected a backend's name, got ${show(name)}`);
  backendFor(op, name);
  return name;
}

/**
 * The base class of layers and models (like `torch.nn.Module`). Subclasses register their
 * parameters, buffers and children in the constructor and implement {@link forward}.
 *
 * Parameters live outside every `tidy` scope (they are `keep()`-ed when registered) until
 * {@link dispose}. Modules do not free the intermediates of a forward pass: run training and
 * inference steps inside `tidy`.
 *
 * @example
 * class Affine extends Module {
 *   constructor() {
 *     super();
 *     this.registerParameter('weight', ones([3]));
 *     this.registerParameter('bias', zeros([3]));
 *   }
 *   get weight(): Tensor { return this.getParameter('weight'); }
 *   get bias(): Tensor { return this.getParameter('bias'); }
 *   forward(x: Tensor): Tensor { return x.mul(this.weight).add(this.bias); }
 * }
 */
export abstract class Module {
  /** Training mode (dropout active); set with {@link train} and {@link eval}, for the whole tree. */
  training = true;
  private readonly _parameters = new Map<string, Tensor>();
  private readonly _buffers = new Map<string, BufferSlot>();
  private readonly _modules = new Map<string, Module>();

  /** The computation of this module; subclasses define its arguments and result. */
  abstract forward(...args: never[]): unknown;

  /** Sugar for {@link forward} (as calling a PyTorch module). */
  call(...args: Parameters<this['forward']>): ReturnType<this['forward']> {
    return (this.forward as (...a: unknown[]) => ReturnType<this['forward']>)(...args);
  }

  // ---- registration ----------------------------------------------------------------------

  private checkFree(kind: string, name: string, allow: 'parameter' | 'buffer' | 'module'): void {
    checkName(this, kind, name);
    const taken =
      (allow !== 'parameter' && this._parameters.has(name)) ||
      (allow !== 'buffer' && this._buffers.has(name)) ||
      (allow !== 'module' && this._modules.has(name));
    if (taken) throw new Error(`${this.constructor.name}.${kind}: '${name}' is already registered as another kind of member`);
  }

  /**
   * Register `t` as parameter `name` (replacing one of that name) and return it. The tensor
   * becomes a leaf that requires grad and is taken out of every tidy scope. Passing a tensor
   * another module registered ties the two (as GPT-2 ties `lm_head.weight` to
   * `transformer.wte.weight`).
   */
  registerParameter(name: string, t: Tensor): Tensor {
    const op = `${this.constructor.name}.registerParameter`;
    this.checkFree('registerParameter', name, 'parameter');
    if (!(t instanceof Tensor)) throw new Error(`${op}: '${name}' must be a Tensor, got ${show(t)}`);
    t._storage(op);
    if (!t.isLeaf) throw new Error(`${op}: '${name}' must be a leaf tensor (use detach())`);
    if (!isFloat(t.dtype)) throw new Error(`${op}: '${name}' must be floating, got ${t.dtype}`);
    t.requiresGrad = true;
    this._parameters.set(name, keep(t));
    return t;
  }

  /** Register a buffer: state that moves with the module but is not trained (such as RoPE tables). */
  registerBuffer(name: string, t: Tensor, opts: BufferOptions = {}): Tensor {
    const op = `${this.constructor.name}.registerBuffer`;
    this.checkFree('registerBuffer', name, 'buffer');
    if (!(t instanceof Tensor)) throw new Error(`${op}: '${name}' must be a Tensor, got ${show(t)}`);
    t._storage(op);
    const o = options(op, opts, ['persistent']);
    const persistent = optionalFlag(op, 'persistent', o.persistent, true);
    this._buffers.set(name, { tensor: keep(t), persistent });
    return t;
  }

  /** Register `m` as child `name` (its entries are named `name.…`) and return it. */
  registerModule<M extends Module>(name: string, m: M): M {
    this.checkFree('registerModule', name, 'module');
    if (!(m instanceof Module)) throw new Error(`${this.constructor.name}.registerModule: '${name}' must be a Module, got ${show(m)}`);
    this._modules.set(name, m);
    return m;
  }

  /**
   * Remove child `name` and return it (as `del module.name` in PyTorch): its entries leave this
   * module's parameters and state; the child itself is not disposed.
   */
  unregisterModule(name: string): Module {
    const op = `${this.constructor.name}.unregisterModule`;
    const m = this._modules.get(checkString(op, 'name', name));
    if (!m) throw new Error(`${op}: no child module '${name}'`);
    this._modules.delete(name);
    return m;
  }

  /**
   * Remove buffer `name` and return its tensor (as `del module.name` in PyTorch); the tensor is
   * no longer owned by the module: dispose it when done.
   */
  unregisterBuffer(name: string): Tensor {
    const op = `${this.constructor.name}.unregisterBuffer`;
    const b = this._buffers.get(checkString(op, 'name', name));
    if (!b) throw new Error(`${op}: no buffer '${name}'`);
    this._buffers.delete(name);
    return b.tensor;
  }

  /** This module's own child `name`, or null. */
  getModule(name: string): Module | null {
    return this._modules.get(checkString(`${this.constructor.name}.getModule`, 'name', name)) ?? null;
  }

  /** This module's own parameter `name`; throws if there is none. */
  getParameter(name: string): Tensor {
    const op = `${this.constructor.name}.getParameter`;
    const p = this._parameters.get(checkString(op, 'name', name));
    if (!p) throw new Error(`${op}: no parameter '${name}'`);
    return p;
  }

  /** Whether this module has its own parameter `name`. */
  hasParameter(name: string): boolean {
    return this._parameters.has(checkString(`${this.constructor.name}.hasParameter`, 'name', name));
  }

  /** This module's own buffer `name`; throws if there is none. */
  getBuffer(name: string): Tensor {
    const op = `${this.constructor.name}.getBuffer`;
    const b = this._buffers.get(checkString(op, 'name', name));
    if (!b) throw new Error(`${op}: no buffer '${name}'`);
    return b.tensor;
  }

  // ---- traversal -------------------------------------------------------------------------

  /** Direct children with their names. */
  namedChildren(): [string, Module][] {
    return [...this._modules];
  }

  /** Direct children. */
  children(): Module[] {
    return [...this._modules.values()];
  }

  /** This module and all below it with dotted names (this one as `prefix`, '' by default); each module once. */
  namedModules(prefix = ''): [string, Module][] {
    checkString(`${this.constructor.name}.namedModules`, 'prefix', prefix);
    const out: [string, Module][] = [];
    const seen = new Set<Module>();
    const walk = (m: Module, name: string): void => {
      if (seen.has(m)) return;
      seen.add(m);
      out.push([name, m]);
      for (const [n, c] of m._modules) walk(c, name ? `${name}.${n}` : n);
    };
    walk(this, prefix);
    return out;
  }

  /** This module and all below it. */
  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /**
   * Every parameter with its dotted name, in registration order. A tensor registered under two
   * names (tied weights) is listed once, under the first.
   */
  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [prefix, m] of this.namedModules())
      for (const [n, p] of m._parameters) {
        if (seen.has(p)) continue;
        seen.add(p);
        out.push([prefix ? `${prefix}.${n}` : n, p]);
      }
    return out;
  }

  /** Every parameter (tied ones once), as an optimizer takes them. */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Every buffer with its dotted name (persistent or not). */
  namedBuffers(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [prefix, m] of this.namedModules())
      for (const [n, b] of m._buffers) out.push([prefix ? `${prefix}.${n}` : n, b.tensor]);
    return out;
  }

  /** The number of parameter elements (tied ones once); only trainable ones with `trainableOnly`. */
  numParameters(trainableOnly = false): number {
    optionalFlag(`${this.constructor.name}.numParameters`, 'trainableOnly', trainableOnly, false);
    return this.parameters()
      .filter((p) => !trainableOnly || p.requiresGrad)
      .reduce((n, p) => n + p.size, 0);
  }

  // ---- modes and gradients ---------------------------------------------------------------

  /** Set training mode on this module and every one below it. Returns this. */
  train(mode = true): this {
    mode = optionalFlag(`${this.constructor.name}.train`, 'mode', mode, true);
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  /** Evaluation mode (dropout off), for the whole tree. Returns this. */
  eval(): this {
    return this.train(false);
  }

  /** Drop the gradient of every parameter. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  /** Set `requiresGrad` on every parameter. Returns this. */
  requiresGrad_(flag = true): this {
    flag = optionalFlag(`${this.constructor.name}.requiresGrad_`, 'flag', flag, true);
    for (const p of this.parameters()) setTrainable(p, flag);
    return this;
  }

  /**
   * Stop training the parameters named by `names` (a dotted parameter name, or a module path
   * that covers every parameter below it: `freeze('transformer.wte')`), or every parameter when
   * none is named. Frozen parameters get no gradient and lose the one they had. Returns this.
   */
  freeze(...names: string[]): this {
    for (const p of this.select('freeze', names)) setTrainable(p, false);
    return this;
  }

  /** Undo {@link freeze} for the named parameters (or all). Returns this. */
  unfreeze(...names: string[]): this {
    for (const p of this.select('unfreeze', names)) setTrainable(p, true);
    return this;
  }

  private select(method: string, names: string[]): Tensor[] {
    const op = `${this.constructor.name}.${method}`;
    names.forEach((n, i) => checkString(op, names.length > 1 ? `name ${i}` : 'name', n));
    const all = this.namedStateEntries().filter(([, , kind]) => kind === 'parameter');
    if (names.length === 0) return all.map(([, p]) => p);
    const out = new Set<Tensor>();
    for (const name of names) {
      const hits = all.filter(([n]) => n === name || n.startsWith(`${name}.`));
      if (hits.length === 0)
        throw new Error(`${op}: '${name}' names no parameter or module with parameters`);
      for (const [, p] of hits) out.add(p);
    }
    return [...out];
  }

  // ---- state -----------------------------------------------------------------------------

  // every named entry, aliases of tied tensors included
  private namedStateEntries(): [string, Tensor, 'parameter' | 'buffer'][] {
    const out: [string, Tensor, 'parameter' | 'buffer'][] = [];
    for (const [prefix, m] of this.namedModules()) {
      const full = (n: string): string => (prefix ? `${prefix}.${n}` : n);
      for (const [n, p] of m._parameters) out.push([full(n), p, 'parameter']);
      for (const [n, b] of m._buffers) if (b.persistent) out.push([full(n), b.tensor, 'buffer']);
    }
    return out;
  }

  /**
   * Parameters and persistent buffers by dotted name (tied tensors under each of their names,
   * as PyTorch). The entries are the module's own tensors, not copies: do not dispose them, and
   * `clone()` them to keep a snapshot that later training will not change.
   */
  stateDict(): StateDict {
    const out: StateDict = {};
    for (const [n, t] of this.namedStateEntries()) out[n] = t;
    return out;
  }

  /**
   * Copy `state`'s values into this module's existing tensors (under `noGrad`, with `copy_`), so
   * an optimizer holding the parameters stays valid. Values are cast to each parameter's dtype
   * and moved to its backend. A tied tensor is loaded once any of its names is present.
   *
   * Every check runs before anything is copied: shape mismatches throw, and with `strict`
   * (the default) so do missing and unexpected entries, in one error that lists them all.
   */
  loadStateDict(state: StateDict | Map<string, Tensor>, opts: LoadStateDictOptions = {}): LoadStateDictResult {
    const op = `${this.constructor.name}.loadStateDict`;
    const strict = optionalFlag(op, 'strict', options(op, opts, ['strict']).strict, true);
    if (!(state instanceof Map) && (state === null || typeof state !== 'object' || Array.isArray(state) || state instanceof Tensor))
      throw new Error(`${op}: expected a state dict (an object or a Map from names to tensors), got ${show(state)}`);
    const given = state instanceof Map ? new Map(state) : new Map(Object.entries(state));
    const entries = this.namedStateEntries();
    const own = new Map(entries.map(([n, t]) => [n, t]));
    const unexpectedKeys = [...given.keys()].filter((k) => !own.has(k));
    const mismatched: string[] = [];
    const loaded = new Set<Tensor>();
    for (const [name, dst] of own) {
      const src = given.get(name);
      if (src === undefined) continue;
      if (!(src instanceof Tensor)) throw new Error(`${op}: entry '${name}' is not a Tensor, got ${show(src)}`);
      src._storage(op);
      if (src.rank !== dst.rank || src.shape.some((d, i) => d !== dst.shape[i]))
        mismatched.push(`${name} (state ${fmt(src.shape)}, module ${fmt(dst.shape)})`);
      else loaded.add(dst);
    }
    const missingKeys = entries.filter(([n, t]) => !given.has(n) && !loaded.has(t)).map(([n]) => n);
    const problems: string[] = [];
    if (mismatched.length) problems.push(`shape mismatch for ${mismatched.join(', ')}`);
    if (strict && missingKeys.length) problems.push(`missing keys: ${missingKeys.join(', ')}`);
    if (strict && unexpectedKeys.length) problems.push(`unexpected keys: ${unexpectedKeys.join(', ')}`);
    if (problems.length)
      throw new Error(`${op}: ${problems.join('; ')}${mismatched.length ? '' : ' (pass { strict: false } to load the rest)'}`);
    noGrad(() => {
      for (const [name, dst] of own) {
        const src = given.get(name);
        if (src === undefined) continue;
        const moved = src.backend === dst.backend ? src : src.to(dst.backend.name);
        dst.copy_(moved);
        if (moved !== src) moved.dispose();
      }
    });
    return { missingKeys, unexpectedKeys };
  }

  /**
   * Move every parameter and buffer to backend `name` (a no-op for tensors already there):
   * each is replaced by a copy there that keeps `requiresGrad` (and its gradient), and the old
   * one is disposed. Tied tensors stay tied. Returns this. Create optimizers after moving, and
   * move whole models: moving a submodule unties tensors it shares with modules outside it.
   */
  to(name: string): this {
    const op = `${this.constructor.name}.to`;
    checkBackendName(op, name);
    asOp(op, () => this.moveAll((t) => t.to(name)));
    return this;
  }

  /** {@link to} for source backends that can only be read asynchronously. */
  async toAsync(name: string): Promise<this> {
    const op = `${this.constructor.name}.toAsync`;
    checkBackendName(op, name);
    const moved = new Map<Tensor, Tensor>();
    const all = new Set<Tensor>();
    for (const m of this.modules()) {
      for (const p of m._parameters.values()) all.add(p);
      for (const b of m._buffers.values()) all.add(b.tensor);
    }
    try {
      for (const t of all) {
        moved.set(t, await t.toAsync(name));
        if (t.grad) moved.set(t.grad, await t.grad.toAsync(name));
      }
    } catch (e) {
      for (const [t, m] of moved) if (m !== t) m.dispose();
      throw relabel(op, e);
    }
    this.moveAll((t) => moved.get(t)!);
    return this;
  }

  private moveAll(move: (t: Tensor) => Tensor): void {
    const memo = new Map<Tensor, Tensor>();
    const old: Tensor[] = [];
    const relocate = (t: Tensor, isParam: boolean): Tensor => {
      let r = memo.get(t);
      if (r) return r;
      r = noGrad(() => move(t));
      if (r !== t) {
        keep(r);
        if (isParam) {
          setTrainable(r, t.requiresGrad);
          if (t.grad) r.grad = keep(noGrad(() => move(t.grad!)));
        }
        old.push(t);
      }
      memo.set(t, r);
      return r;
    };
    for (const m of this.modules()) {
      for (const [n, p] of m._parameters) m._parameters.set(n, relocate(p, true));
      for (const b of m._buffers.values()) b.tensor = relocate(b.tensor, false);
    }
    for (const t of old) t.dispose();
  }

  /** Dispose every parameter and buffer (the module is unusable afterwards). */
  dispose(): void {
    for (const m of this.modules()) {
      for (const p of m._parameters.values()) p.dispose();
      for (const b of m._buffers.values()) b.tensor.dispose();
    }
  }
}

function setTrainable(p: Tensor, flag: boolean): void {
  p.requiresGrad = flag;
  if (!flag) p.zeroGrad();
}

/**
 * An indexed list of modules (like `torch.nn.ModuleList`): child i is named `i`, so a
 * transformer's blocks are `h.0`, `h.1`, ….
 */
export class ModuleList<M extends Module = Module> extends Module implements Iterable<M> {
  private readonly items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    const op = 'ModuleList';
    if (modules === null || typeof modules !== 'object' || typeof (modules as Partial<Iterable<M>>)[Symbol.iterator] !== 'function')
      throw new Error(`${op}: modules must be an iterable of Modules, got ${show(modules)}`);
    const list = [...modules];
    list.forEach((m, i) => {
      if (!(m instanceof Module)) throw new Error(`${op}: entry ${i} must be a Module, got ${show(m)}`);
    });
    for (const m of list) this.append(m);
  }

  /** Add `m` as the next entry. Returns this. */
  append(m: M): this {
    if (!(m instanceof Module)) throw new Error(`ModuleList.append: expected a Module, got ${show(m)}`);
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
    return this;
  }

  /** Entry `i` (negative counts from the end). */
  at(i: number): M {
    checkNumber('ModuleList.at', 'index', i, { integer: true });
    const m = this.items.at(i);
    if (!m) throw new Error(`ModuleList.at: index ${i} is out of range for ${this.items.length} modules`);
    return m;
  }

  /** Number of entries. */
  get length(): number {
    return this.items.length;
  }

  /** The entries in order. */
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }

  /** A ModuleList has no computation of its own: iterate over its modules. */
  forward(): never {
    throw new Error('ModuleList.forward: a ModuleList has no forward; iterate over its modules');
  }
}
