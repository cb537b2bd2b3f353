/**
 * Rotary position embedding (RoPE, as GPT-NeoX and LLaMA): the two halves of each head vector
 * are rotated by position-dependent angles, so q·k depends only on the distance between the
 * two positions.
 * @module
 */
import { add, mul, sub } from '../tensor/ops/elementwise.js';
import { tensor } from '../tensor/ops/creation.js';
import { concat, narrow, reshape } from '../tensor/ops/shape_ops.js';
import { asOp, live, relabel } from '../tensor/ops/util.js';
import { fmt, tryBroadcast } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkChoice, checkNumber, optionalNumber } from '../tensor/validate.js';
import type { ParamOptions } from './init.js';
import { Module } from './module.js';
import { options, PARAM_KEYS, paramOptions, size } from './validate.js';

/** Options of {@link RotaryEmbedding}. */
export interface RotaryOptions extends Omit<ParamOptions, 'generator'> {
  /** θ base of the frequencies base^(−2i/D) (default 10000). */
  base?: number;
}

/**
 * Rotate `x` `[..., D]` by the angles in `cos`/`sin` (half-rotation, NeoX style): with x = [x₁, x₂]
 * split in halves, `[x₁·cos − x₂·sin, x₂·cos + x₁·sin]`. cos and sin `[..., D/2]` broadcast
 * against the halves: `[T, D/2]` for x `[..., T, D]`, `[T, 1, D/2]` for x `[B, T, H, D]`.
 * Differentiable.
 */
export function applyRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return asOp('applyRotary', () => rotate(x, cos, sin));
}

function rotate(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  live('applyRotary', x, cos, sin);
  const d = x.shape[x.rank - 1] ?? 0;
  const half = [...x.shape.slice(0, -1), d / 2];
  const fits = (c: Tensor): boolean => {
    const b = tryBroadcast(half, c.shape);
    return !!b && b.length === half.length && b.every((s, i) => s === half[i]);
  };
  if (x.rank < 2 || d % 2 !== 0 || cos.shape.length !== sin.shape.length || cos.shape.some((s, i) => s !== sin.shape[i]) || !fits(cos))
    throw new Error(`applyRotary: x ${fmt(x.shape)} must be [..., D] with D even and cos/sin broadcastable to ${fmt(half)}, got cos ${fmt(cos.shape)}, sin ${fmt(sin.shape)}`);
  const x1 = narrow(x, -1, 0, d / 2);
  const x2 = narrow(x, -1, d / 2, d / 2);
  return concat([sub(mul(x1, cos), mul(x2, sin)), add(mul(x2, cos), mul(x1, sin))], -1);
}

/**
 * Rotary embedding for heads of size `headDim` at positions `[0, maxPositions)`. The cos/sin
 * tables are non-persistent buffers (they move with `to()` but are not in the state dict).
 */
export class RotaryEmbedding extends Module {
  readonly headDim: number;
  readonly maxPositions: number;
  readonly base: number;

  constructor(headDim: number, maxPositions: number, opts: RotaryOptions = {}) {
    super();
    const op = 'RotaryEmbedding';
    size(op, 'headDim', headDim, 2);
    if (headDim % 2 !== 0) throw new Error(`${op}: headDim must be a positive even integer, got ${headDim}`);
    size(op, 'maxPositions', maxPositions);
    const o = options(op, opts, [...PARAM_KEYS, 'base']);
    const place = paramOptions(op, o);
    this.headDim = headDim;
    this.maxPositions = maxPositions;
    this.base = o.base === undefined ? 10000 : checkNumber(op, 'base', o.base, { min: 0, minExclusive: true });
    const half = headDim / 2;
    const cos = new Float64Array(maxPositions * half);
    const sin = new Float64Array(maxPositions * half);
    for (let p = 0; p < maxPositions; p++)
      for (let i = 0; i < half; i++) {
        // angle = p·base^(−2i/D)
        const angle = p * this.base ** ((-2 * i) / headDim);
        cos[p * half + i] = Math.cos(angle);
        sin[p * half + i] = Math.sin(angle);
      }
    const table = { dtype: place.dtype ?? 'f32', ...(place.backend !== undefined ? { backend: place.backend } : {}) };
    try {
      this.registerBuffer('cos', tensor(cos, [maxPositions, half], table), { persistent: false });
      this.registerBuffer('sin', tensor(sin, [maxPositions, half], table), { persistent: false });
    } catch (e) {
      this.dispose();
      throw relabel(op, e);
    }
  }

  /**
   * x at positions `offset … offset+T−1` → rotated, same shape: x `[..., T, D]` (layout 'bhtd',
   * the default) or `[B, T, H, D]` (layout 'bthd').
   */
  forward(x: Tensor, offset = 0, layout: 'bhtd' | 'bthd' = 'bhtd'): Tensor {
    const op = 'RotaryEmbedding.forward';
    live(op, x);
    optionalNumber(op, 'offset', offset, 0, { integer: true, min: 0 });
    const bthd = checkChoice(op, 'layout', layout ?? 'bhtd', ['bhtd', 'bthd'] as const) === 'bthd';
    const t = x.shape[x.rank - (bthd ? 3 : 2)] ?? 0;
    if (x.rank < (bthd ? 4 : 2) || x.shape[x.rank - 1] !== this.headDim)
      throw new Error(`${op}: expected ${bthd ? '[B, T, H, ' : '[..., T, '}${this.headDim}], got ${fmt(x.shape)}`);
    if (offset + t > this.maxPositions) throw new Error(`${op}: positions ${offset}..${offset + t - 1} exceed the table of ${this.maxPositions}`);
    return asOp(op, () => {
      const table = (name: string): Tensor => {
        const rows = narrow(this.getBuffer(name), 0, offset, t);
        return bthd ? reshape(rows, [t, 1, this.headDim / 2]) : rows;
      };
      return applyRotary(x, table('cos'), table('sin'));
    });
  }
}
