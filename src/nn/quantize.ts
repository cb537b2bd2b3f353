/**
 * Dynamic int8 quantization of a model for inference (as `torch.ao.quantization.quantize_dynamic`
 * with `{nn.Linear}` and `torch.qint8`): every Linear layer multiplies by an int8 copy of its
 * weight (per output channel, symmetric), its input quantized per row on the fly. Embeddings,
 * norms and attention stay in float.
 * @module
 */
import { MAX_INT8_IN_FEATURES } from '../tensor/ops/quantized.js';
import { checkKeys, show } from '../tensor/validate.js';
import { Linear } from './linear.js';
import { Module } from './module.js';

/** Options of {@link quantizeDynamic}. */
export interface QuantizeDynamicOptions {
  /** Which Linear layers to quantize, by dotted name (default: all). */
  include?: (name: string, layer: Linear) => boolean;
}

/** What {@link quantizeDynamic} did. */
export interface QuantizeReport {
  /** The dotted names of the layers now multiplying in int8. */
  layers: string[];
  /** Bytes of their int8 weights (with the per-channel scales), and of the same weights in f32. */
  int8Bytes: number;
  floatBytes: number;
}

/**
 * Quantize every Linear layer of `model` (or those `include` accepts) with {@link Linear.quantize}.
 * Layers whose input is wider than 131072 features, and layers with an unmerged LoRA adapter,
 * are left in float (and not listed). Undo with `layer.unquantize()` for each listed layer.
 *
 * @example
 * const report = quantizeDynamic(gpt); // gpt.lm_head and every attention and MLP projection
 * const { logits } = noGrad(() => gpt.forward(idx));
 */
export function quantizeDynamic(model: Module, opts: QuantizeDynamicOptions = {}): QuantizeReport {
  const op = 'quantizeDynamic';
  if (!(model instanceof Module)) throw new Error(`${op}: model must be a Module, got ${show(model)}`);
  checkKeys(op, opts, ['include']);
  if (opts.include !== undefined && typeof opts.include !== 'function') throw new Error(`${op}: include must be a function (name, layer) => boolean, got ${show(opts.include)}`);
  const report: QuantizeReport = { layers: [], int8Bytes: 0, floatBytes: 0 };
  for (const [name, m] of model.namedModules()) {
    if (!(m instanceof Linear) || m.inFeatures > MAX_INT8_IN_FEATURES || (m.lora && !m.lora.merged)) continue;
    if (opts.include && !opts.include(name, m)) continue;
    m.quantize();
    report.layers.push(name);
    report.int8Bytes += Math.ceil(m.inFeatures / 4) * 4 * m.outFeatures + 4 * m.outFeatures;
    report.floatBytes += 4 * m.inFeatures * m.outFeatures;
  }
  return report;
}
