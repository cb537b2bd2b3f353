/**
 * An exponential moving average of a model's weights (Polyak averaging, as timm's `ModelEmaV3`
 * and `torch.optim.swa_utils.AveragedModel` keep it): shadow copies in f32 (f64 for f64
 * parameters), updated after optimizer steps by `s = d·s + (1−d)·p`, swapped into the model to
 * evaluate and swapped back bit for bit. The EMA model usually evaluates better than the last
 * weights, at the cost of one extra copy of the parameters.
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import { keep, tidy } from '../tensor/memory.js';
import { cast, clone } from '../tensor/ops/elementwise.js';
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkKeys, checkNumber, optionalNumber, show } from '../tensor/validate.js';
import { Module } from '../nn/module.js';

/** Options of {@link EMA}. */
export interface EMAOptions {
  /** d in `s = d·s + (1−d)·p`, in [0, 1]; 0.999 or 0.9999 are usual. */
  decay: number;
  /** {@link EMA.callback} updates after every this many optimizer steps (1 by default). */
  updateEvery?: number;
  /**
   * Ramp the decay up early in training, as TensorFlow's `ExponentialMovingAverage(num_updates)`:
   * update t (counting from 0) uses `min(decay, (1 + t) / (10 + t))`, so the average is not
   * dominated by the random initial weights. Off by default.
   */
  warmup?: boolean;
}

const EMA_KEYS = ['decay', 'updateEvery', 'warmup'] as const;

interface Slot {
  /** The canonical parameter name (its first, as `namedParameters` lists it). */
  name: string;
  param: Tensor;
  shadow: Tensor;
}

/**
 * Shadow weights that follow a model's parameters by an exponential moving average.
 *
 * @example
 * const ema = new EMA(model, { decay: 0.999, updateEvery: 1 });
 * await train({ model, optimizer, ..., callbacks: [ema.callback()] });
 * ema.applyTo();                      // the model now holds the EMA weights
 * const r = await evaluate(model, val, { blockSize: 128 });
 * ema.restore();                      // and its own weights again, bit for bit
 * await saveCheckpoint('ema.safetensors', { model: ema, step }); // loads into a GPT like any checkpoint
 */
export class EMA {
  readonly decay: number;
  readonly updateEvery: number;
  readonly warmup: boolean;
  private readonly model: Module;
  private readonly slots: Slot[];
  private _updates = 0;
  // the model whose weights applyTo replaced, and copies of them
  private applied: { slots: { param: Tensor; backup: Tensor; shadow: Tensor }[] } | null = null;
  private disposed = false;

  /** Track `model`'s parameters; the shadows start as copies of their current values. */
  constructor(model: Module, opts: EMAOptions) {
    const op = 'EMA';
    if (!(model instanceof Module)) throw new Error(`${op}: model must be a Module, got ${show(model)}`);
    if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: expected options { decay, updateEvery?, warmup? }, got ${show(opts)}`);
    checkKeys(op, opts, EMA_KEYS);
    this.decay = checkNumber(op, 'decay', opts.decay, { min: 0, max: 1 });
    this.updateEvery = optionalNumber(op, 'updateEvery', opts.updateEvery, 1, { integer: true, min: 1 });
    this.warmup = opts.warmup === undefined ? false : checkBoolean(op, 'warmup', opts.warmup);
    const named = model.namedParameters();
    if (named.length === 0) throw new Error(`${op}: the model has no parameters`);
    for (const [name, p] of named) if (p.disposed) throw new Error(`${op}: parameter '${name}' was disposed`);
    this.model = model;
    this.slots = named.map(([name, param]) => ({ name, param, shadow: keep(noGrad(() => shadowOf(param))) }));
  }

  /** Updates done so far (t in the warm-up rule); settable when restoring a run. */
  get updates(): number {
    return this._updates;
  }

  set updates(n: number) {
    this.live('EMA.updates');
    this._updates = checkNumber('EMA.updates', 'updates', n, { integer: true, min: 0 });
  }

  /** The decay the next {@link update} uses. */
  get currentDecay(): number {
    return this.warmup ? Math.min(this.decay, (1 + this._updates) / (10 + this._updates)) : this.decay;
  }

  /** The shadow tensors by parameter name (live, not copies: do not dispose them). */
  get shadows(): Record<string, Tensor> {
    this.live('EMA.shadows');
    return Object.fromEntries(this.slots.map((s) => [s.name, s.shadow]));
  }

  /**
   * `s = d·s + (1−d)·p` for every parameter, in place (two scalings, an add and a copy per
   * parameter, queued on the device: no read, no sync). Call it after optimizer steps.
   */
  update(): void {
    const op = 'EMA.update';
    this.live(op);
    if (this.applied) throw new Error(`${op}: the EMA weights are applied to a model; restore() first (else the average would follow itself)`);
    const d = this.currentDecay;
    noGrad(() => {
      for (const { param, shadow } of this.slots)
        tidy(() => {
          const p = param.dtype === shadow.dtype ? param : cast(param, shadow.dtype);
          shadow.copy_(shadow.mul(d).add(p.mul(1 - d)));
        });
    });
    this._updates++;
  }

  /**
   * Put the EMA weights into `model` (the tracked model by default, or another of the same
   * parameter names and shapes), cast to its parameters' dtypes, keeping copies of the weights
   * it had; {@link restore} puts those back. Not recorded by autograd.
   */
  applyTo(model?: Module): void {
    const op = 'EMA.applyTo';
    this.live(op);
    if (this.applied) throw new Error(`${op}: the EMA weights are already applied; restore() first`);
    const targets = this.targetsOf(op, model ?? this.model);
    const slots = targets.map(({ param, shadow }) => ({ param, shadow, backup: keep(noGrad(() => clone(param))) }));
    noGrad(() => {
      for (const { param, shadow } of slots) tidy(() => param.copy_(moveLike(shadow, param)));
    });
    this.applied = { slots };
  }

  /** Put back the weights {@link applyTo} replaced (bit for bit) and free their copies. */
  restore(): void {
    const op = 'EMA.restore';
    this.live(op);
    if (!this.applied) throw new Error(`${op}: nothing to restore; call applyTo() first`);
    const { slots } = this.applied;
    noGrad(() => {
      for (const { param, backup } of slots) param.copy_(backup);
    });
    for (const s of slots) s.backup.dispose();
    this.applied = null;
  }

  /** Write the EMA weights into `model` (the tracked one by default) for good: no copy is kept, nothing to restore. */
  copyTo(model?: Module): void {
    const op = 'EMA.copyTo';
    this.live(op);
    if (this.applied) throw new Error(`${op}: the EMA weights are applied; restore() first`);
    const targets = this.targetsOf(op, model ?? this.model);
    noGrad(() => {
      for (const { param, shadow } of targets) tidy(() => param.copy_(moveLike(shadow, param)));
    });
  }

  /**
   * Hooks for `train()`: {@link update} after every `updateEvery`-th optimizer step (no read, no
   * sync). List it after a pruner's callback, so the average sees the pruned weights.
   */
  callback(): { onStep(info: { step: number }): void } {
    this.live('EMA.callback');
    return {
      onStep: (info) => {
        if (info === null || typeof info !== 'object') throw new Error(`EMA.callback: onStep expects { step }, got ${show(info)}`);
        checkNumber('EMA.callback', 'info.step', info.step, { integer: true, min: 0 });
        if (info.step % this.updateEvery === 0) this.update();
      },
    };
  }

  /**
   * The model's state dict with the EMA weights for its parameters (every name of a tied one) and
   * its own persistent buffers: the live tensors, not copies. A checkpoint saved from it (pass the
   * EMA as `saveCheckpoint`'s model) loads into the model like any other; keep {@link updates} in
   * its `extra` to resume the warm-up.
   */
  stateDict(): Record<string, Tensor> {
    this.live('EMA.stateDict');
    const shadowOf = new Map(this.slots.map((s) => [s.param, s.shadow]));
    const out: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(this.model.stateDict())) out[name] = shadowOf.get(t) ?? t;
    return out;
  }

  /**
   * Copy the EMA weights of `state` (as {@link stateDict} gives them, or a model's state dict)
   * into the shadows, cast and moved to theirs. Every parameter must be present (under any of its
   * names); the model's buffers are ignored; names the model lacks are errors. All is checked
   * before anything is copied.
   */
  loadStateDict(state: Record<string, Tensor>): void {
    const op = 'EMA.loadStateDict';
    this.live(op);
    if (this.applied) throw new Error(`${op}: the EMA weights are applied; restore() first`);
    if (state === null || typeof state !== 'object' || Array.isArray(state) || state instanceof Tensor)
      throw new Error(`${op}: expected a state dict (an object from names to tensors), got ${show(state)}`);
    const own = this.model.stateDict();
    const unexpected = Object.keys(state).filter((k) => !(k in own));
    if (unexpected.length) throw new Error(`${op}: unexpected keys: ${unexpected.join(', ')}`);
    const bySlot = new Map<Slot, Tensor>();
    for (const [name, t] of Object.entries(own)) {
      const slot = this.slots.find((s) => s.param === t);
      if (!slot || !(name in state) || bySlot.has(slot)) continue;
      const src = state[name];
      if (!(src instanceof Tensor)) throw new Error(`${op}: entry '${name}' must be a Tensor, got ${show(src)}`);
      if (src.disposed) throw new Error(`${op}: entry '${name}' was disposed`);
      if (src.rank !== slot.shadow.rank || src.shape.some((d, i) => d !== slot.shadow.shape[i]))
        throw new Error(`${op}: entry '${name}' is ${fmt(src.shape)}, the parameter ${fmt(slot.shadow.shape)}`);
      bySlot.set(slot, src);
    }
    const missing = this.slots.filter((s) => !bySlot.has(s)).map((s) => s.name);
    if (missing.length) throw new Error(`${op}: missing keys: ${missing.join(', ')}`);
    noGrad(() => {
      for (const [slot, src] of bySlot) tidy(() => slot.shadow.copy_(moveLike(src, slot.shadow)));
    });
  }

  /** Free the shadows (and the copies an {@link applyTo} keeps; the model keeps the EMA weights then). */
  dispose(): void {
    for (const s of this.slots) s.shadow.dispose();
    for (const s of this.applied?.slots ?? []) s.backup.dispose();
    this.applied = null;
    this.disposed = true;
  }

  // `model`'s parameter for each slot, matched by canonical name and checked for shape
  private targetsOf(op: string, model: Module): { param: Tensor; shadow: Tensor }[] {
    if (!(model instanceof Module)) throw new Error(`${op}: model must be a Module, got ${show(model)}`);
    if (model === this.model) return this.slots.map(({ param, shadow }) => ({ param, shadow }));
    const theirs = new Map(model.namedParameters());
    const names = this.slots.map((s) => s.name);
    const missing = names.filter((n) => !theirs.has(n));
    const extra = [...theirs.keys()].filter((n) => !names.includes(n));
    if (missing.length || extra.length)
      throw new Error(`${op}: the model's parameters differ from the tracked model's (${[missing.length ? `missing ${missing.join(', ')}` : '', extra.length ? `extra ${extra.join(', ')}` : ''].filter(Boolean).join('; ')})`);
    return this.slots.map(({ name, shadow }) => {
      const param = theirs.get(name)!;
      if (param.disposed) throw new Error(`${op}: parameter '${name}' was disposed`);
      if (param.rank !== shadow.rank || param.shape.some((d, i) => d !== shadow.shape[i]))
        throw new Error(`${op}: parameter '${name}' is ${fmt(param.shape)}, the tracked one ${fmt(shadow.shape)}`);
      return { param, shadow };
    });
  }

  private live(op: string): void {
    if (this.disposed) throw new Error(`${op}: the EMA was disposed`);
    for (const s of this.slots) if (s.param.disposed) throw new Error(`${op}: parameter '${s.name}' was disposed (make the EMA after moving the model with to())`);
  }
}

// A shadow copy of a parameter: f32 (f64 for f64), its own storage.
function shadowOf(p: Tensor): Tensor {
  const dtype = p.dtype === 'f64' ? 'f64' : 'f32';
  return p.dtype === dtype ? clone(p) : cast(p, dtype);
}

// `src` on `like`'s backend in `like`'s dtype (a temporary when either differs, freed by the caller's tidy).
function moveLike(src: Tensor, like: Tensor): Tensor {
  const moved = src.backend === like.backend ? src : src.to(like.backend.name);
  return moved.dtype === like.dtype ? moved : cast(moved, like.dtype);
}
