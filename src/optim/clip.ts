/** Gradient clipping by total norm and by value, in place (as `torch.nn.utils`). @module */
import { noGrad } from '../autograd/tape.js';
import { tidy } from '../tensor/memory.js';
import { Tensor } from '../tensor/tensor.js';
import { zeros } from '../tensor/ops/creation.js';
import { add, cast, clamp, div, minimum, mul } from '../tensor/ops/elementwise.js';
import { max, norm } from '../tensor/ops/reduce.js';
import { stack } from '../tensor/ops/shape_ops.js';

function gradsOf(op: string, params: Iterable<Tensor> | Tensor): Tensor[] {
  const list = params instanceof Tensor ? [params] : [...params];
  return list.flatMap((p, i) => {
    if (!(p instanceof Tensor)) throw new Error(`${op}: parameter ${i} is not a Tensor`);
    return p.grad ? [p.grad] : [];
  });
}

/** Options of {@link clipGradNorm}. */
export interface ClipGradNormOptions {
  /** Throw when the total norm is NaN or infinite (reads the norm back: a sync). */
  errorIfNonfinite?: boolean;
}

/**
 * Scale the gradients of `params` in place so that their total `normType`-norm (the norm of
 * all gradients concatenated) is at most `maxNorm`, as `torch.nn.utils.clip_grad_norm_`:
 * scale = min(1, maxNorm / (total + 1e−6)). Parameters without a gradient are skipped.
 *
 * Returns the total norm before clipping, a 0-d tensor (f32, or f64 when a gradient is f64)
 * that the caller owns; reading it (`.item()`) is the only sync.
 *
 * @example
 * loss.backward();
 * const gradNorm = clipGradNorm(model.parameters(), 1.0);
 * opt.step();
 */
export function clipGradNorm(params: Iterable<Tensor> | Tensor, maxNorm: number, normType = 2, opts: ClipGradNormOptions = {}): Tensor {
  if (!(maxNorm >= 0)) throw new Error(`clipGradNorm: maxNorm must be a non-negative number, got ${maxNorm}`);
  if (!(normType > 0)) throw new Error(`clipGradNorm: normType must be positive (or Infinity), got ${normType}`);
  const grads = gradsOf('clipGradNorm', params);
  const dtype = grads.some((g) => g.dtype === 'f64') ? 'f64' : 'f32';
  if (grads.length === 0) return zeros([], { dtype });
  const total = noGrad(() =>
    tidy(() => {
      // ‖g‖ per tensor, then the norm of those norms (max for ∞)
      const norms = stack(grads.map((g) => norm(cast(g, dtype), normType)));
      const t = normType === Infinity ? max(norms) : norm(norms, normType);
      if (opts.errorIfNonfinite && !Number.isFinite(t.item()))
        throw new Error(`clipGradNorm: the total norm of order ${normType} is non-finite (${t.item()}); pass errorIfNonfinite: false to clip anyway`);
      // scale = min(maxNorm / (total + 1e−6), 1)
      const scale = minimum(div(maxNorm, add(t, 1e-6)), 1);
      for (const g of grads) g.copy_(mul(cast(g, dtype), scale));
      return t;
    }),
  );
  return total;
}

/** Clamp every gradient of `params` into [−clip, clip] in place (`clip_grad_value_`). */
export function clipGradValue(params: Iterable<Tensor> | Tensor, clip: number): void {
  if (!(clip >= 0)) throw new Error(`clipGradValue: clip must be a non-negative number, got ${clip}`);
  const grads = gradsOf('clipGradValue', params);
  noGrad(() => tidy(() => grads.forEach((g) => g.copy_(clamp(g, -clip, clip)))));
}
