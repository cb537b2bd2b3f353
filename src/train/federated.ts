/**
 * Federated averaging (FedAvg, McMahan et al. 2017, "Communication-Efficient Learning of Deep
 * Networks from Decentralized Data") over simulated clients in one process: each round a seeded
 * sample of the clients starts from the global weights, trains locally, and the server sets the
 * global weights to the mean of theirs weighted by each client's sample count,
 * w ← Σₖ (nₖ / n) wₖ. {@link averageStates} is that weighted mean of state dicts;
 * {@link splitNonIID} deals documents to clients by a Dirichlet(α) over each label's share
 * (Hsu et al. 2019), from IID (α = ∞) to one label per client (α → 0); {@link federatedGap}
 * compares a federated run with centralised training on the union for the same number of steps.
 *
 * In memory and browser-safe (the core): clients are token streams (`TokenDataset`s or arrays of
 * ids), and the clients share one model object, whose weights are swapped in and out.
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import { isFloat } from '../backend/dtype.js';
import { keep, tidy } from '../tensor/memory.js';
import { add, cast, clone, mul } from '../tensor/ops/elementwise.js';
import { Generator } from '../tensor/random.js';
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { checkChoice, checkKeys, checkNumber, optionalNumber, show } from '../tensor/validate.js';
import {
  backendOf,
  checkModel,
  checkOptimizer,
  drawBatch,
  runSteps,
  scoreStream,
  sourceOf,
  validStarts,
  type LearnerModel,
  type LearnerOptimizer,
  type TokenInput,
  type TokenSource,
} from './continual.js';

/** What federated training needs of a model: a {@link LearnerModel} whose weights can be read and set. */
export interface FederatedModel extends LearnerModel {
  stateDict(): Record<string, Tensor>;
  loadStateDict(state: Record<string, Tensor>): unknown;
}

// ---- the weighted mean of states ---------------------------------------------------------------

/**
 * @internal Σ wᵢ · stateᵢ, entry by entry, added one state at a time (so a round, or a list of
 * checkpoints, holds one sum, not every state), in f32 (f64 for f64 entries) on the device;
 * integer entries are the first state's. `first` names the first state in errors
 * ('the first state', 'the first checkpoint'). Shared by {@link averageStates}, FedAvg's server
 * and checkpoint averaging (`average.ts`).
 */
export class WeightedSum {
  private readonly sums = new Map<string, { t: Tensor; dtype: Tensor['dtype']; shape: readonly number[] }>();
  private count = 0;

  constructor(private readonly first = 'the first state') {}

  /** Add w · state; an error starts with `where: ` when given. */
  add(state: Record<string, Tensor>, w: number, where?: string): void {
    const fail = (problem: string): Error => new Error(where ? `${where}: ${problem}` : problem);
    const names = Object.keys(state);
    for (const name of names) {
      const t = state[name];
      if (!(t instanceof Tensor)) throw fail(`entry '${name}' is not a Tensor, got ${show(t)}`);
      if (t.disposed) throw fail(`entry '${name}' was disposed`);
    }
    if (this.count === 0) {
      if (names.length === 0) throw fail('it has no entries');
      for (const name of names) {
        const t = state[name]!;
        const s = keep(noGrad(() => tidy(() => (isFloat(t.dtype) ? mul(cast(t, t.dtype === 'f64' ? 'f64' : 'f32'), w) : clone(t)))));
        this.sums.set(name, { t: s, dtype: t.dtype, shape: [...t.shape] });
      }
    } else {
      const missing = [...this.sums.keys()].filter((n) => !(n in state));
      const extra = names.filter((n) => !this.sums.has(n));
      if (missing.length || extra.length)
        throw fail(`its entries differ from ${this.first}'s (${[missing.length ? `missing ${missing.join(', ')}` : '', extra.length ? `extra ${extra.join(', ')}` : ''].filter(Boolean).join('; ')})`);
      for (const name of names) {
        const t = state[name]!;
        const s = this.sums.get(name)!;
        if (t.rank !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i]) || t.dtype !== s.dtype)
          throw fail(`'${name}' is ${fmt(t.shape)} ${t.dtype}, in ${this.first} ${fmt(s.shape)} ${s.dtype}`);
      }
      for (const name of names) {
        const t = state[name]!;
        const s = this.sums.get(name)!;
        if (!isFloat(t.dtype)) continue;
        const next = keep(noGrad(() => tidy(() => add(s.t, mul(cast(t, s.t.dtype), w)))));
        s.t.dispose();
        s.t = next;
      }
    }
    this.count++;
  }

  /** The sums cast back to each entry's dtype: new tensors the caller owns. */
  result(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [name, s] of this.sums) {
      out[name] = s.t.dtype === s.dtype ? s.t : keep(noGrad(() => cast(s.t, s.dtype)));
      if (out[name] !== s.t) s.t.dispose();
    }
    this.sums.clear();
    return out;
  }

  dispose(): void {
    for (const s of this.sums.values()) s.t.dispose();
    this.sums.clear();
  }
}

/** @internal Weights ≥ 0, not all 0, one per item (`items` names them in errors), normalised to sum to 1 (equal when omitted). */
export function normalisedWeights(op: string, name: string, weights: unknown, n: number, items = 'states'): number[] {
  if (weights === undefined) return Array.from({ length: n }, () => 1 / n);
  if (!Array.isArray(weights)) throw new Error(`${op}: ${name} must be an array of ${n} numbers ≥ 0, got ${show(weights)}`);
  if (weights.length !== n) throw new Error(`${op}: ${name} has ${weights.length} entries for ${n} ${items}`);
  weights.forEach((w, i) => checkNumber(op, `${name}[${i}]`, w, { min: 0 }));
  const total = (weights as number[]).reduce((a, b) => a + b, 0);
  if (!(total > 0) || !Number.isFinite(total)) throw new Error(`${op}: ${name} must not all be 0, got ${show(weights)}`);
  return (weights as number[]).map((w) => w / total);
}

/**
 * The weighted mean of state dicts (the element-wise Σ (wᵢ / Σw) · stateᵢ, as FedAvg's server and
 * checkpoint averaging compute it), with the sums in f32 (f64 for f64 entries) cast back to each
 * entry's dtype; integer entries are taken from the first state. Every state must have the same
 * names, shapes and dtypes. The result's tensors are new; the caller disposes them.
 *
 * @example
 * const mean = averageStates([a.stateDict(), b.stateDict()], [300, 100]); // ¾·a + ¼·b
 * model.loadStateDict(mean);
 */
export function averageStates(states: readonly Record<string, Tensor>[], weights?: readonly number[]): Record<string, Tensor> {
  const op = 'averageStates';
  if (!Array.isArray(states) || states.length === 0) throw new Error(`${op}: states must be a non-empty array of state dicts, got ${show(states)}`);
  states.forEach((s, i) => {
    if (s === null || typeof s !== 'object' || Array.isArray(s) || s instanceof Tensor) throw new Error(`${op}: states[${i}] must be a state dict (names to tensors), got ${show(s)}`);
  });
  const w = normalisedWeights(op, 'weights', weights, states.length);
  const sum = new WeightedSum();
  try {
    states.forEach((s, i) => sum.add(s, w[i]!, `${op}: states[${i}]`));
    return sum.result();
  } finally {
    sum.dispose();
  }
}

// ---- non-IID splits ----------------------------------------------------------------------------

/** Options of {@link splitNonIID}. */
export interface SplitNonIIDOptions<T> {
  /** How many clients K. */
  clients: number;
  /**
   * The concentration α of the Dirichlet each label's share is drawn from: small (0.1) puts each
   * label on few clients, large (100) spreads it nearly evenly; Infinity deals it evenly (IID).
   */
  alpha: number;
  /** A document's label (its source, class, language); all documents share one label by default (only the clients' sizes then vary). */
  key?: (doc: T, index: number) => string | number;
  /** Seed of the shuffles and the Dirichlet draws; 0 by default. */
  seed?: number;
  /** Every client gets at least this many documents (the draw is repeated, up to 100 times, until they do); 1 by default. */
  minDocs?: number;
}

/**
 * Deal documents to `clients` clients, non-IID by label (Hsu et al. 2019): for each label, its
 * documents (shuffled) are split in the proportions p ~ Dirichlet(α, …, α) over the clients
 * (rounded by largest remainder). α = Infinity deals every label evenly at random: the IID split.
 * Returns each client's documents, in the order dealt. Deterministic for a seed.
 *
 * @example
 * const parts = splitNonIID(docs, { clients: 8, alpha: 0.3, key: (d) => d.source, seed: 1 });
 * const clients = parts.map((ds) => tokenSource(ds.flatMap((d) => tok.encode(d.text))));
 */
export function splitNonIID<T>(docs: readonly T[], opts: SplitNonIIDOptions<T>): T[][] {
  const op = 'splitNonIID';
  if (!Array.isArray(docs)) throw new Error(`${op}: docs must be an array of documents, got ${show(docs)}`);
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: expected options { clients, alpha, key?, seed?, minDocs? }, got ${show(opts)}`);
  checkKeys(op, opts, ['clients', 'alpha', 'key', 'seed', 'minDocs']);
  const K = checkNumber(op, 'clients', opts.clients, { integer: true, min: 1 });
  const alpha = checkNumber(op, 'alpha', opts.alpha, { min: 0, minExclusive: true, infinity: true });
  if (opts.key !== undefined && typeof opts.key !== 'function') throw new Error(`${op}: key must be a function (doc, index) => label, got ${show(opts.key)}`);
  const seed = optionalNumber(op, 'seed', opts.seed, 0, { integer: true, min: 0 });
  const minDocs = optionalNumber(op, 'minDocs', opts.minDocs, 1, { integer: true, min: 0 });
  if (K * minDocs > docs.length) throw new Error(`${op}: ${docs.length} documents cannot give each of ${K} clients ${minDocs} (minDocs)`);
  const byLabel = new Map<string | number, number[]>();
  docs.forEach((d, i) => {
    const label = opts.key ? opts.key(d, i) : 0;
    if (typeof label !== 'string' && (typeof label !== 'number' || !Number.isFinite(label))) throw new Error(`${op}: key returned ${show(label)} for docs[${i}]; a label is a string or a finite number`);
    const list = byLabel.get(label);
    if (list) list.push(i);
    else byLabel.set(label, [i]);
  });
  const g = new Generator(seed);
  for (let attempt = 0; attempt < 100; attempt++) {
    const parts: number[][] = Array.from({ length: K }, () => []);
    for (const indices of byLabel.values()) {
      const order = shuffled(indices, g);
      const p = alpha === Infinity ? Array.from({ length: K }, () => 1 / K) : dirichlet(alpha, K, g);
      // with equal shares the remainders tie: a random rotation decides who gets the extra ones
      const counts = largestRemainder(p, order.length, alpha === Infinity ? Math.floor(g.draw(1, { kind: 'uniform', low: 0, high: K })[0]!) % K : 0);
      let at = 0;
      counts.forEach((c, k) => {
        parts[k]!.push(...order.slice(at, at + c));
        at += c;
      });
    }
    if (parts.every((p) => p.length >= minDocs)) return parts.map((p) => p.map((i) => docs[i]!));
  }
  throw new Error(`${op}: no draw of 100 gave each of ${K} clients ${minDocs} document(s) (minDocs) at alpha ${alpha}; raise alpha, lower minDocs, or use fewer clients`);
}

/** A seeded Fisher–Yates shuffle of a copy. */
function shuffled(xs: readonly number[], g: Generator): number[] {
  const out = [...xs];
  const u = g.draw(out.length, { kind: 'uniform', low: 0, high: 1 });
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.min(i, Math.floor(u[i]! * (i + 1)));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** n items split by shares p: ⌊n·pₖ⌋ each, the rest one by one to the largest remainders (ties from client `rotate` on). */
function largestRemainder(p: number[], n: number, rotate: number): number[] {
  const K = p.length;
  const counts = p.map((x) => Math.floor(n * x));
  let left = n - counts.reduce((a, b) => a + b, 0);
  const order = p.map((x, k) => ({ k, r: n * x - Math.floor(n * x), tie: (k - rotate + K) % K })).sort((a, b) => b.r - a.r || a.tie - b.tie);
  for (let i = 0; left > 0; i = (i + 1) % K, left--) counts[order[i]!.k]!++;
  return counts;
}

/** Dirichlet(α, …, α) over K: normalised Gamma(α, 1) draws (Marsaglia and Tsang 2000; α < 1 by Gamma(α+1)·U^(1/α)). */
function dirichlet(alpha: number, K: number, g: Generator): number[] {
  const x = Array.from({ length: K }, () => gamma(alpha, g));
  const total = x.reduce((a, b) => a + b, 0);
  if (!(total > 0)) {
    // every draw underflowed (a tiny α): the whole share goes to one client, as it does in the limit
    const k = Math.min(K - 1, Math.floor(g.draw(1, { kind: 'uniform', low: 0, high: K })[0]!));
    return x.map((_, i) => (i === k ? 1 : 0));
  }
  return x.map((v) => v / total);
}

function gamma(alpha: number, g: Generator): number {
  const unit = (): number => {
    const u = g.draw(1, { kind: 'uniform', low: 0, high: 1 })[0]!;
    return u > 0 ? u : Number.MIN_VALUE;
  };
  if (alpha < 1) return gamma(alpha + 1, g) * Math.pow(unit(), 1 / alpha);
  const d = alpha - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const z = g.draw(1, { kind: 'normal', mean: 0, std: 1 })[0]!;
    const v = (1 + c * z) ** 3;
    if (v <= 0) continue;
    if (Math.log(unit()) < 0.5 * z * z + d - d * v + d * Math.log(v)) return d * v;
  }
}

// ---- federated averaging -----------------------------------------------------------------------

/** Options of {@link federatedAverage}. */
export interface FederatedOptions {
  /** The global model, trained in place; every client trains it in turn from the global weights. */
  model: FederatedModel;
  /** Each client's token stream (at least blockSize + 1 tokens each). */
  clients: readonly TokenInput[];
  /** Communication rounds. */
  rounds: number;
  /** Optimizer steps per client per round (give this or `localEpochs`). */
  localSteps?: number;
  /**
   * Local passes over each client's data per round (McMahan's E): a client of nₖ tokens takes
   * max(1, round(E · (nₖ − 1) / (batchSize · blockSize))) steps. Give this or `localSteps`.
   */
  localEpochs?: number;
  /** The share C of clients sampled each round (at least one): max(1, round(C·K)), without replacement; 1 by default. */
  clientFraction?: number;
  /** 'samples' (default): each client's weights count by its tokens nₖ (FedAvg); 'uniform': equally. */
  weighting?: 'samples' | 'uniform';
  /** A fresh optimizer over the model for each client's local training (local state does not carry over rounds). */
  optimizer: (model: FederatedModel) => LearnerOptimizer;
  /** Sequences per local batch. */
  batchSize: number;
  /** Tokens per sequence. */
  blockSize: number;
  /** Seed of the client sampling and the batches; 0 by default. */
  seed?: number;
  /** Clip each local step's gradient norm to this; off when 0 or omitted. */
  clip?: number;
  /** A validation stream scored after every round (its loss in each round's record). */
  val?: TokenInput;
  /** Validation windows scored (spread evenly), all by default. */
  evalWindows?: number;
  /** Backend of the batch tensors; the backend of the model's first parameter by default. */
  backend?: string;
}

/** One round of {@link federatedAverage}. */
export interface FederatedRound {
  round: number;
  /** The clients sampled (indices into `clients`), ascending. */
  clients: number[];
  /** Their weights in the average (summing to 1). */
  weights: number[];
  /** Local steps taken, summed over the sampled clients. */
  steps: number;
  /** Mean local training loss over the sampled clients (weighted as the average). */
  trainLoss: number;
  /** The global model's validation loss after the round, or null without `val`. */
  valLoss: number | null;
}

/** What {@link federatedAverage} returns. */
export interface FederatedResult {
  rounds: FederatedRound[];
  /** Local steps over the whole run (every client, every round). */
  steps: number;
  /** The last round's validation loss and perplexity, or null. */
  valLoss: number | null;
  perplexity: number | null;
}

const FEDERATED_KEYS = [
  'model', 'clients', 'rounds', 'localSteps', 'localEpochs', 'clientFraction', 'weighting', 'optimizer', 'batchSize', 'blockSize', 'seed', 'clip', 'val', 'evalWindows', 'backend',
] as const;

interface FederatedPlan {
  model: FederatedModel;
  clients: TokenSource[];
  rounds: number;
  stepsOf: (k: number) => number;
  sampled: number;
  weighting: 'samples' | 'uniform';
  optimizer: (model: FederatedModel) => LearnerOptimizer;
  batchSize: number;
  blockSize: number;
  seed: number;
  clip: number;
  val: TokenSource | null;
  evalWindows: number;
  backend: string;
}

function checkFederated(op: string, opts: FederatedOptions, keys: readonly string[]): FederatedPlan {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: expected an options object, got ${show(opts)}`);
  checkKeys(op, opts, keys);
  const model = opts.model;
  checkModel(op, model);
  if (typeof model.stateDict !== 'function' || typeof model.loadStateDict !== 'function') throw new Error(`${op}: model must have stateDict() and loadStateDict(state), got ${show(model)}`);
  if (!Array.isArray(opts.clients) || opts.clients.length === 0) throw new Error(`${op}: clients must be a non-empty array of token streams, got ${show(opts.clients)}`);
  const clients = opts.clients.map((c, k) => sourceOf(op, `clients[${k}]`, c));
  const rounds = checkNumber(op, 'rounds', opts.rounds, { integer: true, min: 0 });
  const batchSize = checkNumber(op, 'batchSize', opts.batchSize, { integer: true, min: 1 });
  const blockSize = checkNumber(op, 'blockSize', opts.blockSize, { integer: true, min: 1 });
  clients.forEach((c, k) => {
    if (c.length < blockSize + 1) throw new Error(`${op}: clients[${k}] has ${c.length} tokens, fewer than blockSize + 1 = ${blockSize + 1}`);
  });
  if ((opts.localSteps === undefined) === (opts.localEpochs === undefined))
    throw new Error(`${op}: give exactly one of localSteps and localEpochs, got localSteps ${show(opts.localSteps)} and localEpochs ${show(opts.localEpochs)}`);
  let stepsOf: (k: number) => number;
  if (opts.localSteps !== undefined) {
    const n = checkNumber(op, 'localSteps', opts.localSteps, { integer: true, min: 1 });
    stepsOf = () => n;
  } else {
    const e = checkNumber(op, 'localEpochs', opts.localEpochs, { min: 0, minExclusive: true });
    stepsOf = (k) => Math.max(1, Math.round((e * (clients[k]!.length - 1)) / (batchSize * blockSize)));
  }
  const fraction = optionalNumber(op, 'clientFraction', opts.clientFraction, 1, { min: 0, max: 1, minExclusive: true });
  const weighting = opts.weighting === undefined ? 'samples' : checkChoice(op, 'weighting', opts.weighting, ['samples', 'uniform'] as const);
  if (typeof opts.optimizer !== 'function') throw new Error(`${op}: optimizer must be a function (model) => optimizer, got ${show(opts.optimizer)}`);
  const seed = optionalNumber(op, 'seed', opts.seed, 0, { integer: true, min: 0 });
  const clip = optionalNumber(op, 'clip', opts.clip, 0, { min: 0 });
  const val = opts.val === undefined ? null : sourceOf(op, 'val', opts.val);
  const evalWindows = optionalNumber(op, 'evalWindows', opts.evalWindows, Infinity, { integer: true, min: 1, infinity: true });
  const backend = backendOf(op, model, opts.backend);
  if (val && val.length < blockSize + 1) throw new Error(`${op}: val has ${val.length} tokens, fewer than blockSize + 1 = ${blockSize + 1}`);
  return {
    model, clients, rounds, stepsOf, sampled: Math.max(1, Math.round(fraction * clients.length)), weighting, optimizer: opts.optimizer,
    batchSize, blockSize, seed, clip, val, evalWindows, backend,
  };
}

/** Copies of a model's state (a tensor tied under several names is copied once). */
function snapshot(model: FederatedModel): Record<string, Tensor> {
  const copies = new Map<Tensor, Tensor>();
  const out: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(model.stateDict())) {
    let c = copies.get(t);
    if (!c) copies.set(t, (c = keep(noGrad(() => clone(t)))));
    out[name] = c;
  }
  return out;
}

function disposeState(state: Record<string, Tensor>): void {
  for (const t of new Set(Object.values(state))) t.dispose();
}

function fresh(op: string, plan: FederatedPlan): LearnerOptimizer {
  const o = plan.optimizer(plan.model);
  checkOptimizer(op, 'optimizer(model)', o);
  return o;
}

/** A seeded sample of m of K clients without replacement (a partial Fisher–Yates), ascending. */
function sampleClients(K: number, m: number, g: Generator): number[] {
  const all = Array.from({ length: K }, (_, k) => k);
  if (m >= K) return all;
  const u = g.draw(m, { kind: 'uniform', low: 0, high: 1 });
  for (let i = 0; i < m; i++) {
    const j = Math.min(K - 1, i + Math.floor(u[i]! * (K - i)));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all.slice(0, m).sort((a, b) => a - b);
}

async function runFederated(op: string, plan: FederatedPlan): Promise<FederatedResult> {
  const { model, clients, blockSize, batchSize, backend } = plan;
  const g = new Generator(plan.seed);
  const records: FederatedRound[] = [];
  let total = 0;
  for (let round = 1; round <= plan.rounds; round++) {
    const chosen = sampleClients(clients.length, plan.sampled, g);
    const weights = normalisedWeights(op, 'weights', chosen.map((k) => (plan.weighting === 'samples' ? clients[k]!.length : 1)), chosen.length);
    const global = snapshot(model);
    const sum = new WeightedSum();
    let steps = 0;
    let trainLoss = 0;
    try {
      for (let i = 0; i < chosen.length; i++) {
        const k = chosen[i]!;
        if (i > 0) model.loadStateDict(global); // every client starts from the global weights
        const n = plan.stepsOf(k);
        const next = (): ReturnType<typeof drawBatch> => drawBatch([clients[k]!], batchSize, blockSize, g);
        const loss = await runSteps(`${op}: round ${round}, client ${k}`, model, fresh(op, plan), next, n, blockSize, plan.clip, backend);
        trainLoss += weights[i]! * loss;
        steps += n;
        sum.add(model.stateDict(), weights[i]!, `${op}: client ${k}'s weights`);
      }
      const mean = sum.result();
      try {
        model.loadStateDict(mean);
      } finally {
        disposeState(mean);
      }
    } finally {
      sum.dispose();
      disposeState(global);
    }
    total += steps;
    const valLoss = plan.val ? (await scoreStream(`${op}: val`, model, plan.val, blockSize, batchSize, plan.evalWindows, backend)).loss : null;
    records.push({ round, clients: chosen, weights, steps, trainLoss, valLoss });
  }
  const last = records.length ? records[records.length - 1]!.valLoss : null;
  return { rounds: records, steps: total, valLoss: last, perplexity: last === null ? null : Math.exp(last) };
}

/**
 * Federated averaging: `rounds` rounds in which a seeded sample of ⌈C·K⌉ clients each train the
 * global weights locally (`localSteps` steps, or `localEpochs` passes, with a fresh optimizer
 * from `optimizer(model)`), and the global weights become their mean weighted by the clients'
 * token counts (FedAvg's nₖ / n). The model ends with the global weights.
 *
 * @example
 * const r = await federatedAverage({
 *   model, clients, rounds: 20, localSteps: 5, clientFraction: 0.5,
 *   optimizer: (m) => new SGD(m.parameters(), { lr: 0.1 }),
 *   batchSize: 8, blockSize: 32, seed: 1, val,
 * });
 * r.rounds.map((x) => x.valLoss);
 */
export async function federatedAverage(opts: FederatedOptions): Promise<FederatedResult> {
  const op = 'federatedAverage';
  return runFederated(op, checkFederated(op, opts, FEDERATED_KEYS));
}

/** What {@link federatedGap} returns. */
export interface FederatedGap {
  /** The validation loss of the federated model and of the centralised one (nats), and federated − centralised. */
  federatedLoss: number;
  centralisedLoss: number;
  gap: number;
  /** The federated run's record. */
  federated: FederatedResult;
  /** The centralised run's steps (the federated run's total local steps) and its mean training loss. */
  centralisedSteps: number;
  centralisedTrainLoss: number;
}

/**
 * The cost of federation: from the model's current weights, run {@link federatedAverage}, then
 * (from the same starting weights) centralised training on the union of the clients for the
 * same total number of steps (every local step of every client; batches drawn uniformly over all
 * the clients' windows, one fresh optimizer from `optimizer(model)`), and score both on `val`.
 * The model ends with the federated weights.
 *
 * @example
 * const { federatedLoss, centralisedLoss, gap } = await federatedGap({ ...fedOptions, val });
 */
export async function federatedGap(opts: FederatedOptions & { val: TokenInput }): Promise<FederatedGap> {
  const op = 'federatedGap';
  const plan = checkFederated(op, opts, FEDERATED_KEYS);
  if (!plan.val) throw new Error(`${op}: val is needed (the stream both models are scored on), got undefined`);
  const { model, blockSize, batchSize, backend } = plan;
  const start = snapshot(model);
  let fedState: Record<string, Tensor> | null = null;
  try {
    const federated = await runFederated(op, plan);
    const federatedLoss = (await scoreStream(`${op}: val`, model, plan.val, blockSize, batchSize, plan.evalWindows, backend)).loss;
    fedState = snapshot(model);
    model.loadStateDict(start);
    const g = new Generator(plan.seed);
    const next = (): ReturnType<typeof drawBatch> => drawBatch(plan.clients, batchSize, blockSize, g);
    if (validStarts(plan.clients, blockSize) < 1) throw new Error(`${op}: the clients hold no window of blockSize + 1 tokens`);
    const centralisedTrainLoss = await runSteps(`${op}: centralised`, model, fresh(op, plan), next, federated.steps, blockSize, plan.clip, backend);
    const centralisedLoss = (await scoreStream(`${op}: val`, model, plan.val, blockSize, batchSize, plan.evalWindows, backend)).loss;
    model.loadStateDict(fedState);
    return { federatedLoss, centralisedLoss, gap: federatedLoss - centralisedLoss, federated, centralisedSteps: federated.steps, centralisedTrainLoss };
  } finally {
    disposeState(start);
    if (fedState) disposeState(fedState);
  }
}
