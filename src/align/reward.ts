/**
 * A reward model: a GPT body with a scalar head, scoring a sequence by the head's value at its
 * last token (as TRL's and OpenAI's reward models), trained on ranked pairs with the
 * Bradley–Terry loss ({@link bradleyTerryLoss}).
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import { tensor } from '../tensor/ops/creation.js';
import { tidy } from '../tensor/memory.js';
import { fmt } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { asOp, fail, live, relabel } from '../tensor/ops/util.js';
import { show } from '../tensor/validate.js';
import { GPT, GPTTransformer, type GPTConfig } from '../nn/gpt.js';
import type { ParamOptions } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';

/**
 * A GPT body (`transformer`) and a head `score` `[1, C]` (no bias): idx `[B, T]` with each row's
 * length → rewards `[B]`, the head at the row's last token (padding after it is never read; the
 * model is causal, so right-padding changes nothing before it).
 */
export class RewardModel extends Module {
  readonly config: Required<GPTConfig>;
  readonly transformer: GPTTransformer;
  readonly score: Linear;

  constructor(config: GPTConfig, opts: ParamOptions = {}) {
    super();
    try {
      this.transformer = this.registerModule('transformer', new GPTTransformer(config, opts));
      this.config = this.transformer.config;
      this.score = this.registerModule('score', new Linear(this.config.nEmbd, 1, { ...opts, bias: false, std: 1 / Math.sqrt(this.config.nEmbd + 1) }));
    } catch (e) {
      this.dispose();
      throw relabel('RewardModel', e);
    }
  }

  /** A reward model whose body starts as a copy of `gpt`'s (its weights are copied, not shared). */
  static fromGPT(gpt: GPT, opts: Omit<ParamOptions, 'dtype' | 'backend'> = {}): RewardModel {
    if (!(gpt instanceof GPT)) throw new Error(`RewardModel.fromGPT: expected a GPT, got ${show(gpt)}`);
    const p = gpt.parameters()[0]!;
    const rm = new RewardModel(gpt.config, { ...opts, dtype: p.dtype, backend: p.backend.name });
    rm.transformer.loadStateDict(gpt.transformer.stateDict());
    return rm;
  }

  /** idx `[B, T]` i32 and the rows' lengths (1 … T each) → rewards `[B]`. */
  forward(idx: Tensor, lengths: readonly number[]): Tensor {
    const op = 'RewardModel.forward';
    live(op, idx);
    if (idx.dtype !== 'i32' || idx.rank !== 2) fail(op, `idx must be [B, T] i32 token ids, got ${fmt(idx.shape)} ${idx.dtype}`);
    const [B, T] = idx.shape as [number, number];
    if (!Array.isArray(lengths) || lengths.length !== B || lengths.some((l) => !Number.isInteger(l) || l < 1 || l > T))
      fail(op, `lengths must be ${B} integers in [1, ${T}], got ${JSON.stringify(lengths)}`);
    return asOp(op, () => {
      const h = this.transformer.forward(idx); // [B, T, C]
      const C = this.config.nEmbd;
      const at = tensor(
        lengths.flatMap((l) => new Array<number>(C).fill(l - 1)),
        [B, 1, C],
        { dtype: 'i32', backend: idx.backend.name },
      );
      const last = h.gather(1, at).squeeze(1); // [B, C]
      return this.score.forward(last).squeeze(-1);
    });
  }
}

/** The fraction of pairs whose chosen response scores above the rejected one, under `noGrad`. */
export async function pairAccuracy(model: RewardModel, chosen: { idx: Tensor; lengths: number[] }, rejected: { idx: Tensor; lengths: number[] }): Promise<number> {
  const op = 'pairAccuracy';
  if (!(model instanceof RewardModel)) throw new Error(`${op}: model must be a RewardModel, got ${show(model)}`);
  for (const [name, b] of [['chosen', chosen], ['rejected', rejected]] as const)
    if (b === null || typeof b !== 'object' || !Array.isArray((b as { lengths?: unknown }).lengths)) throw new Error(`${op}: ${name} must be a batch { idx, lengths } (batchExamples), got ${show(b)}`);
  const diff = tidy(() => noGrad(() => model.forward(chosen.idx, chosen.lengths).sub(model.forward(rejected.idx, rejected.lengths))));
  const d = await diff.data();
  diff.dispose();
  let wins = 0;
  for (const v of d) if (v > 0) wins++;
  return d.length ? wins / d.length : 0;
}
