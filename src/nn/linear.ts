/** `Linear`: a fully connected layer, `y = x·Wᵀ + b`, optionally with a LoRA adapter or int8 weights for inference. @module */
import { noGrad } from '../autograd/tape.js';
import type { Activation } from '../backend/ops.gen.js';
import { activate } from '../tensor/ops/elementwise.js';
import { isFloat } from '../backend/dtype.js';
import { crossEntropy, linear, linearCrossEntropy, type LinearCrossEntropyOptions } from '../tensor/ops/nn.js';
import { linearInt8, quantizeInt8, type Int8Weight } from '../tensor/ops/quantized.js';
import type { Generator } from '../tensor/random.js';
import { fmt } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkNumber } from '../tensor/validate.js';
import { Dropout } from './dropout.js';
import { makeConstant, makeNormal, makeUniform, type ParamOptions } from './init.js';
import { Module } from './module.js';
import { options, PARAM_KEYS, paramOptions, size, tensorArg } from './validate.js';
import { asOp } from '../tensor/ops/util.js';

/** Options of {@link Linear}. */
export interface LinearOptions extends ParamOptions {
  /** Add a learned bias (default true). */
  bias?: boolean;
  /**
   * Initialise the weight from N(0, std) and the bias with zeros (GPT-2 style). Without it, as
   * PyTorch: weight and bias from U(−1/√in, 1/√in).
   */
  std?: number;
  /** Use this `[out, in]` tensor as the weight instead of creating one (weight tying). */
  weight?: Tensor;
}

/** Options of {@link Linear.addLoRA}. */
export interface LoRAOptions {
  /** Rank r of the update: A `[r, in]`, B `[out, r]`. */
  rank: number;
  /** The update B·A is scaled by alpha / rank (default alpha = rank: a scale of 1). */
  alpha?: number;
  /** Dropout on the adapter's input, as PEFT's `lora_dropout` (default 0). */
  dropout?: number;
  /** The stream of A's initial values and of the adapter's dropout masks. */
  generator?: Generator;
}

/** A Linear layer's LoRA adapter (see {@link Linear.addLoRA}). */
export interface LoRAState {
  /** `[rank, in]` */
  A: Tensor;
  /** `[out, rank]` */
  B: Tensor;
  rank: number;
  alpha: number;
  dropout: number;
  /** alpha / rank */
  scale: number;
  /** Whether scale·B·A is folded into the weight (the forward pass then skips the adapter). */
  merged: boolean;
}

/**
 * A fully connected layer (as `torch.nn.Linear`): x `[..., in]` → `[..., out]`, with parameters
 * `weight` `[out, in]` and `bias` `[out]`.
 *
 * @example
 * const proj = new Linear(64, 256, { std: 0.02, generator: new Generator(1) });
 * const y = proj.forward(x); // x: [B, T, 64] → [B, T, 256]
 */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  private _lora: { rank: number; alpha: number; dropout: number; merged: boolean } | null = null;
  private _int8 = false;

  constructor(inFeatures: number, outFeatures: number, opts: LinearOptions = {}) {
    super();
    const op = 'Linear';
    // as PyTorch, a layer of zero features is allowed (an empty weight)
    this.inFeatures = size(op, 'inFeatures', inFeatures, 0);
    this.outFeatures = size(op, 'outFeatures', outFeatures, 0);
    const o = options(op, opts, [...PARAM_KEYS, 'bias', 'std', 'weight']);
    const place = paramOptions(op, o);
    const bias = o.bias === undefined ? true : checkBoolean(op, 'bias', o.bias);
    if (o.std !== undefined) checkNumber(op, 'std', o.std, { min: 0 });
    const bound = inFeatures > 0 ? 1 / Math.sqrt(inFeatures) : 0;
    let weight = o.weight ?? undefined;
    if (weight !== undefined) {
      tensorArg(op, 'weight', weight);
      if (!weight.isLeaf) throw new Error('Linear: weight must be a leaf tensor (use detach())');
      if (weight.rank !== 2 || weight.shape[0] !== outFeatures || weight.shape[1] !== inFeatures)
        throw new Error(`Linear: weight must be [${outFeatures}, ${inFeatures}], got ${fmt(weight.shape)}`);
      if (!isFloat(weight.dtype)) throw new Error(`Linear: weight must be floating, got ${fmt(weight.shape)} ${weight.dtype}`);
    } else
      weight =
        o.std !== undefined
          ? makeNormal(op, [outFeatures, inFeatures], o.std, place)
          : makeUniform(op, [outFeatures, inFeatures], -bound, bound, place);
    this.registerParameter('weight', weight);
    if (bias) {
      // a bias beside a given weight takes that weight's dtype and backend
      const beside = { ...place, dtype: weight.dtype, backend: weight.backend.name };
      this.registerParameter(
        'bias',
        o.std !== undefined || o.weight ? makeConstant(op, [outFeatures], 0, beside) : makeUniform(op, [outFeatures], -bound, bound, beside),
      );
    }
  }

  /** `[out, in]`. */
  get weight(): Tensor {
    return this.getParameter('weight');
  }

  /** `[out]`, or null without a bias. */
  get bias(): Tensor | null {
    return this.hasParameter('bias') ? this.getParameter('bias') : null;
  }

  /** x `[..., in]` → `[..., out]` (plus the LoRA update scale·x·Aᵀ·Bᵀ while one is attached and not merged). */
  forward(x: Tensor): Tensor {
    return asOp('Linear.forward', () => {
      const y = this._int8 ? linearInt8(x, this.int8Weight!, this.bias) : linear(x, this.weight, this.bias);
      const l = this._lora;
      if (!l || l.merged) return y;
      const A = this.getModule('lora_A') as Linear;
      const B = this.getModule('lora_B') as Linear;
      const drop = this.getModule('lora_dropout') as Dropout;
      const delta = B.forward(A.forward(drop.forward(x)));
      return y.add(l.alpha === l.rank ? delta : delta.mul(l.alpha / l.rank));
    });
  }

  // whether forward is x·Wᵀ + b alone (no int8 weights, no unmerged LoRA): what the fused ops compute
  private get plain(): boolean {
    return !this._int8 && !(this._lora && !this._lora.merged);
  }

  /**
   * `act(forward(x))`, the activation in the matmul's epilogue (one pass over the output, its
   * pre-activation kept for the backward) where the layer is plain; an int8 or LoRA layer applies
   * it after its own forward.
   */
  forwardActivated(x: Tensor, activation: Activation): Tensor {
    return asOp('Linear.forward', () => {
      if (!this.plain) return activate(activation, this.forward(x));
      return linear(x, this.weight, this.bias, { activation });
    });
  }

  /**
   * The cross-entropy of this layer's outputs, taken as logits, against `targets` (x `[..., in]`,
   * targets `[...]` i32): {@link linearCrossEntropy} on the weight and bias, the logits made a
   * chunk of rows at a time. An int8 or LoRA layer, whose outputs are not x·Wᵀ + b alone, computes
   * its logits whole and then the loss.
   */
  crossEntropy(x: Tensor, targets: Tensor, opts: Omit<LinearCrossEntropyOptions, 'bias'> = {}): Tensor {
    const op = 'Linear.crossEntropy';
    const { chunkRows, ...ce } = options(op, opts, ['ignoreIndex', 'labelSmoothing', 'reduction', 'chunkRows']);
    return asOp(op, () => {
      if (!this.plain) return crossEntropy(this.forward(x), targets, ce);
      return linearCrossEntropy(x, this.weight, targets, { ...ce, bias: this.bias, ...(chunkRows === undefined ? {} : { chunkRows }) });
    });
  }

  /**
   * Attach a LoRA adapter (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models"):
   * y = x·Wᵀ + b + (alpha/rank)·dropout(x)·Aᵀ·Bᵀ, with children `lora_A` and `lora_B` (Linear
   * layers without bias, so their parameters are `lora_A.weight` `[rank, in]` and
   * `lora_B.weight` `[out, rank]`, PEFT's names) and `lora_dropout`. As PEFT initialises them: A
   * from U(−1/√in, 1/√in) (kaiming-uniform with a = √5), B zero, so the layer's output is
   * unchanged until B trains. The adapter takes the weight's dtype and backend. Returns this.
   */
  addLoRA(opts: LoRAOptions): this {
    const op = 'Linear.addLoRA';
    return asOp(op, () => {
      const o = options(op, opts, ['rank', 'alpha', 'dropout', 'generator']);
      if (this._lora) throw new Error(`${op}: this layer already has a LoRA adapter (rank ${this._lora.rank})`);
      const rank = size(op, 'rank', o.rank, 1);
      const alpha = o.alpha === undefined ? rank : checkNumber(op, 'alpha', o.alpha, { min: 0, minExclusive: true });
      const p = o.dropout === undefined ? 0 : checkNumber(op, 'dropout', o.dropout, { min: 0, max: 1, maxExclusive: true });
      const w = this.weight;
      const place = { dtype: w.dtype, backend: w.backend.name, ...(o.generator ? { generator: o.generator } : {}) };
      const a = new Linear(this.inFeatures, rank, { ...place, bias: false });
      let b: Linear;
      try {
        b = new Linear(rank, this.outFeatures, { bias: false, weight: makeConstant(op, [this.outFeatures, rank], 0, place) });
      } catch (e) {
        a.dispose();
        throw e;
      }
      this.registerModule('lora_dropout', new Dropout(p, o.generator ? { generator: o.generator } : {}));
      this.registerModule('lora_A', a);
      this.registerModule('lora_B', b);
      this._lora = { rank, alpha, dropout: p, merged: false };
      return this;
    });
  }

  /** The attached LoRA adapter, or null. */
  get lora(): LoRAState | null {
    const l = this._lora;
    if (!l) return null;
    return { ...l, scale: l.alpha / l.rank, A: (this.getModule('lora_A') as Linear).weight, B: (this.getModule('lora_B') as Linear).weight };
  }

  // W ± scale·B·A, in place and untracked
  private foldLoRA(op: string, sign: 1 | -1): void {
    const l = this.lora;
    if (!l) throw new Error(`${op}: this layer has no LoRA adapter (addLoRA first)`);
    if (l.merged === (sign === 1)) throw new Error(`${op}: the adapter is ${l.merged ? 'already' : 'not'} merged`);
    noGrad(() => {
      const w = this.weight;
      const upd = l.B.matmul(l.A).mul(sign * l.scale).cast(w.dtype);
      const next = w.add(upd);
      w.copy_(next);
      upd.dispose();
      next.dispose();
    });
    this._lora!.merged = sign === 1;
  }

  /** Fold scale·B·A into the weight (inference without the adapter's extra matmuls). Returns this. */
  mergeLoRA(): this {
    this.foldLoRA('Linear.mergeLoRA', 1);
    return this;
  }

  /** Take scale·B·A back out of the weight (equal to the unmerged weight up to rounding). Returns this. */
  unmergeLoRA(): this {
    this.foldLoRA('Linear.unmergeLoRA', -1);
    return this;
  }

  /**
   * Detach and dispose the adapter. A merged adapter's update stays in the weight (PEFT's
   * `merge_and_unload`); an unmerged one is simply dropped. Returns this.
   */
  removeLoRA(): this {
    if (!this._lora) throw new Error('Linear.removeLoRA: this layer has no LoRA adapter');
    for (const name of ['lora_A', 'lora_B', 'lora_dropout']) this.unregisterModule(name).dispose();
    this._lora = null;
    return this;
  }

  /**
   * Multiply by an int8 copy of the weight from now on (inference: the forward pass then refuses
   * inputs that require grad while gradients are on). The copy ({@link quantizeInt8}: per output
   * channel, symmetric) is kept in two non-persistent buffers, `weight_int8` and `weight_scale`, so
   * it moves with the module and stays out of the state dict; the float weight is kept (a tied
   * embedding still reads it). Quantize again after the weight changes. Returns this.
   */
  quantize(): this {
    const op = 'Linear.quantize';
    asOp(op, () => {
      if (this._lora && !this._lora.merged) throw new Error('an unmerged LoRA adapter would be added in float: mergeLoRA() first');
      const q = quantizeInt8(this.weight);
      if (this._int8) this.unquantize();
      this.registerBuffer('weight_int8', q.packed, { persistent: false });
      this.registerBuffer('weight_scale', q.scale, { persistent: false });
      this._int8 = true;
    });
    return this;
  }

  /** Go back to the float weight and free the int8 copy. Returns this. */
  unquantize(): this {
    if (!this._int8) throw new Error('Linear.unquantize: this layer is not quantized');
    for (const name of ['weight_int8', 'weight_scale']) this.unregisterBuffer(name).dispose();
    this._int8 = false;
    return this;
  }

  /** The int8 weight {@link quantize} made, or null. */
  get int8Weight(): Int8Weight | null {
    if (!this._int8) return null;
    return { packed: this.getBuffer('weight_int8'), scale: this.getBuffer('weight_scale'), inFeatures: this.inFeatures, outFeatures: this.outFeatures };
  }
}
