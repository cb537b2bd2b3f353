/**
 * TensorOrList-tensor optimizer kernels, in place and outside autograd: the Adam/AdamW and LAMB updates of
 * a whole parameter group in one backend call, the norms of a list of tensors, and scaling a list
 * by a scalar that stays on the device (so clipping needs no sync). Optimizers and `clipGradNorm`
 * call these. Parameters of a dtype the backend does not update natively (halves) go through f32
 * copies; moments are f32 (f64 for f64 parameters).
 * @module
 */
import type { AdamUpdateArgs, Backend } from '../../backend/backend.js';
import { isFloat } from '../../backend/dtype.js';
import { fmt } from '../shape.js';
import { Tensor } from '../tensor.js';
import { checkBoolean, checkKeys, checkNumber, show } from '../validate.js';
import { desc, fail, live, liveList, rawCast } from './util.js';

/** Hyper-parameters of {@link adamUpdate} and {@link lambUpdate}. */
export interface OptimizerHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count t of every parameter (one number for all, or one per parameter). */
  step: number | readonly number[];
  /** Adam only: AdamW's decoupled decay (true, the default) or L2 added to the gradient. */
  decoupled?: boolean;
  /** LAMB only: bias-corrected moments (default true). */
  biasCorrection?: boolean;
}

function list(op: string, name: string, x: Tensor | readonly Tensor[]): readonly Tensor[] {
  if (x instanceof Tensor) return [x];
  if (!Array.isArray(x)) fail(op, `${name} must be a Tensor or an array of tensors, got ${show(x)}`);
  return x;
}

const HYPER_KEYS = ['lr', 'beta1', 'beta2', 'eps', 'weightDecay', 'step', 'decoupled', 'biasCorrection'] as const;

/** Check the hyperparameters of a many-tensor update (ranges as torch.optim's constructors). */
function checkHyper(op: string, h: OptimizerHyper): void {
  if (h === null || typeof h !== 'object' || Array.isArray(h)) fail(op, `hyperparameters must be an object, got ${show(h)}`);
  checkKeys(op, h, HYPER_KEYS);
  checkNumber(op, 'lr', h.lr, { min: 0 });
  checkNumber(op, 'beta1', h.beta1, { min: 0, max: 1, maxExclusive: true });
  checkNumber(op, 'beta2', h.beta2, { min: 0, max: 1, maxExclusive: true });
  checkNumber(op, 'eps', h.eps, { min: 0 });
  checkNumber(op, 'weightDecay', h.weightDecay, { min: 0 });
  if (h.decoupled !== undefined) checkBoolean(op, 'decoupled', h.decoupled);
  if (h.biasCorrection !== undefined) checkBoolean(op, 'biasCorrection', h.biasCorrection);
  if (typeof h.step !== 'number' && !Array.isArray(h.step)) fail(op, `step must be a positive integer or a list of them, got ${show(h.step)}`);
}

// Validate a parameter list and its companions; returns the backend and the step of each.
function check(op: string, params: readonly Tensor[], grads: readonly Tensor[], m: readonly Tensor[], v: readonly Tensor[], h: OptimizerHyper): [Backend, number[]] {
  if (params.length === 0) fail(op, 'expected at least one parameter');
  const backend = live(op, ...params, ...grads, ...m, ...v);
  checkHyper(op, h);
  for (const [name, xs] of [['grads', grads], ['m', m], ['v', v]] as const)
    if (xs.length !== params.length) fail(op, `got ${params.length} parameters but ${xs.length} ${name}`);
  const dtype = params[0]!.dtype;
  params.forEach((p, i) => {
    if (!isFloat(p.dtype) || p.dtype !== dtype) fail(op, `parameters must share one floating dtype, got ${desc(params[0]!)} and ${desc(p)}`);
    const stateDtype = p.dtype === 'f64' ? 'f64' : 'f32';
    for (const [name, t, dt] of [['grad', grads[i]!, p.dtype], ['m', m[i]!, stateDtype], ['v', v[i]!, stateDtype]] as const)
      if (t.dtype !== dt || t.size !== p.size)
        fail(op, `${name} of parameter ${i} must be ${dt} with ${p.size} elements like the parameter ${fmt(p.shape)}, got ${desc(t)}`);
  });
  const steps = typeof h.step === 'number' ? params.map(() => h.step as number) : [...h.step];
  if (steps.length !== params.length) fail(op, `got ${params.length} parameters but ${steps.length} step counts`);
  for (const s of steps) checkNumber(op, 'step', s, { integer: true, min: 1 });
  return [backend, steps];
}

// Run `kernel` on the parameters, through f32 copies when the backend does not update their dtype.
function inOptimDtype(backend: Backend, params: readonly Tensor[], grads: readonly Tensor[], kernel: (p: readonly Tensor[], g: readonly Tensor[]) => void): void {
  if (backend.computes('optim', params[0]!.dtype)) return kernel(params, grads);
  const p32 = params.map((p) => rawCast(p, 'f32'));
  const g32 = grads.map((g) => rawCast(g, 'f32'));
  kernel(p32, g32);
  p32.forEach((c, i) => {
    backend.cast({ x: c._storage('optim'), out: params[i]!._storage('optim') });
    c.dispose();
    g32[i]!.dispose();
  });
}

const storages = (op: string, xs: readonly Tensor[]) => xs.map((x) => x._storage(op));

/** One tensor, or a list of them (one per parameter). */
export type TensorOrList = Tensor | readonly Tensor[];

// Validate the lists, then run `kernel` with the arguments every many-tensor update shares.
function update(op: string, params: TensorOrList, grads: TensorOrList, m: TensorOrList, v: TensorOrList, h: OptimizerHyper, kernel: (backend: Backend, a: Omit<AdamUpdateArgs, 'decoupled'>) => void): Backend {
  const [ps, gs, ms, vs] = [list(op, 'params', params), list(op, 'grads', grads), list(op, 'm', m), list(op, 'v', v)];
  const [backend, steps] = check(op, ps, gs, ms, vs, h);
  for (const t of [...ps, ...ms, ...vs]) t._bumpVersion(); // written in place
  inOptimDtype(backend, ps, gs, (p, g) =>
    kernel(backend, {
      params: storages(op, p),
      grads: storages(op, g),
      m: storages(op, ms),
      v: storages(op, vs),
      steps,
      lr: h.lr,
      beta1: h.beta1,
      beta2: h.beta2,
      eps: h.eps,
      weightDecay: h.weightDecay,
    }),
  );
  return backend;
}

/**
 * One Adam/AdamW step on every parameter in `params`, in place, in one backend call:
 * `g += wd·p` (Adam) or `p −= lr·wd·p` (AdamW); `m = β1·m + (1−β1)·g`; `v = β2·v + (1−β2)·g²`;
 * `p −= lr·(m/(1−β1ᵗ))/(√(v/(1−β2ᵗ)) + ε)`. All tensors on one backend; parameters of one dtype.
 */
export function adamUpdate(params: TensorOrList, grads: TensorOrList, m: TensorOrList, v: TensorOrList, h: OptimizerHyper): void {
  update('adamUpdate', params, grads, m, v, h, (backend, a) => backend.adamUpdate({ ...a, decoupled: h.decoupled ?? true }));
}

/**
 * One LAMB step on every parameter in `params`, in place, in one backend call (see the LAMB
 * optimizer for the math). Returns the trust ratio ‖p‖/‖r‖ of each parameter as a new tensor
 * `[n]` on the device, f32 (f64 for f64 parameters); the caller owns it; reading it is a sync.
 */
export function lambUpdate(params: TensorOrList, grads: TensorOrList, m: TensorOrList, v: TensorOrList, h: OptimizerHyper): Tensor {
  let trust: Tensor | null = null;
  update('lambUpdate', params, grads, m, v, h, (backend, a) => {
    trust = Tensor._empty(backend, [a.params.length], a.params[0]!.dtype === 'f64' ? 'f64' : 'f32');
    backend.lambUpdate({ ...a, biasCorrection: h.biasCorrection ?? true, trust: trust._storage('lambUpdate') });
  });
  return trust!;
}

/**
 * The `ord`-norm of every tensor in `xs` (PyTorch's `_foreach_norm`), in one backend call: an f32
 * tensor `[n]` (f64 when the tensors are f64). ord > 0; Infinity gives the largest magnitude.
 */
export function multiNorm(xs: readonly Tensor[], ord = 2): Tensor {
  const op = 'multiNorm';
  const backend = liveList(op, xs);
  checkNumber(op, 'ord', ord, { min: 0, minExclusive: true, infinity: true });
  const dtype = xs[0]!.dtype;
  for (const x of xs) if (!isFloat(x.dtype) || x.dtype !== dtype) fail(op, `tensors must share one floating dtype, got ${desc(xs[0]!)} and ${desc(x)}`);
  const outDtype = dtype === 'f64' ? 'f64' : 'f32';
  const out = Tensor._empty(backend, [xs.length], outDtype);
  const native = backend.computes('optim', dtype);
  const ins = native ? xs : xs.map((x) => rawCast(x, 'f32'));
  backend.multiNorm({ xs: storages(op, ins), ord, out: out._storage(op) });
  if (!native) for (const c of ins) c.dispose();
  return out;
}

/** `xs[i] *= scale` in place for every tensor (PyTorch's `_foreach_mul_`), scale a one-element tensor read on the device. */
export function multiScale(xs: readonly Tensor[], scale: Tensor): void {
  const op = 'multiScale';
  if (!Array.isArray(xs)) fail(op, `expected an array of tensors, got ${show(xs)}`);
  live(op, scale);
  if (xs.length === 0) return;
  const backend = live(op, ...xs, scale);
  if (scale.size !== 1 || !isFloat(scale.dtype)) fail(op, `scale must be one floating element, got ${desc(scale)}`);
  const dtype = xs[0]!.dtype;
  for (const x of xs) if (!isFloat(x.dtype) || x.dtype !== dtype) fail(op, `tensors must share one floating dtype, got ${desc(xs[0]!)} and ${desc(x)}`);
  const s = rawCast(scale, dtype === 'f64' ? 'f64' : 'f32');
  for (const x of xs) x._bumpVersion();
  if (backend.computes('optim', dtype)) backend.multiScale({ xs: storages(op, xs), scale: s._storage(op) });
  else {
    const ys = xs.map((x) => rawCast(x, 'f32'));
    backend.multiScale({ xs: storages(op, ys), scale: s._storage(op) });
    ys.forEach((y, i) => {
      backend.cast({ x: y._storage(op), out: xs[i]!._storage(op) });
      y.dispose();
    });
  }
  if (s !== scale) s.dispose();
}
