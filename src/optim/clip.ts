/** Gradient clipping by total norm and by value, in place (as `torch.nn.utils`). @module */
import { noGrad } from '../autograd/tape.js';
import { byDtype } from './optimizer.js';
import { tidy } from '../tensor/memory.js';
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { zeros } from '../tensor/ops/creation.js';
import { add, cast, clamp, div, isfinite, minimum, where } from '../tensor/ops/elementwise.js';
import { multiNorm, multiScale } from '../tensor/ops/optim.js';
import { max, norm } from '../tensor/ops/reduce.js';
import { concat } from '../tensor/ops/shape_ops.js';
import { asOp } from '../tensor/ops/util.js';
import { checkBoolean, checkKeys, checkNumber, show } from '../tensor/validate.js';

function gradsOf(op: string, params: Iterable<Tensor> | Tensor): Tensor[] {
  const iterable = params !== null && typeof params === 'object' && typeof (params as Partial<Iterable<Tensor>>)[Symbol.iterator] === 'function';
  if (!(params instanceof Tensor) && !iterable) throw new Error(`${op}: params must be a Tensor or an iterable of Tensors, got ${show(params)}`);
  const list: unknown[] = params instanceof Tensor ? [params] : [...params];
  return list.flatMap((p, i) => {
    if (!(p instanceof Tensor)) throw new Error(`${op}: parameter ${i} is not a Tensor, got ${show(p)}`);
    if (p.disposed) throw new Error(`${op}: parameter ${i} (${fmt(p.shape)} ${p.dtype}) was disposed`);
    if (p.grad?.disposed) throw new Error(`${op}: the gradient of parameter ${i} (${fmt(p.shape)} ${p.dtype}) was disposed`);
    return p.grad ? [p.grad] : [];
  });
}

/** Options of {@link clipGradNorm}. */
export interface ClipGradNormOptions {
  /**
   * Fail when the total norm is NaN or infinite (as PyTorch's `error_if_nonfinite`). Checked on
   * the device, without a sync: the gradients are then left unscaled and the next read or sync
   * (a logged loss, an eval) throws `clipGradNorm: the total norm … is non-finite`.
   */
  errorIfNonfinite?: boolean;
}

/**
 * Scale the gradients of `params` in place so that their total `normType`-norm (the norm of
 * all gradients concatenated) is at most `maxNorm`, as `torch.nn.utils.clip_grad_norm_`:
 * scale = min(1, maxNorm / (total + 1e−6)). Parameters without a gradient are skipped.
 *
 * It runs on the device in a few kernel calls whatever the number of parameters (the norms of
 * all gradients in one call, the scaling in another) and never syncs. Returns the total norm
 * before clipping, a 0-d tensor (f32, or f64 when a gradient is f64) that the caller owns;
 * reading it (`await norm.item()`) is a sync.
 *
 * @example
 * loss.backward();
 * const gradNorm = clipGradNorm(model.parameters(), 1.0);
 * opt.step();
 */
export function clipGradNorm(params: Iterable<Tensor> | Tensor, maxNorm: number, normType = 2, opts: ClipGradNormOptions = {}): Tensor {
  const op = 'clipGradNorm';
  if (typeof maxNorm !== 'number' || !(maxNorm >= 0)) throw new Error(`${op}: maxNorm must be a non-negative number, got ${show(maxNorm)}`);
  checkNumber(op, 'normType', normType, { min: 0, minExclusive: true, infinity: true });
  checkKeys(op, opts, ['errorIfNonfinite']);
  const errorIfNonfinite = opts?.errorIfNonfinite === undefined ? false : checkBoolean(op, 'errorIfNonfinite', opts.errorIfNonfinite);
  const grads = gradsOf('clipGradNorm', params);
  const dtype = grads.some((g) => g.dtype === 'f64') ? 'f64' : 'f32';
  if (grads.length === 0) return zeros([], { dtype });
  const groups = byDtype(grads, (g) => g);
  return asOp(op, () =>
    noGrad(() =>
      tidy(() => {
        // ‖g‖ of every gradient (one call per dtype), then the norm of those norms (max for ∞)
        const norms = concat(groups.map((gs) => cast(multiNorm(gs, normType), dtype)));
        const total = normType === Infinity ? max(norms) : norm(norms, normType);
        // scale = min(maxNorm / (total + 1e−6), 1), or 1 when the norm is not finite and that is an error
        let scale = minimum(div(maxNorm, add(total, 1e-6)), 1);
        if (errorIfNonfinite) {
          const finite = isfinite(total);
          total.backend.check({
            cond: finite._storage(op),
            values: total._storage(op),
            op,
            message: `the total norm of order ${normType} is non-finite ({value}); pass errorIfNonfinite: false to clip anyway`,
          });
          scale = where(finite, scale, 1);
        }
        for (const gs of groups) multiScale(gs, scale);
        return total;
      }),
    ),
  );
}

/** Clamp every gradient of `params` into [−clip, clip] in place (`clip_grad_value_`). */
export function clipGradValue(params: Iterable<Tensor> | Tensor, clip: number): void {
  if (typeof clip !== 'number' || !(clip >= 0)) throw new Error(`clipGradValue: clip must be a non-negative number, got ${show(clip)}`);
  const grads = gradsOf('clipGradValue', params);
  asOp('clipGradValue', () => noGrad(() => tidy(() => grads.forEach((g) => g.copy_(clamp(g, -clip, clip))))));
}
