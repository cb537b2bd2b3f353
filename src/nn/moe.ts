/**
 * `MoE`: a mixture-of-experts feed-forward layer (Shazeer et al. 2017; GShard; Switch
 * Transformer): a router picks the top-k of E expert MLPs for each token, each expert runs once
 * on the tokens routed to it (up to its capacity), and their outputs come back weighted by the
 * gates. Everything runs on the device, as ordinary differentiable tensor ops: no value is read
 * back to the host.
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import { keep, tidy } from '../tensor/memory.js';
import { arange, randn, zeros } from '../tensor/ops/creation.js';
import { softmax } from '../tensor/ops/nn.js';
import { argmax } from '../tensor/ops/reduce.js';
import { concat, gather, indexSelect, maskedFill, narrow, oneHot, scatterAdd } from '../tensor/ops/shape_ops.js';
import { asOp, live, relabel } from '../tensor/ops/util.js';
import { where } from '../tensor/ops/elementwise.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkChoice, checkNumber, show } from '../tensor/validate.js';
import { GPT2_INIT_STD, type ParamOptions } from './init.js';
import { Linear } from './linear.js';
import { MLP, type MLPActivation } from './mlp.js';
import { Module, ModuleList } from './module.js';
import { checkConfig, options, PARAM_KEYS, paramOptions, size } from './validate.js';

/** The routing options of a mixture of experts, as a {@link Block} or a GPT config takes them. */
export interface MoEConfig {
  /** Number of experts E (≥ 1). */
  experts: number;
  /** Experts per token k, 1 ≤ k ≤ E (default 1, as Switch; 2 as GShard). */
  topK?: number;
  /**
   * Slots per expert relative to an even split: capacity = ⌈capacityFactor · tokens · k / E⌉
   * (at most the number of tokens). Tokens past an expert's capacity are dropped by it (default
   * 1.25, as Switch).
   */
  capacityFactor?: number;
  /** The capacity factor in eval mode (default: capacityFactor). */
  evalCapacityFactor?: number;
  /**
   * Noisy top-k gating while training (Shazeer et al. 2017): the router logits get
   * N(0, 1)·softplus(x·W_noiseᵀ) added, W_noise a learned projection (child `noise`, initialised
   * to zero as in the paper) (default false).
   */
  noisyGating?: boolean;
  /**
   * Renormalise the gates of the k chosen experts to sum to 1 (GShard, Mixtral; the same as a
   * softmax over the chosen logits); otherwise a gate is the expert's probability under the
   * softmax over all E (Switch). Default: true when topK > 1, false for top-1 (a renormalised
   * top-1 gate is always 1, and the router would learn nothing from the task).
   */
  renormalize?: boolean;
  /** Init std of the router's weight (default 0.02). */
  routerStd?: number;
}

/** The keys of {@link MoEConfig}. */
export const MOE_CONFIG_KEYS = ['experts', 'topK', 'capacityFactor', 'evalCapacityFactor', 'noisyGating', 'renormalize', 'routerStd'] as const;

/** The option names of {@link MoE}. */
export const MOE_KEYS = [...PARAM_KEYS, ...MOE_CONFIG_KEYS, 'hidden', 'bias', 'activation', 'dropout', 'std', 'projStd'] as const;

/** Options of {@link MoE}: the routing, and those of every expert {@link MLP}. */
export interface MoEOptions extends MoEConfig, ParamOptions {
  /** Each expert's hidden width (4·nEmbd by default). */
  hidden?: number;
  /** Biases on the experts' projections (default true; the router has none). */
  bias?: boolean;
  /** The experts' GELU (default `'gelu_tanh'`). */
  activation?: MLPActivation;
  /** Dropout after each expert's output projection (default 0). */
  dropout?: number;
  /** Init std of each expert's `c_fc.weight` (0.02). */
  std?: number;
  /** Init std of each expert's `c_proj.weight` (0.02). */
  projStd?: number;
}

/** A checked {@link MoEConfig} with its defaults filled in. */
export type ResolvedMoEConfig = Required<MoEConfig>;

/**
 * @internal Check a {@link MoEConfig} that may hold only `keys` (`what` prefixes its keys in errors,
 * e.g. `'config.moe.'`) and fill in the defaults. Every error starts with `op`.
 */
export function resolveMoEConfig(op: string, c: MoEConfig, keys: readonly string[] = MOE_CONFIG_KEYS, what = ''): ResolvedMoEConfig {
  if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new Error(`${op}: ${what ? what.slice(0, -1) : 'config'} must be an object with experts, got ${show(c)}`);
  checkConfig(op, c, keys);
  const experts = size(op, `${what}experts`, c.experts);
  const topK = c.topK === undefined ? 1 : size(op, `${what}topK`, c.topK);
  if (topK > experts) throw new Error(`${op}: ${what}topK (${topK}) must be at most the number of experts (${experts})`);
  const factor = (k: 'capacityFactor' | 'evalCapacityFactor', v: unknown): number => checkNumber(op, `${what}${k}`, v, { min: 0, minExclusive: true });
  const capacityFactor = c.capacityFactor === undefined ? 1.25 : factor('capacityFactor', c.capacityFactor);
  const evalCapacityFactor = c.evalCapacityFactor === undefined ? capacityFactor : factor('evalCapacityFactor', c.evalCapacityFactor);
  const noisyGating = c.noisyGating === undefined ? false : checkBoolean(op, `${what}noisyGating`, c.noisyGating);
  const renormalize = c.renormalize === undefined ? topK > 1 : checkBoolean(op, `${what}renormalize`, c.renormalize);
  const routerStd = c.routerStd === undefined ? GPT2_INIT_STD : checkNumber(op, `${what}routerStd`, c.routerStd, { min: 0 });
  return { experts, topK, capacityFactor, evalCapacityFactor, noisyGating, renormalize, routerStd };
}

/** The routing statistics of a {@link MoE}'s last forward, on the device (detached). */
export interface MoEStatsTensors {
  /** Tokens N in the batch. */
  tokens: number;
  /** Slots per expert. */
  capacity: number;
  /** `[E]` f32: assignments (token, expert) the router made to each expert, before capacity. */
  routed: Tensor;
  /** `[E]` f32: those each expert kept (min(routed, capacity)). */
  kept: Tensor;
  /** Scalar: the auxiliary load-balancing loss, detached. */
  auxLoss: Tensor;
}

/** {@link MoEStatsTensors} read to the host by {@link MoE.stats}. */
export interface MoEStats {
  /** Tokens N in the batch. */
  tokens: number;
  /** Assignments made: N·k. */
  assignments: number;
  /** Slots per expert: min(N, ⌈capacityFactor·N·k/E⌉). */
  capacity: number;
  /** Assignments to each expert before capacity (tokens per expert). */
  routed: number[];
  /** Assignments each expert processed. */
  kept: number[];
  /** Assignments dropped for want of capacity (their output from that expert is zero). */
  dropped: number;
  /** dropped / assignments. */
  droppedFraction: number;
  /** The auxiliary load-balancing loss E·Σ f_i·P_i (1 when perfectly balanced). */
  auxLoss: number;
}

// softplus(z) = log(1 + e^z), and z itself past 20 (where they agree in f64 to 2e-9) so that e^z never
// overflows; its gradient at 0 is ½ (a max/abs form would give 0 there, where the zero-initialised
// noise projection starts, and it would never learn)
function softplus(z: Tensor): Tensor {
  return where(z.gt(20), z, z.minimum(20).exp().add(1).log());
}

// Inclusive prefix sums down axis 0 of m [N, E] (f32): Hillis–Steele doubling, ⌈log₂N⌉ shifted adds.
function cumsumRows(m: Tensor): Tensor {
  const [n, e] = m.shape as [number, number];
  let y = m;
  for (let s = 1; s < n; s *= 2) {
    const shifted = concat([zeros([s, e], { backend: m.backend.name, dtype: m.dtype }), narrow(y, 0, 0, n - s)], 0);
    y = y.add(shifted);
  }
  return y;
}

/** Where each (token, choice) goes: computed without gradient, on the device. */
interface Routing {
  /** The chosen expert of each token for choice j: k tensors `[N]` i32. */
  choice: Tensor[];
  /** `[k·N]` i32, choice-major: the slot e·capacity + position, or E·capacity (the bin) when dropped. */
  slot: Tensor;
  /** `[E·capacity]` i32: the token in each slot (0 in an empty slot, whose gate is 0). */
  slotToken: Tensor;
  /** `[E]` f32 assignments per expert before and after capacity. */
  routed: Tensor;
  kept: Tensor;
}

/**
 * Assign tokens to expert slots. Choice j of every token is ranked after all choices < j (GShard's
 * priority: second choices only fill what first choices left), and among one choice by token
 * order (Switch); the position of a token in its expert is the count of assignments ranked before
 * it, so an expert keeps its first `capacity` assignments. The positions are prefix sums over the
 * one-hot choices: no host read.
 */
function route(logits: Tensor, k: number, capacity: number): Routing {
  const [n, e] = logits.shape as [number, number];
  const place = { backend: logits.backend.name, dtype: 'f32' as const };
  return noGrad(() =>
    tidy(() => {
      const choice: Tensor[] = [];
      const slots: Tensor[] = [];
      let masked = logits;
      let before = zeros([1, e], place); // [1, E] assignments ranked before this choice
      for (let j = 0; j < k; j++) {
        const idx = argmax(masked, 1); // [N] i32
        choice.push(idx);
        const hot = oneHot(idx, e, 'bool'); // [N, E]
        if (j + 1 < k) masked = maskedFill(masked, hot, -Infinity);
        const hotF = oneHot(idx, e, 'f32');
        // position among the assignments to that expert: earlier choices, then earlier tokens
        const pos = cumsumRows(hotF).sub(hotF).add(before); // [N, E]
        const tokenPos = pos.mul(hotF).sum(1); // [N]
        const slot = where(tokenPos.lt(capacity), idx.cast('f32').mul(capacity).add(tokenPos), e * capacity);
        slots.push(slot);
        before = before.add(hotF.sum(0, true));
      }
      const slotF = concat(slots, 0); // [k·N] f32 (exact integers)
      const slot = slotF.cast('i32');
      const tokenIds = concat(Array.from({ length: k }, () => arange(0, n, 1, place)), 0);
      // each real slot receives at most one token; the bin (last) collects the dropped ones
      const filled = scatterAdd(zeros([e * capacity + 1], place), 0, slot, tokenIds);
      const slotToken = narrow(filled, 0, 0, e * capacity).cast('i32');
      const routed = before.reshape([e]);
      const kept = routed.minimum(capacity);
      return { choice, slot, slotToken, routed, kept };
    }),
  );
}

/**
 * A mixture-of-experts feed-forward layer: x `[..., C]` → `[..., C]`, a drop-in for {@link MLP}.
 * Children `router` (Linear C → E, no bias), `noise` (with `noisyGating`), `experts` (a
 * ModuleList of E GPT-2 {@link MLP}s, so `experts.3.c_fc.weight`).
 *
 * The forward, over the N = x.size / C tokens:
 * 1. logits = router(x) `[N, E]` (plus N(0,1)·softplus(noise(x)) while training with
 *    `noisyGating`); p = softmax(logits) over all E.
 * 2. Each token picks its k experts with the largest logits (device argmax, k times). Its gate for
 *    a chosen expert is p there, renormalised over the k chosen with `renormalize` (the default
 *    for k > 1).
 * 3. capacity = min(N, ⌈capacityFactor · N · k / E⌉) (`evalCapacityFactor` in eval mode). Each
 *    expert takes its first `capacity` assignments, first choices of all tokens before second
 *    choices, each in token order; the others are dropped: that expert adds nothing for that
 *    token, and the block's residual carries it. {@link stats} counts them.
 * 4. Expert e runs once on its `[capacity, C]` batch, gathered by `indexSelect` (empty slots hold
 *    token 0 with gate 0), and its outputs times the gates are `scatterAdd`-ed back to their
 *    tokens. The batches have a fixed size, as in Switch and GShard, so routing needs no host
 *    read: the whole forward stays on the device and never syncs.
 * 5. {@link lastAuxLoss} = E · Σ_i f_i · P_i (Switch Transformer's load-balancing loss): f_i the
 *    fraction of the N·k assignments made to expert i (before capacity, not differentiable),
 *    P_i the mean of p_i over the tokens. It is 1 when the load is even; add it to the task loss
 *    with a small coefficient (Switch: 0.01).
 *
 * @example
 * const moe = new MoE(64, { experts: 8, topK: 2, capacityFactor: 1.25, generator: new Generator(0) });
 * const loss = tidy(() => {
 *   const y = moe.forward(x); // x: [B, T, 64]
 *   const l = task(y).add(moe.lastAuxLoss!.mul(0.01));
 *   l.backward();
 *   return l;
 * });
 * console.log(await moe.stats()); // tokens per expert, dropped, …
 */
export class MoE extends Module {
  readonly nEmbd: number;
  readonly config: ResolvedMoEConfig;
  readonly router: Linear;
  /** The noise projection of noisy gating, or null. */
  readonly noise: Linear | null;
  readonly experts: ModuleList<MLP>;
  private readonly generator: Generator;
  /**
   * The auxiliary load-balancing loss of the last forward (a scalar, differentiable w.r.t. the
   * router), or null before the first. It belongs to that forward's tidy scope, like its output:
   * use it there. {@link stats} keeps its value.
   */
  lastAuxLoss: Tensor | null = null;
  /** The routing statistics of the last forward, on the device (kept until the next forward), or null. */
  lastStats: MoEStatsTensors | null = null;

  constructor(nEmbd: number, opts: MoEOptions) {
    super();
    const op = 'MoE';
    size(op, 'nEmbd', nEmbd);
    if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: options must be an object with experts, got ${show(opts)}`);
    const o = options(op, opts, MOE_KEYS);
    const place = paramOptions(op, o);
    const c = (this.config = resolveMoEConfig(op, o as MoEConfig, MOE_KEYS));
    const hidden = o.hidden === undefined ? undefined : size(op, 'hidden', o.hidden);
    const bias = o.bias === undefined ? undefined : checkBoolean(op, 'bias', o.bias);
    const activation = o.activation === undefined ? undefined : checkChoice(op, 'activation', o.activation, ['gelu', 'gelu_tanh'] as const);
    const dropout = o.dropout === undefined ? undefined : checkNumber(op, 'dropout', o.dropout, { min: 0, max: 1 });
    const std = o.std === undefined ? undefined : checkNumber(op, 'std', o.std, { min: 0 });
    const projStd = o.projStd === undefined ? undefined : checkNumber(op, 'projStd', o.projStd, { min: 0 });
    this.nEmbd = nEmbd;
    this.generator = place.generator ?? defaultGenerator;
    const expert = {
      ...place,
      ...(hidden !== undefined ? { hidden } : {}),
      ...(bias !== undefined ? { bias } : {}),
      ...(activation !== undefined ? { activation } : {}),
      ...(dropout !== undefined ? { dropout } : {}),
      ...(std !== undefined ? { std } : {}),
      ...(projStd !== undefined ? { projStd } : {}),
    };
    // every option is checked: only an allocation can fail below
    try {
      this.router = this.registerModule('router', new Linear(nEmbd, c.experts, { ...place, bias: false, std: c.routerStd }));
      this.noise = c.noisyGating ? this.registerModule('noise', new Linear(nEmbd, c.experts, { ...place, bias: false, std: 0 })) : null;
      const list: MLP[] = [];
      for (let i = 0; i < c.experts; i++) list.push(new MLP(nEmbd, expert));
      this.experts = this.registerModule('experts', new ModuleList(list));
    } catch (e) {
      this.dispose();
      throw relabel(op, e);
    }
  }

  /** The slots per expert for `tokens` tokens in the current mode: min(N, ⌈factor · N · k / E⌉). */
  capacity(tokens: number): number {
    checkNumber('MoE.capacity', 'tokens', tokens, { integer: true, min: 0 });
    const c = this.config;
    const factor = this.training ? c.capacityFactor : c.evalCapacityFactor;
    return Math.min(tokens, Math.ceil((factor * tokens * c.topK) / c.experts));
  }

  /**
   * x `[..., C]` → `[..., C]`. Sets {@link lastAuxLoss} and {@link lastStats}. No host read:
   * routing, capacity and the counts are device ops.
   */
  forward(x: Tensor): Tensor {
    const op = 'MoE.forward';
    live(op, x);
    const C = this.nEmbd;
    if (x.rank < 1 || x.shape[x.rank - 1] !== C) throw new Error(`${op}: x must be [..., ${C}], got [${x.shape.join(', ')}] ${x.dtype}`);
    const c = this.config;
    const E = c.experts;
    const k = c.topK;
    const n = x.size / C;
    const capacity = this.capacity(n);
    return asOp(op, () => {
      const x2 = x.reshape([n, C]);
      let logits = this.router.forward(x2); // [N, E]
      if (this.noise && this.training) {
        const std = softplus(this.noise.forward(x2));
        const z = randn([n, E], { backend: x.backend.name, dtype: logits.dtype, generator: this.generator });
        logits = logits.add(z.mul(std));
      }
      if (n === 0) {
        this.record(logits.sum(), 0, capacity, null, null);
        return x.mul(0);
      }
      const probs = softmax(logits, -1); // [N, E]
      const r = route(logits.detach(), k, capacity);
      // gates [N] per choice, differentiable w.r.t. the router through probs
      let gates = r.choice.map((idx) => gather(probs, 1, idx.reshape([n, 1])).reshape([n]));
      if (c.renormalize && k > 1) {
        const total = gates.reduce((a, g) => a.add(g));
        gates = gates.map((g) => g.div(total));
      }
      // each slot's gate (0 in empty slots; the bin collects the dropped ones)
      const slotGate = narrow(scatterAdd(zeros([E * capacity + 1], { backend: x.backend.name, dtype: probs.dtype }), 0, r.slot, concat(gates, 0)), 0, 0, E * capacity);
      const outs: Tensor[] = [];
      for (let e = 0; e < E; e++) {
        const tokens = narrow(r.slotToken, 0, e * capacity, capacity); // [cap] i32
        const y = this.experts.at(e).forward(indexSelect(x2, 0, tokens)); // [cap, C]
        outs.push(y.mul(narrow(slotGate, 0, e * capacity, capacity).reshape([capacity, 1])));
      }
      const index = r.slotToken.reshape([E * capacity, 1]).expand([E * capacity, C]);
      const out = scatterAdd(zeros([n, C], { backend: x.backend.name, dtype: x.dtype }), 0, index, concat(outs, 0)); // [N, C]
      // Switch: E · Σ_i f_i · P_i, f_i from the assignments (no gradient), P_i the mean probability
      const f = r.routed.div(n * k).cast(probs.dtype);
      const aux = f.mul(probs.mean(0)).sum().mul(E);
      this.record(aux, n, capacity, r.routed, r.kept);
      return out.reshape(x.shape);
    });
  }

  // keep the last forward's statistics (replacing the previous ones); aux stays in the forward's scope
  private record(aux: Tensor, tokens: number, capacity: number, routed: Tensor | null, kept: Tensor | null): void {
    const place = { backend: aux.backend.name, dtype: 'f32' as const };
    const E = this.config.experts;
    const stats = noGrad(() => ({
      tokens,
      capacity,
      routed: keep(routed ?? zeros([E], place)),
      kept: keep(kept ?? zeros([E], place)),
      auxLoss: keep(aux.detach().cast('f32')),
    }));
    this.disposeStats();
    this.lastStats = stats;
    this.lastAuxLoss = aux;
  }

  private disposeStats(): void {
    const s = this.lastStats;
    if (!s) return;
    s.routed.dispose();
    s.kept.dispose();
    s.auxLoss.dispose();
    this.lastStats = null;
  }

  /**
   * The last forward's routing statistics, read from the device: tokens per expert before and
   * after capacity, dropped assignments, the aux loss. Throws before the first forward.
   */
  async stats(): Promise<MoEStats> {
    const s = this.lastStats;
    if (!s) throw new Error('MoE.stats: no forward has run yet');
    const [routed, kept, aux] = await Promise.all([s.routed.data(), s.kept.data(), s.auxLoss.data()]);
    const assignments = s.tokens * this.config.topK;
    const keptN = Array.from(kept, Number);
    const dropped = assignments - keptN.reduce((a, b) => a + b, 0);
    return {
      tokens: s.tokens,
      assignments,
      capacity: s.capacity,
      routed: Array.from(routed, Number),
      kept: keptN,
      dropped,
      droppedFraction: assignments ? dropped / assignments : 0,
      auxLoss: Number(aux[0]),
    };
  }

  /** Dispose the parameters and the kept statistics. */
  override dispose(): void {
    this.disposeStats();
    super.dispose();
  }
}
