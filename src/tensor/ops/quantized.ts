/**
 * Int8 weight quantization for inference: per-output-channel symmetric int8 weights
 * ({@link quantizeInt8}) and the linear layer over them ({@link linearInt8}), whose activations
 * are quantized per row on the fly (dynamic quantization, as `torch.ao.quantization.quantize_dynamic`
 * does for `nn.Linear`; symmetric [−127, 127] on both sides, so the products are int8 × int8
 * summed exactly in 32-bit integers). The cpu backend multiplies with AVX-512 VNNI where the CPU
 * has it (kernels/cpu/isa/quantized.cc).
 * @module
 */
import { isFloat } from '../../backend/dtype.js';
import { isGradEnabled, noGrad } from '../../autograd/tape.js';
import { keep, tidy } from '../memory.js';
import { fmt, sizeOf } from '../shape.js';
import { Tensor } from '../tensor.js';
import { abs, add, cast, clamp, div, lt, mul, round, where, gt } from './elementwise.js';
import { tensor, zeros } from './creation.js';
import { max } from './reduce.js';
import { concat, reshape, slice, transpose } from './shape_ops.js';
import { desc, fail, live, present, rawCast } from './util.js';

/** The largest input width of an int8 product: 127·127·k must fit a 32-bit sum. */
export const MAX_INT8_IN_FEATURES = 131072;

/** A weight `[out, in]` quantized by {@link quantizeInt8}. */
export interface Int8Weight {
  /** i32 `[⌈in/4⌉, out]`: word (q, j) holds the int8 weights `[j, 4q … 4q + 3]`, one per byte (little-endian, 0 past `in`). */
  packed: Tensor;
  /** f32 `[out]`: row j of the weight is `scale[j] · int8 row j`. */
  scale: Tensor;
  inFeatures: number;
  outFeatures: number;
}

function checkInt8Weight(op: string, w: unknown): Int8Weight {
  const o = w as Int8Weight;
  if (typeof w !== 'object' || w === null || !(o.packed instanceof Tensor) || !(o.scale instanceof Tensor))
    fail(op, `weight must be an Int8Weight ({ packed, scale, inFeatures, outFeatures }, from quantizeInt8), got ${w === null ? 'null' : typeof w}`);
  const { inFeatures: k, outFeatures: n } = o;
  if (!Number.isInteger(k) || k < 0 || !Number.isInteger(n) || n < 0) fail(op, `weight.inFeatures and weight.outFeatures must be non-negative integers, got ${String(k)} and ${String(n)}`);
  const kq = Math.ceil(k / 4);
  if (o.packed.dtype !== 'i32' || o.packed.rank !== 2 || o.packed.shape[0] !== kq || o.packed.shape[1] !== n)
    fail(op, `weight.packed must be [${kq}, ${n}] i32 for ${n}×${k} weights, got ${desc(o.packed)}`);
  if (o.scale.dtype !== 'f32' || o.scale.rank !== 1 || o.scale.shape[0] !== n) fail(op, `weight.scale must be [${n}] f32, got ${desc(o.scale)}`);
  return o;
}

/**
 * Quantize a weight `[out, in]` to int8, per output channel (row) and symmetrically: `scale[j] =
 * max|w[j, :]| / 127`, `q = round(w / scale)` (half to even) in [−127, 127], packed four to an
 * i32 word for {@link linearInt8}. Runs on the weight's backend with tensor ops (nothing is read
 * back); the returned tensors are new (dispose them, or let a module own them). A row of zeros
 * has scale 0. The weight should be finite (a non-finite weight quantizes to garbage).
 *
 * @example
 * const q = quantizeInt8(linear.weight); // { packed: [⌈in/4⌉, out] i32, scale: [out] f32 }
 */
export function quantizeInt8(weight: Tensor): Int8Weight {
  const op = 'quantizeInt8';
  live(op, weight);
  if (weight.rank !== 2 || !isFloat(weight.dtype)) fail(op, `weight must be a floating [out, in] matrix, got ${desc(weight)}`);
  const [n, k] = weight.shape as [number, number];
  if (k > MAX_INT8_IN_FEATURES) fail(op, `weight ${fmt(weight.shape)} has ${k} input features; int8 products allow at most ${MAX_INT8_IN_FEATURES} (the 32-bit sums would overflow)`);
  const kq = Math.ceil(k / 4);
  const place = { backend: weight.backend.name };
  if (k === 0 || n === 0) return { packed: zeros([kq, n], { ...place, dtype: 'i32' }), scale: zeros([n], place), inFeatures: k, outFeatures: n };
  return noGrad(() =>
    tidy(() => {
      const w = rawCast(weight.detach(), 'f32');
      const amax = max(abs(w), 1, true); // [n, 1]
      const scale = div(amax, 127);
      const q = clamp(round(div(w, where(gt(amax, 0), scale, 1))), -127, 127); // integers in f32
      const padded = kq * 4 > k ? concat([q, zeros([n, kq * 4 - k], place)], 1) : q;
      const qi = cast(reshape(padded, [n, kq, 4]), 'i32');
      // byte b of the word is the two's complement byte of q[…, b]: q + 256 for negative q, except
      // the top byte, whose sign is the word's (127·2²⁴ + 2²⁴ − 1 = 2³¹ − 1: no overflow)
      const byte = (b: number): Tensor => {
        const v = slice(qi, 2, b, b + 1);
        return b === 3 ? v : add(v, mul(cast(lt(v, 0), 'i32'), 256));
      };
      const word = add(add(byte(0), mul(byte(1), 256)), add(mul(byte(2), 65536), mul(byte(3), 16777216)));
      const packed = keep(transpose(reshape(word, [n, kq]), 0, 1));
      return { packed, scale: keep(reshape(scale, [n])), inFeatures: k, outFeatures: n };
    }),
  );
}

/**
 * The weight {@link quantizeInt8} made, as f32 `[out, in]` (`scale[j] · q[j, p]`): what the int8
 * product multiplies by, for measuring the quantization error. Reads the words back (async).
 */
export async function dequantizeInt8(weight: Int8Weight): Promise<Tensor> {
  const op = 'dequantizeInt8';
  const w = checkInt8Weight(op, weight);
  const backend = live(op, w.packed, w.scale);
  const { inFeatures: k, outFeatures: n } = w;
  const [words, scale] = await Promise.all([w.packed.data(), w.scale.data()]);
  const out = new Float32Array(n * k);
  for (let j = 0; j < n; j++)
    for (let p = 0; p < k; p++) out[j * k + p] = Math.fround(scale[j]! * ((words[(p >> 2) * n + j]! << (24 - 8 * (p & 3))) >> 24));
  return tensor(out, [n, k], { backend: backend.name });
}

/**
 * `x @ Wᵀ + bias` with the int8 weight W of {@link quantizeInt8}: each row of x `[..., in]` is
 * quantized to int8 with its own scale (max|row| / 127), multiplied exactly in integers, and
 * scaled back to f32 (the output has x's dtype). For inference only: not differentiable, so
 * with gradients on, an x that requires grad is refused (run it under `noGrad`).
 *
 * @example
 * const q = quantizeInt8(w);
 * const y = noGrad(() => linearInt8(x, q, b)); // ≈ linear(x, w, b)
 */
export function linearInt8(x: Tensor, weight: Int8Weight, bias?: Tensor | null): Tensor {
  const op = 'linearInt8';
  const w = checkInt8Weight(op, weight);
  const backend = live(op, x, w.packed, w.scale, ...present(bias));
  if (!isFloat(x.dtype)) fail(op, `input must be floating, got ${desc(x)}`);
  const { inFeatures: k, outFeatures: n } = w;
  if (x.rank < 1 || x.shape[x.rank - 1] !== k) fail(op, `input ${fmt(x.shape)} does not match the ${n}×${k} int8 weight (expected [..., ${k}])`);
  if (bias && (bias.rank !== 1 || bias.shape[0] !== n || !isFloat(bias.dtype))) fail(op, `bias must be a floating [${n}], got ${desc(bias)}`);
  if (isGradEnabled() && (x.requiresGrad || bias?.requiresGrad))
    fail(op, 'int8 products are for inference and have no gradient: call the model under noGrad() (the input requires grad)');
  const rows = sizeOf(x.shape.slice(0, -1));
  const xc = rawCast(x, 'f32');
  const bc = bias ? rawCast(bias, 'f32') : null;
  const out = Tensor._empty(backend, [...x.shape.slice(0, -1), n], 'f32');
  // k = 0 needs no case of its own: every row's amax is 0, so each output is bias (or 0)
  if (out.size > 0)
    backend.matmulInt8({ a: xc._storage(op), w: w.packed._storage(op), scale: w.scale._storage(op), out: out._storage(op), bias: bc ? bc._storage(op) : null, m: rows, n, k });
  if (xc !== x) xc.dispose();
  if (bc && bc !== bias) bc.dispose();
  if (out.dtype === x.dtype) return out;
  const r = rawCast(out, x.dtype);
  out.dispose();
  return r;
}
