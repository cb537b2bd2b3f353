/**
 * The optimizer base: parameter groups with per-group hyper-parameters, per-parameter state
 * (step count and f32 moment tensors), `step()` under `noGrad`, `zeroGrad()`, and a state dict
 * that round-trips exactly. Each concrete optimizer supplies one per-parameter update function
 * (`sgdUpdate`, `adamUpdate`, `lambUpdate`), written with tensor ops and applied in place with
 * `copy_`, so a fused backend kernel can replace it without touching anything else.
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import type { DType } from '../backend/dtype.js';
import { isFloat } from '../backend/dtype.js';
import { keep, tidy } from '../tensor/memory.js';
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { zeros } from '../tensor/ops/creation.js';
import { checkKeys, checkNumber, show } from '../tensor/validate.js';
import { asOp, live } from '../tensor/ops/util.js';
import { cast, clone } from '../tensor/ops/elementwise.js';

/** A hyper-parameter value: a number, a flag, or a short tuple such as Adam's betas. */
export type HyperParam = number | boolean | readonly number[];

/** Options every optimizer has. */
export interface OptimizerOptions {
  /** Learning rate. Schedules write it per group. */
  lr: number;
}

/**
 * A parameter group as the caller writes it: its parameters and any options that differ from
 * the optimizer's defaults.
 *
 * @example
 * new AdamW([{ params: weights, weightDecay: 0.1 }, { params: biasesAndNorms, weightDecay: 0 }], { lr: 3e-4 });
 */
export type ParamGroupSpec<O> = { params: Iterable<Tensor> } & Partial<O>;

/** A parameter group as the optimizer holds it: its parameters and every option, resolved. */
export type ParamGroup<O> = { params: Tensor[] } & O;

/** What an optimizer's constructor takes: tensors (one group), or a list of group specs. */
export type Params<O> = Iterable<Tensor> | readonly ParamGroupSpec<O>[];

/** State of one parameter: how many updates it has had, and its named state tensors. */
export interface ParamState {
  /** Updates applied to this parameter so far (t in the bias corrections). */
  step: number;
  /** State tensors, each the parameter's shape, f32 (f64 for f64 parameters). */
  tensors: Record<string, Tensor>;
}

/**
 * An optimizer's state, ready to save: every group's hyper-parameters, and each parameter's
 * step count and state tensors. Parameters are named by their index counting over all groups
 * in order (as PyTorch's `state_dict` does).
 */
export interface OptimizerStateDict {
  /** Which optimizer wrote it: 'SGD', 'Adam', 'AdamW' or 'LAMB'. */
  optimizer: string;
  /** Per group: its hyper-parameters (everything but the parameters) and its parameter indices. */
  paramGroups: { params: number[]; options: Record<string, HyperParam> }[];
  /** Per parameter index, for parameters that have state. The tensors are the live state, not copies. */
  state: Record<number, ParamState>;
}

/** A parameter with a gradient, and its state, as {@link Optimizer.updateGroup} receives them. */
export interface GroupItem {
  param: Tensor;
  grad: Tensor;
  state: ParamState;
}

/** `items` split by the dtype of their tensor (a fused many-tensor kernel call takes one dtype), in order. */
export function byDtype<T>(items: readonly T[], tensorOf: (item: T) => Tensor): T[][] {
  if (!Array.isArray(items)) throw new Error(`byDtype: items must be an array, got ${show(items)}`);
  if (typeof tensorOf !== 'function') throw new Error(`byDtype: tensorOf must be a function, got ${show(tensorOf)}`);
  const groups = new Map<string, T[]>();
  for (const [i, it] of items.entries()) {
    const t = tensorOf(it);
    if (!(t instanceof Tensor)) throw new Error(`byDtype: tensorOf(item ${i}) must return a Tensor, got ${show(t)}`);
    const dtype = t.dtype;
    let g = groups.get(dtype);
    if (!g) groups.set(dtype, (g = []));
    g.push(it);
  }
  return [...groups.values()];
}

/** The dtype optimizer state is kept in for a parameter: f64 for f64, f32 for everything else. */
export function stateDtype(param: Tensor): DType {
  live('stateDtype', param);
  return param.dtype === 'f64' ? 'f64' : 'f32';
}

/** Check a hyper-parameter, throwing `name: message` when `ok` is false. */
export function checkOption(name: string, ok: boolean, message: string): void {
  if (!ok) throw new Error(`${name}: ${message}`);
}

/** The options Adam, AdamW and LAMB share: lr ≥ 0, eps ≥ 0, betas in [0, 1), weightDecay ≥ 0, all finite. */
export function checkAdamLike(name: string, o: { lr: number; eps: number; betas: readonly [number, number]; weightDecay: number }): void {
  checkNumber(name, 'lr', o.lr, { min: 0 });
  checkNumber(name, 'eps', o.eps, { min: 0 });
  checkOption(name, Array.isArray(o.betas) && o.betas.length === 2, `betas must be [beta1, beta2], got ${show(o.betas)}`);
  checkNumber(name, 'beta1', o.betas[0], { min: 0, max: 1, maxExclusive: true });
  checkNumber(name, 'beta2', o.betas[1], { min: 0, max: 1, maxExclusive: true });
  checkNumber(name, 'weightDecay', o.weightDecay, { min: 0 });
}

/**
 * Check the arguments of a public per-parameter update function (`sgdUpdate`, `adamComposite`,
 * `lambComposite`) named `op`: a floating parameter and a gradient of its shape, a state
 * `{ step, tensors }` (step ≥ `minStep`), and a callback that gives state tensors; returns the
 * callback wrapped so that what it returns is checked too.
 */
export function checkUpdateArgs<F extends (key: string, ...rest: never[]) => Tensor>(
  op: string,
  param: Tensor,
  grad: Tensor,
  state: ParamState,
  fn: F,
  fnName: string,
  minStep: number,
): F {
  live(op, param, grad);
  if (!isFloat(param.dtype)) throw new Error(`${op}: param must be floating, got ${fmt(param.shape)} ${param.dtype}`);
  if (grad.shape.length !== param.shape.length || grad.shape.some((d, i) => d !== param.shape[i]))
    throw new Error(`${op}: grad ${fmt(grad.shape)} does not match param ${fmt(param.shape)}`);
  if (state === null || typeof state !== 'object' || Array.isArray(state)) throw new Error(`${op}: state must be { step, tensors }, got ${show(state)}`);
  checkNumber(op, 'state.step', state.step, { integer: true, min: minStep });
  if (state.tensors === null || typeof state.tensors !== 'object') throw new Error(`${op}: state.tensors must be an object, got ${show(state.tensors)}`);
  if (typeof fn !== 'function') throw new Error(`${op}: ${fnName} must be a function, got ${show(fn)}`);
  return ((key: string, ...rest: never[]) => {
    const t = fn(key, ...rest);
    if (!(t instanceof Tensor)) throw new Error(`${op}: ${fnName}('${key}') must return a Tensor, got ${show(t)}`);
    live(op, t);
    if (t.shape.length !== param.shape.length || t.shape.some((d, i) => d !== param.shape[i]))
      throw new Error(`${op}: ${fnName}('${key}') returned ${fmt(t.shape)}, the param is ${fmt(param.shape)}`);
    return t;
  }) as F;
}

/**
 * Base class of every optimizer. Subclasses give defaults, validate their options and define
 * {@link Optimizer.update}, the whole per-parameter update.
 */
export abstract class Optimizer<O extends OptimizerOptions> {
  /** Groups of parameters, each with its own options; write `paramGroups[i].lr` to change a rate. */
  readonly paramGroups: ParamGroup<O>[] = [];
  /** Options a group gets when its spec leaves them out. */
  readonly defaults: Readonly<O>;
  private readonly _state = new Map<Tensor, ParamState>();

  /**
   * @param name the optimizer's name, used in errors and in {@link stateDict}
   * @param params the tensors to optimise, or a list of parameter groups
   * @param defaults every option's default value
   * @param options the caller's options (unknown names are errors), overriding `defaults`
   */
  protected constructor(
    readonly name: string,
    params: Params<O>,
    defaults: O,
    options: Partial<O> = {},
  ) {
    const merged = { ...defaults };
    checkKeys(name, options, Object.keys(defaults));
    for (const [k, v] of Object.entries(options ?? {})) if (v !== undefined) (merged as Record<string, unknown>)[k] = v;
    this.checkOptions(merged);
    this.defaults = Object.freeze(merged);
    if (!isIterable(params) || params instanceof Tensor)
      throw new Error(`${name}: params must be an iterable of Tensors or of parameter groups, got ${show(params)}`);
    const list = [...(params as Iterable<Tensor | ParamGroupSpec<O>>)];
    if (list.length === 0) throw new Error(`${name}: got an empty parameter list`);
    const groups = list.length > 0 && !(list[0] instanceof Tensor);
    if (groups) list.forEach((g, i) => this.addGroup(name, g as ParamGroupSpec<O>, i));
    else this.addGroup(name, { params: list as Tensor[] } as unknown as ParamGroupSpec<O>);
    if (this.paramGroups.every((g) => g.params.length === 0)) throw new Error(`${name}: got an empty parameter list`);
  }

  /** Validate a complete set of options; throws `Name: message`. */
  protected abstract checkOptions(options: O): void;

  /**
   * The whole update of one parameter, run under `noGrad` inside a `tidy` scope after
   * `state.step` was incremented. It writes `param` and its state in place (`copy_`), and creates
   * state it lacks with {@link Optimizer.stateTensor}.
   */
  protected abstract update(param: Tensor, grad: Tensor, state: ParamState, group: ParamGroup<O>): void;

  /**
   * Update every parameter of `group` that has a gradient (their `state.step` already
   * incremented). By default one {@link Optimizer.update} each; optimizers with a fused
   * many-tensor kernel override it to update the whole group in one backend call.
   */
  protected updateGroup(items: readonly GroupItem[], group: ParamGroup<O>): void {
    for (const { param, grad, state } of items) tidy(() => this.update(param, grad, state, group));
  }

  /**
   * For fused many-tensor updates: call `update` once per parameter dtype of `items` with the
   * parameters, their gradients, their first and second moment state tensors (`expAvg`,
   * `expAvgSq`, created as zeros on first use) and their step counts.
   */
  protected forEachDtype(
    items: readonly GroupItem[],
    update: (params: Tensor[], grads: Tensor[], m: Tensor[], v: Tensor[], steps: number[]) => void,
  ): void {
    for (const same of byDtype(items, (i) => i.param))
      update(
        same.map((i) => i.param),
        same.map((i) => i.grad),
        same.map((i) => this.stateTensor(i.param, i.state, 'expAvg')),
        same.map((i) => this.stateTensor(i.param, i.state, 'expAvgSq')),
        same.map((i) => i.state.step),
      );
  }

  /** Add a group of parameters with options of its own (like `add_param_group`). */
  addParamGroup(spec: ParamGroupSpec<O>): void {
    this.addGroup(`${this.name}.addParamGroup`, spec);
  }

  // add a group for the public function `op` (the constructor, or addParamGroup); `at` is its
  // index in the constructor's list
  private addGroup(op: string, spec: ParamGroupSpec<O>, at?: number): void {
    const where = at === undefined ? '' : ` (group ${at})`;
    if (spec === null || typeof spec !== 'object' || Array.isArray(spec) || spec instanceof Tensor || !('params' in spec))
      throw new Error(`${op}: a parameter group must be an object with 'params'${where}, got ${show(spec)}`);
    const given: unknown = spec.params;
    if (!(given instanceof Tensor) && !isIterable(given))
      throw new Error(`${op}: the group's params must be a Tensor or an iterable of Tensors${where}, got ${show(given)}`);
    const params: unknown[] = given instanceof Tensor ? [given] : [...given];
    const seen = new Set(this.paramGroups.flatMap((g) => g.params));
    const group = this.paramGroups.length;
    params.forEach((p, i) => {
      if (!(p instanceof Tensor)) throw new Error(`${op}: parameter ${i} of group ${group} is not a Tensor, got ${show(p)}`);
      if (p.disposed) throw new Error(`${op}: parameter ${i} of group ${group} was disposed`);
      if (!isFloat(p.dtype)) throw new Error(`${op}: parameter ${i} of group ${group} must be floating, got ${fmt(p.shape)} ${p.dtype}`);
      if (seen.has(p)) throw new Error(`${op}: parameter ${i} (${fmt(p.shape)}) appears in more than one group`);
      seen.add(p);
    });
    const options = cloneOptions(this.defaults as unknown as Record<string, HyperParam>) as unknown as O;
    for (const [k, v] of Object.entries(spec)) {
      if (k === 'params') continue;
      if (!(k in this.defaults)) throw new Error(`${op}: unknown option '${k}' in parameter group ${group} (options: ${Object.keys(this.defaults).join(', ')})`);
      // an option left undefined takes the default, as in the constructor
      if (v !== undefined) (options as Record<string, unknown>)[k] = Array.isArray(v) ? [...v] : v;
    }
    asOp(op, () => this.checkOptions(options));
    this.paramGroups.push({ ...options, params } as ParamGroup<O>);
  }

  /**
   * Apply one update to every parameter that has a gradient (parameters without one are
   * skipped). Every gradient is checked before any parameter changes.
   */
  step(): void {
    const work: [ParamGroup<O>, [Tensor, Tensor][]][] = [];
    for (const group of this.paramGroups) {
      const items: [Tensor, Tensor][] = [];
      for (const p of group.params) {
        const g = p.grad;
        if (!g) continue;
        if (g.disposed) throw new Error(`${this.name}.step: the gradient of parameter ${fmt(p.shape)} was disposed`);
        if (g.shape.length !== p.shape.length || g.shape.some((d, i) => d !== p.shape[i]))
          throw new Error(`${this.name}.step: gradient ${fmt(g.shape)} does not match parameter ${fmt(p.shape)}`);
        if (g.backend !== p.backend)
          throw new Error(`${this.name}.step: gradient of parameter ${fmt(p.shape)} is on '${g.backend.name}', the parameter on '${p.backend.name}'`);
        items.push([p, g]);
      }
      work.push([group, items]);
    }
    noGrad(() => {
      for (const [group, items] of work) {
        if (items.length === 0) continue;
        const withState = items.map(([param, grad]) => {
          let state = this._state.get(param);
          if (!state) this._state.set(param, (state = { step: 0, tensors: {} }));
          state.step++;
          return { param, grad, state };
        });
        tidy(() => this.updateGroup(withState, group));
      }
    });
  }

  /** Drop every parameter's gradient (PyTorch's `zero_grad(set_to_none=True)`). */
  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) p.zeroGrad();
  }

  /** The state of `param` (undefined before its first update). */
  stateOf(param: Tensor): Readonly<ParamState> | undefined {
    live(`${this.name}.stateOf`, param);
    return this._state.get(param);
  }

  /**
   * A state tensor of `param`, created as zeros (kept outside every tidy scope) on first use.
   * Subclasses call it from {@link Optimizer.update} and {@link Optimizer.updateGroup}.
   */
  protected stateTensor(param: Tensor, state: ParamState, key: string, init?: Tensor): Tensor {
    let t = state.tensors[key];
    if (!t) {
      const dtype = stateDtype(param);
      // cast makes a new tensor only when the dtype changes; clone always does
      t = keep(init ? (init.dtype === dtype ? clone(init) : cast(init, dtype)) : zeros(param.shape, { dtype, backend: param.backend.name }));
      state.tensors[key] = t;
    }
    return t;
  }

  /** Every group's options and every parameter's state (the tensors are live, not copies). */
  stateDict(): OptimizerStateDict {
    const state: Record<number, ParamState> = {};
    let index = 0;
    const paramGroups = this.paramGroups.map((g) => {
      const { params, ...options } = g;
      const ids = params.map((p) => {
        const st = this._state.get(p);
        if (st) state[index] = { step: st.step, tensors: { ...st.tensors } };
        return index++;
      });
      return { params: ids, options: cloneOptions(options as Record<string, HyperParam>) };
    });
    return { optimizer: this.name, paramGroups, state };
  }

  /**
   * Restore options and state saved by {@link stateDict} of an optimizer of the same kind over
   * parameters of the same shapes, grouped the same way. State tensors are copied (cast to the
   * state dtype and moved to each parameter's backend); the dict's tensors stay the caller's.
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const op = `${this.name}.loadStateDict`;
    if (!sd || typeof sd !== 'object' || !Array.isArray(sd.paramGroups) || typeof sd.state !== 'object' || sd.state === null)
      throw new Error(`${op}: expected { optimizer, paramGroups, state }, got ${show(sd)}`);
    if (sd.optimizer !== this.name) throw new Error(`${op}: the state dict is from a ${String(sd.optimizer)} optimizer`);
    if (sd.paramGroups.length !== this.paramGroups.length)
      throw new Error(`${op}: the state dict has ${sd.paramGroups.length} parameter groups, this optimizer ${this.paramGroups.length}`);
    const params: Tensor[] = [];
    const newOptions: O[] = [];
    sd.paramGroups.forEach((g, i) => {
      const mine = this.paramGroups[i]!;
      if (g === null || typeof g !== 'object') throw new Error(`${op}: group ${i} must be { params, options }, got ${show(g)}`);
      if (!Array.isArray(g.params) || g.params.length !== mine.params.length)
        throw new Error(`${op}: group ${i} has ${g.params?.length} parameters in the state dict, ${mine.params.length} here`);
      g.params.forEach((id, j) => {
        if (id !== params.length) throw new Error(`${op}: group ${i} parameter ${j} has index ${id}, expected ${params.length}`);
        params.push(mine.params[j]!);
      });
      const options = cloneOptions(this.defaults as unknown as Record<string, HyperParam>) as unknown as O;
      if (g.options !== undefined && (g.options === null || typeof g.options !== 'object' || Array.isArray(g.options)))
        throw new Error(`${op}: the options of group ${i} must be an object, got ${show(g.options)}`);
      for (const [k, v] of Object.entries(g.options ?? {})) {
        if (!(k in this.defaults)) throw new Error(`${op}: unknown option '${k}' in group ${i}`);
        (options as Record<string, unknown>)[k] = Array.isArray(v) ? [...v] : v;
      }
      asOp(op, () => this.checkOptions(options));
      newOptions.push(options);
    });
    // validate every state entry before changing anything
    const entries = Object.entries(sd.state).map(([key, st]) => {
      const id = Number(key);
      const p = params[id];
      if (!Number.isInteger(id) || !p) throw new Error(`${op}: state for parameter ${key}, which does not exist (${params.length} parameters)`);
      if (!st || !Number.isSafeInteger(st.step) || st.step < 0) throw new Error(`${op}: parameter ${id} has a bad step count ${show(st?.step)}`);
      if (st.tensors !== undefined && (st.tensors === null || typeof st.tensors !== 'object'))
        throw new Error(`${op}: the state tensors of parameter ${id} must be an object, got ${show(st.tensors)}`);
      for (const [name, t] of Object.entries(st.tensors ?? {})) {
        if (!(t instanceof Tensor) || t.disposed) throw new Error(`${op}: state '${name}' of parameter ${id} is not a live Tensor`);
        if (t.shape.length !== p.shape.length || t.shape.some((d, k) => d !== p.shape[k]))
          throw new Error(`${op}: state '${name}' of parameter ${id} is ${fmt(t.shape)}, the parameter ${fmt(p.shape)}`);
        if (!isFloat(t.dtype)) throw new Error(`${op}: state '${name}' of parameter ${id} must be floating, got ${t.dtype}`);
      }
      return [p, st] as const;
    });
    const copies = entries.map(([p, st]) => {
      const tensors: Record<string, Tensor> = {};
      for (const [name, t] of Object.entries(st.tensors ?? {})) tensors[name] = keep(copyAs(t, p));
      return [p, { step: st.step, tensors }] as const;
    });
    this.disposeState();
    for (const [p, st] of copies) this._state.set(p, st);
    this.paramGroups.forEach((g, i) => Object.assign(g, newOptions[i]));
  }

  /** Free every state tensor and forget all step counts. */
  disposeState(): void {
    for (const st of this._state.values()) for (const t of Object.values(st.tensors)) t.dispose();
    this._state.clear();
  }
}

function isIterable(x: unknown): x is Iterable<unknown> {
  return x !== null && typeof x === 'object' && typeof (x as Partial<Iterable<unknown>>)[Symbol.iterator] === 'function';
}

function cloneOptions(o: Record<string, HyperParam>): Record<string, HyperParam> {
  const out: Record<string, HyperParam> = {};
  for (const [k, v] of Object.entries(o)) out[k] = Array.isArray(v) ? [...(v as number[])] : v;
  return out;
}

// A fresh copy of `t` on `param`'s backend in the state dtype of `param`.
function copyAs(t: Tensor, param: Tensor): Tensor {
  return noGrad(() =>
    tidy(() => {
      const moved = t.to(param.backend.name);
      const c = cast(moved, stateDtype(param));
      return c === t ? clone(c) : c;
    }),
  );
}
