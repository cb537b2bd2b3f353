/**
 * The objectives of preference learning and distillation, as functions of logits and log-probs
 * (so they serve any model): sequence log-likelihoods, the Bradley–Terry loss of a reward model,
 * DPO (and its reference-free variant), and knowledge distillation with soft targets.
 * @module
 */
import { concat, narrow } from '../tensor/ops/shape_ops.js';
import { crossEntropy, logSoftmax, softmax } from '../tensor/ops/nn.js';
import { fmt } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkNumber, show } from '../tensor/validate.js';
import { asOp, fail, live } from '../tensor/ops/util.js';
import { zerosLike } from '../tensor/ops/creation.js';
import { options } from '../nn/validate.js';

/** The label that marks a position as not scored (prompt tokens, padding), as PyTorch's default. */
export const IGNORE_INDEX = -100;

/** log σ(x), elementwise and stable for any x: the log-softmax of (0, x), second entry. */
export function logSigmoid(x: Tensor): Tensor {
  live('logSigmoid', x);
  return asOp('logSigmoid', () => {
    const pair = concat([zerosLike(x).unsqueeze(-1), x.unsqueeze(-1)], -1);
    return narrow(logSoftmax(pair, -1), -1, 1, 1).squeeze(-1);
  });
}

/**
 * Σₜ log p(labels[b, t] | …) over the scored positions of each row: logits `[B, T, V]` (position
 * t predicting labels[b, t], so shift before calling: labels are the next tokens), labels
 * `[B, T]` i32 with {@link IGNORE_INDEX} (or `ignoreIndex`) where a position does not count.
 * Returns `[B]`. With `average`, the mean over each row's scored positions instead.
 */
export function sequenceLogProbs(logits: Tensor, labels: Tensor, opts: { ignoreIndex?: number; average?: boolean } = {}): Tensor {
  const op = 'sequenceLogProbs';
  live(op, logits, labels);
  const o = options(op, opts, ['ignoreIndex', 'average']);
  const ignore = o.ignoreIndex === undefined ? IGNORE_INDEX : checkNumber(op, 'ignoreIndex', o.ignoreIndex, { integer: true });
  const average = o.average === undefined ? false : checkBoolean(op, 'average', o.average);
  if (logits.rank !== 3 || labels.rank !== 2 || labels.shape[0] !== logits.shape[0] || labels.shape[1] !== logits.shape[1])
    fail(op, `logits [B, T, V] and labels [B, T] must agree, got ${fmt(logits.shape)} ${logits.dtype} and ${fmt(labels.shape)} ${labels.dtype}`);
  return asOp(op, () => {
    const nll = crossEntropy(logits, labels, { ignoreIndex: ignore, reduction: 'none' }); // [B, T], 0 where ignored
    const total = nll.sum(1).neg();
    if (!average) return total;
    const count = labels.ne(ignore).cast(total.dtype).sum(1).maximum(1);
    return total.div(count);
  });
}

/**
 * The Bradley–Terry loss of a reward model: mean over pairs of −log σ(r_chosen − r_rejected),
 * rewards `[N]` each.
 */
export function bradleyTerryLoss(chosen: Tensor, rejected: Tensor): Tensor {
  const op = 'bradleyTerryLoss';
  live(op, chosen, rejected);
  if (chosen.rank !== 1 || fmt(chosen.shape) !== fmt(rejected.shape)) fail(op, `rewards must be two [N] tensors, got ${fmt(chosen.shape)} and ${fmt(rejected.shape)}`);
  return asOp(op, () => logSigmoid(chosen.sub(rejected)).mean().neg());
}

/** Options of {@link dpoLoss}. */
export interface DPOOptions {
  /** β: the strength of the implicit KL constraint (default 0.1). */
  beta?: number;
  /** Label smoothing ε of conservative DPO: each label is wrong with probability ε (default 0). */
  labelSmoothing?: number;
}

/** What {@link dpoLoss} returns. */
export interface DPOResult {
  /** The mean loss (a scalar). */
  loss: Tensor;
  /** β·(log π(chosen) − log π_ref(chosen)) per pair `[N]` (the implicit reward). */
  chosenRewards: Tensor;
  /** β·(log π(rejected) − log π_ref(rejected)) per pair `[N]`. */
  rejectedRewards: Tensor;
}

/**
 * Direct Preference Optimization (Rafailov et al. 2023): from the policy's sequence
 * log-likelihoods of chosen and rejected responses `[N]` and the frozen reference's, the loss
 * −log σ(β·((π_c − π_r) − (ref_c − ref_r))) averaged over pairs (with label smoothing ε:
 * −(1−ε)·log σ(z) − ε·log σ(−z)). Pass `null` references for the reference-free variant
 * (a uniform reference: ref_c = ref_r = 0).
 */
export function dpoLoss(policyChosen: Tensor, policyRejected: Tensor, refChosen: Tensor | null, refRejected: Tensor | null, opts: DPOOptions = {}): DPOResult {
  const op = 'dpoLoss';
  live(op, policyChosen, policyRejected);
  const o = options(op, opts, ['beta', 'labelSmoothing']);
  const beta = o.beta === undefined ? 0.1 : checkNumber(op, 'beta', o.beta, { min: 0, minExclusive: true });
  const eps = o.labelSmoothing === undefined ? 0 : checkNumber(op, 'labelSmoothing', o.labelSmoothing, { min: 0, max: 0.5 });
  const noRef = (t: Tensor | null | undefined): boolean => t === null || t === undefined;
  if (noRef(refChosen) !== noRef(refRejected))
    fail(op, `pass both reference log-likelihoods, or neither (reference-free); got refChosen ${noRef(refChosen) ? String(refChosen) : 'a tensor'} and refRejected ${noRef(refRejected) ? String(refRejected) : 'a tensor'}`);
  const all = [policyChosen, policyRejected, ...(noRef(refChosen) ? [] : [refChosen!, refRejected!])];
  for (const t of all) {
    live(op, t);
    if (t.rank !== 1 || t.shape[0] !== policyChosen.shape[0]) fail(op, `log-likelihoods must all be [N] with one N, got ${all.map((x) => fmt(x.shape)).join(', ')}`);
  }
  return asOp(op, () => {
    const chosen = noRef(refChosen) ? policyChosen : policyChosen.sub(refChosen!.detach());
    const rejected = noRef(refRejected) ? policyRejected : policyRejected.sub(refRejected!.detach());
    const z = chosen.sub(rejected).mul(beta);
    let loss = logSigmoid(z).mul(1 - eps);
    if (eps > 0) loss = loss.add(logSigmoid(z.neg()).mul(eps));
    return { loss: loss.mean().neg(), chosenRewards: chosen.mul(beta).detach(), rejectedRewards: rejected.mul(beta).detach() };
  });
}

/** Options of {@link distillationLoss}. */
export interface DistillationOptions {
  /** Softmax temperature T of both models' distributions (default 2). */
  temperature?: number;
  /** Weight α of the soft-target term; 1 − α goes to the hard labels (default 0.5; 1 without targets). */
  alpha?: number;
  ignoreIndex?: number;
}

/**
 * Knowledge distillation (Hinton et al. 2015): α·T²·KL(softmax(teacher/T) ‖ softmax(student/T))
 * + (1 − α)·CE(student, targets), over the positions whose target is not ignored (all positions
 * when `targets` is null). Logits `[..., V]`; the teacher's are detached.
 */
export function distillationLoss(studentLogits: Tensor, teacherLogits: Tensor, targets: Tensor | null, opts: DistillationOptions = {}): Tensor {
  const op = 'distillationLoss';
  live(op, studentLogits, teacherLogits);
  const o = options(op, opts, ['temperature', 'alpha', 'ignoreIndex']);
  const T = o.temperature === undefined ? 2 : checkNumber(op, 'temperature', o.temperature, { min: 0, minExclusive: true });
  const alpha = o.alpha === undefined ? (targets ? 0.5 : 1) : checkNumber(op, 'alpha', o.alpha, { min: 0, max: 1 });
  const ignore = o.ignoreIndex === undefined ? IGNORE_INDEX : checkNumber(op, 'ignoreIndex', o.ignoreIndex, { integer: true });
  if (fmt(studentLogits.shape) !== fmt(teacherLogits.shape)) fail(op, `student and teacher logits must have one shape, got ${fmt(studentLogits.shape)} and ${fmt(teacherLogits.shape)}`);
  if (targets) {
    live(op, targets);
    if (fmt(targets.shape) !== fmt(studentLogits.shape.slice(0, -1))) fail(op, `targets ${fmt(targets.shape)} must be the logits' shape without the class axis (${fmt(studentLogits.shape)})`);
  } else if (alpha < 1) fail(op, `alpha ${alpha} weighs hard labels, but no targets were given`);
  return asOp(op, () => {
    const t = teacherLogits.detach().div(T);
    const s = studentLogits.div(T);
    const kl = softmax(t).mul(logSoftmax(t).sub(logSoftmax(s))).sum(-1); // [...]
    let soft: Tensor;
    if (targets) {
      const keep = targets.ne(ignore).cast(kl.dtype);
      soft = kl.mul(keep).sum().div(keep.sum().maximum(1));
    } else soft = kl.mean();
    soft = soft.mul(alpha * T * T);
    if (!targets || alpha === 1) return soft;
    return soft.add(crossEntropy(studentLogits, targets, { ignoreIndex: ignore }).mul(1 - alpha));
  });
}

/**
 * Hidden-state matching for distillation (as FitNets and TinyBERT): the mean squared error
 * between the student's hidden states, mapped to the teacher's width by `proj` (a Linear trained
 * with the student; omit it when the widths agree), and the teacher's (detached). States
 * `[..., C_student]` and `[..., C_teacher]` with equal leading shapes.
 */
export function hiddenStateLoss(student: Tensor, teacher: Tensor, proj?: { forward(x: Tensor): Tensor } | null): Tensor {
  const op = 'hiddenStateLoss';
  live(op, student, teacher);
  if (proj !== undefined && proj !== null && typeof (proj as { forward?: unknown }).forward !== 'function')
    fail(op, `proj must be a module with a forward (a Linear), got ${show(proj)}`);
  if (fmt(student.shape.slice(0, -1)) !== fmt(teacher.shape.slice(0, -1)))
    fail(op, `student ${fmt(student.shape)} and teacher ${fmt(teacher.shape)} states must agree on every axis but the last`);
  if (!proj && student.shape[student.rank - 1] !== teacher.shape[teacher.rank - 1])
    fail(op, `the student's width ${student.shape[student.rank - 1]} differs from the teacher's ${teacher.shape[teacher.rank - 1]}: pass a projection`);
  return asOp(op, () => {
    const s = proj ? proj.forward(student) : student;
    if (fmt(s.shape) !== fmt(teacher.shape)) fail(op, `the projection gives ${fmt(s.shape)}, the teacher's states are ${fmt(teacher.shape)}`);
    return s.sub(teacher.detach()).pow(2).mean();
  });
}
