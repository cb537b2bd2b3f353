/**
 * Recurrent layers (as `torch.nn.LSTM` and `torch.nn.GRU`): stacked, optionally bidirectional,
 * dropout between layers, and variable-length batches through a lengths argument (what PyTorch
 * does with `pack_padded_sequence`): past its length a sequence's state stops changing and its
 * outputs are zeros, and the reverse direction starts at each sequence's own last element.
 *
 * Parameters carry PyTorch's names and layouts, so a PyTorch state dict loads as it is:
 * `weight_ih_l{k}[_reverse]` `[G·H, in]`, `weight_hh_l{k}[_reverse]` `[G·H, H]` and the biases
 * `bias_ih_l{k}`, `bias_hh_l{k}` `[G·H]`, with the gates stacked in PyTorch's order (LSTM: input,
 * forget, cell, output; GRU: reset, update, new), G = 4 or 3.
 *
 * The input-to-hidden products of all time steps are one matmul per layer and direction
 * (`[B·T, in] × [in, G·H]`); only the hidden-to-hidden product runs per step.
 * @module
 */
import { linear } from '../tensor/ops/nn.js';
import { arange, tensor, zeros } from '../tensor/ops/creation.js';
import { sigmoid, tanh } from '../tensor/ops/elementwise.js';
import { concat, narrow, permute, stack } from '../tensor/ops/shape_ops.js';
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkNumber, show } from '../tensor/validate.js';
import { Dropout } from './dropout.js';
import { makeUniform, type ParamOptions } from './init.js';
import { Module } from './module.js';
import { options, PARAM_KEYS, paramOptions, size, tensorArg } from './validate.js';

/** Options of {@link LSTM} and {@link GRU} (PyTorch's constructor arguments). */
export interface RNNOptions extends ParamOptions {
  /** Stacked layers (default 1). */
  numLayers?: number;
  /** Biases `bias_ih` and `bias_hh` (default true). */
  bias?: boolean;
  /** Input and output are `[B, T, ·]` (default false: `[T, B, ·]`, as PyTorch). */
  batchFirst?: boolean;
  /** Dropout on the outputs of every layer but the last, in training mode (default 0). */
  dropout?: number;
  /** A second direction per layer, reading the sequence backwards; outputs are concatenated (default false). */
  bidirectional?: boolean;
}

/** Options of a forward pass. */
export interface RNNForwardOptions {
  /**
   * Each sequence's length (`[B]`, numbers or an i32 tensor, each in [1, T]): steps past it
   * leave that sequence's state unchanged and give zero outputs, as a packed sequence does.
   */
  lengths?: readonly number[] | Tensor;
}

type Cell = 'LSTM' | 'GRU';

abstract class RNNBase extends Module {
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly hasBias: boolean;
  readonly batchFirst: boolean;
  readonly dropoutP: number;
  readonly bidirectional: boolean;
  private readonly gates: number;
  private readonly drop: Dropout | null;

  protected constructor(
    private readonly cell: Cell,
    inputSize: number,
    hiddenSize: number,
    opts: RNNOptions,
  ) {
    super();
    const op = cell;
    this.inputSize = size(op, 'inputSize', inputSize, 1);
    this.hiddenSize = size(op, 'hiddenSize', hiddenSize, 1);
    const o = options(op, opts, [...PARAM_KEYS, 'numLayers', 'bias', 'batchFirst', 'dropout', 'bidirectional']);
    const place = paramOptions(op, o);
    this.numLayers = o.numLayers === undefined ? 1 : checkNumber(op, 'numLayers', o.numLayers, { integer: true, min: 1 });
    this.hasBias = o.bias === undefined ? true : checkBoolean(op, 'bias', o.bias);
    this.batchFirst = o.batchFirst === undefined ? false : checkBoolean(op, 'batchFirst', o.batchFirst);
    this.dropoutP = o.dropout === undefined ? 0 : checkNumber(op, 'dropout', o.dropout, { min: 0, max: 1 });
    this.bidirectional = o.bidirectional === undefined ? false : checkBoolean(op, 'bidirectional', o.bidirectional);
    this.gates = cell === 'LSTM' ? 4 : 3;
    const H = this.hiddenSize;
    const G = this.gates * H;
    // PyTorch's initialisation: every weight and bias from U(−1/√H, 1/√H)
    const k = 1 / Math.sqrt(H);
    for (let layer = 0; layer < this.numLayers; layer++) {
      const inSize = layer === 0 ? this.inputSize : H * this.directions;
      for (const suffix of this.suffixes()) {
        this.registerParameter(`weight_ih_l${layer}${suffix}`, makeUniform(op, [G, inSize], -k, k, place));
        this.registerParameter(`weight_hh_l${layer}${suffix}`, makeUniform(op, [G, H], -k, k, place));
        if (this.hasBias) {
          this.registerParameter(`bias_ih_l${layer}${suffix}`, makeUniform(op, [G], -k, k, place));
          this.registerParameter(`bias_hh_l${layer}${suffix}`, makeUniform(op, [G], -k, k, place));
        }
      }
    }
    this.drop = this.dropoutP > 0 && this.numLayers > 1 ? this.registerModule('dropout', new Dropout(this.dropoutP, { generator: o.generator })) : null;
  }

  /** 2 when bidirectional, else 1. */
  get directions(): number {
    return this.bidirectional ? 2 : 1;
  }

  private suffixes(): string[] {
    return this.bidirectional ? ['', '_reverse'] : [''];
  }

  private param(name: string): Tensor | null {
    return this.hasParameter(name) ? this.getParameter(name) : null;
  }

  /**
   * Run the layers over `x` (`[T, B, in]`, or `[B, T, in]` with batchFirst) from the initial
   * states `h0` (and for an LSTM `c0`), `[numLayers·directions, B, H]` each, zeros when omitted.
   */
  protected run(x: Tensor, states: (Tensor | null | undefined)[], opts: RNNForwardOptions | undefined): { output: Tensor; h: Tensor; c: Tensor | null } {
    const op = `${this.cell}.forward`;
    tensorArg(op, 'x', x);
    if (x.rank !== 3 || x.shape[2] !== this.inputSize)
      throw new Error(`${op}: x must be ${this.batchFirst ? '[B, T, inputSize]' : '[T, B, inputSize]'} with inputSize ${this.inputSize}, got ${fmt(x.shape)} ${x.dtype}`);
    const xs = this.batchFirst ? x : permute(x, [1, 0, 2]);
    const [B, T] = [xs.shape[0]!, xs.shape[1]!];
    if (T === 0) throw new Error(`${op}: the sequence is empty (T = 0)`);
    const H = this.hiddenSize;
    const L = this.numLayers * this.directions;
    const stateNames = this.cell === 'LSTM' ? ['h0', 'c0'] : ['h0'];
    states.forEach((s, i) => {
      if (s === undefined || s === null) return;
      tensorArg(op, stateNames[i]!, s);
      if (s.rank !== 3 || s.shape[0] !== L || s.shape[1] !== B || s.shape[2] !== H)
        throw new Error(`${op}: ${stateNames[i]} must be [numLayers·directions, B, hiddenSize] = ${fmt([L, B, H])}, got ${fmt(s.shape)}`);
    });
    const o = options(op, opts ?? {}, ['lengths']);
    // mask[t]: [B, 1], 1 where step t is inside the sequence
    const masks = o.lengths === undefined ? null : this.lengthMasks(op, o.lengths, B, T, xs);

    let input = xs; // [B, T, in]
    const hs: Tensor[] = [];
    const cs: Tensor[] = [];
    for (let layer = 0; layer < this.numLayers; layer++) {
      if (layer > 0 && this.drop) input = this.drop.forward(input);
      const outs: Tensor[] = [];
      this.suffixes().forEach((suffix, d) => {
        const i = layer * this.directions + d;
        const init = (s: Tensor | null | undefined): Tensor | null => (s ? narrow(s, 0, i, 1).reshape([B, H]) : null);
        const r = this.direction(input, layer, suffix, d === 1, init(states[0]), init(states[1]), masks);
        outs.push(r.output);
        hs.push(r.h);
        if (r.c) cs.push(r.c);
      });
      input = outs.length === 1 ? outs[0]! : concat(outs, 2);
    }
    const output = this.batchFirst ? input : permute(input, [1, 0, 2]);
    return { output, h: stack(hs, 0), c: this.cell === 'LSTM' ? stack(cs, 0) : null };
  }

  // [B, 1] masks per step from the lengths (numbers or an i32 tensor; compared on the device)
  private lengthMasks(op: string, lengths: unknown, B: number, T: number, like: Tensor): Tensor[] {
    let lens: Tensor;
    if (lengths instanceof Tensor) {
      tensorArg(op, 'lengths', lengths);
      if (lengths.rank !== 1 || lengths.shape[0] !== B || (lengths.dtype !== 'i32' && lengths.dtype !== 'f32' && lengths.dtype !== 'f64'))
        throw new Error(`${op}: lengths must be [B] = [${B}] of integers, got ${fmt(lengths.shape)} ${lengths.dtype}`);
      lens = lengths.to(like.backend.name).cast(like.dtype);
    } else {
      if (!Array.isArray(lengths) || lengths.length !== B) throw new Error(`${op}: lengths must be ${B} sequence lengths (one per batch row), got ${show(lengths)}`);
      lengths.forEach((n, b) => {
        if (!Number.isInteger(n) || (n as number) < 1 || (n as number) > T) throw new Error(`${op}: lengths[${b}] must be an integer in [1, ${T}], got ${show(n)}`);
      });
      lens = tensor(lengths as number[], [B], { backend: like.backend.name, dtype: like.dtype });
    }
    const steps = arange(0, T, 1, { backend: like.backend.name, dtype: like.dtype }); // [T]
    const inside = steps.reshape([1, T]).lt(lens.reshape([B, 1])).cast(like.dtype); // [B, T]
    return Array.from({ length: T }, (_, t) => narrow(inside, 1, t, 1)); // each [B, 1]
  }

  // one layer in one direction over input [B, T, in] → output [B, T, H], final h (and c)
  private direction(input: Tensor, layer: number, suffix: string, reverse: boolean, h0: Tensor | null, c0: Tensor | null, masks: Tensor[] | null): { output: Tensor; h: Tensor; c: Tensor | null } {
    const [B, T] = [input.shape[0]!, input.shape[1]!];
    const H = this.hiddenSize;
    const G = this.gates * H;
    const wih = this.getParameter(`weight_ih_l${layer}${suffix}`);
    const whh = this.getParameter(`weight_hh_l${layer}${suffix}`);
    const bih = this.param(`bias_ih_l${layer}${suffix}`);
    const bhh = this.param(`bias_hh_l${layer}${suffix}`);
    // every step's input-to-hidden product in one matmul: [B, T, in] → [B, T, G·H]
    const xg = linear(input, wih, bih);
    const zero = (): Tensor => zeros([B, H], { backend: input.backend.name, dtype: input.dtype });
    let h = h0 ?? zero();
    let c = this.cell === 'LSTM' ? (c0 ?? zero()) : null;
    const out: Tensor[] = new Array(T);
    for (let s = 0; s < T; s++) {
      const t = reverse ? T - 1 - s : s;
      const xt = narrow(xg, 1, t, 1).reshape([B, G]);
      const ht = linear(h, whh, bhh); // [B, G·H]
      const gate = (k: number, from: Tensor): Tensor => narrow(from, 1, k * H, H);
      let hNew: Tensor;
      let cNew: Tensor | null = null;
      if (this.cell === 'LSTM') {
        const g = xt.add(ht);
        const i = sigmoid(gate(0, g));
        const f = sigmoid(gate(1, g));
        const cand = tanh(gate(2, g));
        const o = sigmoid(gate(3, g));
        cNew = f.mul(c!).add(i.mul(cand));
        hNew = o.mul(tanh(cNew));
      } else {
        const r = sigmoid(gate(0, xt).add(gate(0, ht)));
        const z = sigmoid(gate(1, xt).add(gate(1, ht)));
        const n = tanh(gate(2, xt).add(r.mul(gate(2, ht))));
        hNew = h.sub(n).mul(z).add(n); // (1 − z)·n + z·h
      }
      if (masks) {
        // past a sequence's end: its state stays, its output is zero
        const m = masks[t]!;
        h = h.add(hNew.sub(h).mul(m));
        if (c && cNew) c = c.add(cNew.sub(c).mul(m));
        out[t] = hNew.mul(m);
      } else {
        h = hNew;
        if (cNew) c = cNew;
        out[t] = hNew;
      }
    }
    return { output: stack(out, 1), h, c };
  }
}

/**
 * A long short-term memory network (as `torch.nn.LSTM`): `forward(x, h0?, c0?, { lengths })` →
 * `{ output, h, c }`, output `[T, B, D·H]` (`[B, T, D·H]` with batchFirst), h and c the final
 * states `[numLayers·D, B, H]` (D = 2 when bidirectional).
 *
 * @example
 * const lstm = new LSTM(32, 64, { numLayers: 2, batchFirst: true, bidirectional: true });
 * const { output, h, c } = lstm.forward(x, null, null, { lengths: [7, 5, 3] }); // x [3, 7, 32] → output [3, 7, 128]
 */
export class LSTM extends RNNBase {
  constructor(inputSize: number, hiddenSize: number, opts: RNNOptions = {}) {
    super('LSTM', inputSize, hiddenSize, opts);
  }

  forward(x: Tensor, h0?: Tensor | null, c0?: Tensor | null, opts?: RNNForwardOptions): { output: Tensor; h: Tensor; c: Tensor } {
    const r = this.run(x, [h0, c0], opts);
    return { output: r.output, h: r.h, c: r.c! };
  }
}

/**
 * A gated recurrent unit network (as `torch.nn.GRU`): `forward(x, h0?, { lengths })` →
 * `{ output, h }`, shapes as {@link LSTM}'s.
 */
export class GRU extends RNNBase {
  constructor(inputSize: number, hiddenSize: number, opts: RNNOptions = {}) {
    super('GRU', inputSize, hiddenSize, opts);
  }

  forward(x: Tensor, h0?: Tensor | null, opts?: RNNForwardOptions): { output: Tensor; h: Tensor } {
    const r = this.run(x, [h0], opts);
    return { output: r.output, h: r.h };
  }
}
