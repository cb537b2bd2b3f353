/**
 * Text data augmentation as composable transforms of a batch's token rows, applied on the host
 * before the batch becomes tensors (`TokenDataset.batch(…, { transform })`, `train({ transform })`,
 * never to validation batches): token dropout, span masking, nearby swaps and synonym replacement,
 * and {@link composeTransforms}.
 *
 * Every random choice is drawn from the kiln `Generator` the transform is given (the batcher passes
 * one seeded from its own generator, which the training loop checkpoints), so one generator state
 * gives one augmented batch on every machine and a resumed run augments the same way.
 *
 * Targets: a transform corrupts the inputs and keeps the clean next-token targets
 * (`target[b][t]` is still the token that follows position t in the corpus), so the model learns
 * to predict the true text from a noisy context (data noising, Xie et al. 2017). Two documented
 * exceptions: token dropout's `'delete'` mode, which realigns the targets with the kept tokens,
 * and `targets: 'follow'` of {@link randomSwap} and {@link synonymReplace}, which treats the
 * augmented window as new text and derives the targets from it.
 * @module
 */
import { Generator } from '../tensor/random.js';
import { checkChoice, checkNumber, show } from '../tensor/validate.js';
import { got, optionsArg } from './args.js';
import { IGNORE_INDEX } from '../align/losses.js';

/** The token rows of a batch on the host: `input` and `target` are `[B, T]` row-major i32. */
export interface TokenRows {
  /** Token ids `[B, T]`. */
  input: Int32Array;
  /** Next-token targets `[B, T]` (−100: ignored by the loss). */
  target: Int32Array;
  /** `[B, T]`. */
  shape: readonly [number, number];
}

/**
 * A batch transform: token rows and a generator → new token rows of the same shape (the rows given
 * are not changed). Every random draw comes from `generator`.
 */
export type BatchTransform = (rows: TokenRows, generator: Generator) => TokenRows;


// ---- checks and draws --------------------------------------------------------------------------

/** @internal Check token rows (for a transform named `op`). */
export function checkRows(op: string, rows: unknown): TokenRows {
  const r = rows as TokenRows;
  if (rows === null || typeof rows !== 'object' || !(r.input instanceof Int32Array) || !(r.target instanceof Int32Array) || !Array.isArray(r.shape))
    throw new Error(`${op}: rows must be { input: Int32Array, target: Int32Array, shape: [B, T] }, got ${got(rows)}`);
  const [b, t] = r.shape;
  if (r.shape.length !== 2 || !Number.isSafeInteger(b) || !Number.isSafeInteger(t) || b! < 0 || t! < 0)
    throw new Error(`${op}: rows.shape must be [B, T] (non-negative integers), got ${show(r.shape)}`);
  if (r.input.length !== b! * t! || r.target.length !== b! * t!)
    throw new Error(`${op}: rows.input (${r.input.length}) and rows.target (${r.target.length}) must hold B·T = ${b! * t!} ids for shape [${b}, ${t}]`);
  return r;
}

function checkGenerator(op: string, generator: unknown): Generator {
  if (!(generator instanceof Generator)) throw new Error(`${op}: generator must be a Generator, got ${got(generator)}`);
  return generator;
}

function tokenId(op: string, name: string, v: unknown): number {
  return checkNumber(op, name, v, { integer: true, min: 0, max: 2 ** 31 - 1 });
}

function probability(op: string, name: string, v: unknown): number {
  return checkNumber(op, name, v, { min: 0, max: 1 });
}

/** Uniform [0, 1) numbers from a generator, drawn in chunks (one stream position per chunk of four). */
class Uniforms {
  private buf: Float64Array = new Float64Array(0);
  private at = 0;
  constructor(private readonly generator: Generator, private readonly chunk: number) {}
  next(): number {
    if (this.at >= this.buf.length) {
      this.buf = this.generator.draw(this.chunk, { kind: 'uniform', low: 0, high: 1 });
      this.at = 0;
    }
    return this.buf[this.at++]!;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.min(n - 1, Math.floor(this.next() * n));
  }
}

const copyRows = (r: TokenRows): TokenRows => ({ input: r.input.slice(), target: r.target.slice(), shape: [r.shape[0], r.shape[1]] });

/**
 * The transform `op`: checks the rows and the generator, copies the rows, and lets `apply` change
 * the copy `out` (reading `r`, drawing from `u`); with `follow`, the targets then follow the inputs.
 */
function rowTransform(op: string, apply: (r: TokenRows, out: TokenRows, u: Uniforms) => void, follow = false): BatchTransform {
  return (rows, generator) => {
    const r = checkRows(op, rows);
    const u = new Uniforms(checkGenerator(op, generator), 256);
    const out = copyRows(r);
    apply(r, out, u);
    if (follow) followTargets(out, r);
    return out;
  };
}

/** The window `[T + 1]` of row b, rebuilt from the inputs and the last target (`target[t] = input[t + 1]` in the stream). */
function followTargets(out: TokenRows, src: TokenRows): void {
  const [b, t] = out.shape;
  for (let i = 0; i < b; i++) {
    const o = i * t;
    for (let j = 0; j < t - 1; j++) out.target[o + j] = out.input[o + j + 1]!;
    if (t > 0) out.target[o + t - 1] = src.target[o + t - 1]!;
  }
}

// ---- token dropout -----------------------------------------------------------------------------

/** Options of {@link tokenDropout}. */
export interface TokenDropoutOptions {
  /** Probability that each input token is dropped. */
  p: number;
  /**
   * `'replace'` (default): a dropped token becomes `replaceId` (an unk or mask id) in place;
   * targets are unchanged. `'delete'`: dropped tokens are removed from the row, the kept ones
   * move left, and the row is padded at the end with `padId` to keep the fixed `[B, T]` shape;
   * each kept token keeps its own next-token target (so targets move with it) and padded
   * positions get target −100, which the loss ignores.
   */
  mode?: 'replace' | 'delete';
  /** The id a dropped token becomes (mode 'replace'). */
  replaceId?: number;
  /** The id padding the end of a row (mode 'delete'). */
  padId?: number;
  /** Ids never dropped (an end-of-text separator, say). */
  keep?: readonly number[];
}

/**
 * Token (word) dropout (Bowman et al. 2016; Xie et al. 2017's blank noising): each input token is
 * dropped independently with probability `p`, replaced by `replaceId` or deleted (see
 * {@link TokenDropoutOptions.mode} for what deletion means in a fixed-shape batch).
 *
 * @example
 * const t = tokenDropout({ p: 0.1, replaceId: unkId });
 * const rows = t({ input, target, shape: [B, T] }, new Generator(1));
 */
export function tokenDropout(opts: TokenDropoutOptions): BatchTransform {
  const op = 'tokenDropout';
  if (opts === null || typeof opts !== 'object') throw new Error(`${op}: expected options { p, mode?, replaceId?, padId?, keep? }, got ${got(opts)}`);
  const o = optionsArg<TokenDropoutOptions>(op, opts, ['p', 'mode', 'replaceId', 'padId', 'keep']);
  const p = probability(op, 'p', o.p);
  const mode = o.mode === undefined ? 'replace' : checkChoice(op, 'mode', o.mode, ['replace', 'delete'] as const);
  if (o.replaceId !== undefined) tokenId(op, 'replaceId', o.replaceId);
  if (o.padId !== undefined) tokenId(op, 'padId', o.padId);
  if (mode === 'replace' && o.padId !== undefined) throw new Error(`${op}: padId ${show(o.padId)} is for mode 'delete'; mode 'replace' uses replaceId`);
  if (mode === 'delete' && o.replaceId !== undefined) throw new Error(`${op}: replaceId ${show(o.replaceId)} is for mode 'replace'; mode 'delete' uses padId`);
  const fill = mode === 'replace' ? tokenId(op, 'replaceId', o.replaceId) : tokenId(op, 'padId', o.padId);
  const keep = idSet(op, 'keep', o.keep ?? []);
  return rowTransform(op, (r, out, u) => {
    const [b, t] = r.shape;
    for (let i = 0; i < b; i++) {
      const o0 = i * t;
      let w = 0; // write position (mode 'delete')
      for (let j = 0; j < t; j++) {
        const id = r.input[o0 + j]!;
        // one draw per position, whatever the token, so draws do not depend on the content
        const drop = u.next() < p && !keep.has(id);
        if (mode === 'replace') {
          if (drop) out.input[o0 + j] = fill;
        } else if (!drop) {
          out.input[o0 + w] = id;
          out.target[o0 + w] = r.target[o0 + j]!;
          w++;
        }
      }
      if (mode === 'delete')
        for (; w < t; w++) {
          out.input[o0 + w] = fill;
          out.target[o0 + w] = IGNORE_INDEX;
        }
    }
  });
}

function idSet(op: string, name: string, ids: unknown): Set<number> {
  if (!Array.isArray(ids)) throw new Error(`${op}: ${name} must be an array of token ids, got ${got(ids)}`);
  return new Set(ids.map((v, i) => tokenId(op, `${name}[${i}]`, v)));
}

// ---- span masking ------------------------------------------------------------------------------

/** Options of {@link spanMask}. */
export interface SpanMaskOptions {
  /** The id masked tokens become. */
  maskId: number;
  /** Fraction of each row's tokens to mask (0.15 by default, as SpanBERT and T5). */
  rate?: number;
  /** Mean span length: lengths are Geometric(1/meanSpan) on {1, 2, …} (3 by default, as T5). */
  meanSpan?: number;
  /** Longest span (lengths above are clipped; 10 as SpanBERT by default, at most T). */
  maxSpan?: number;
}

/**
 * Span masking (SpanBERT, Joshi et al. 2020; T5's span corruption): in each row, spans of
 * geometric length ℓ ~ Geo(1/meanSpan) (clipped at `maxSpan`) are drawn at uniform starts and
 * replaced by `maskId` until ⌈rate·T⌉ tokens are masked (the last span may pass the budget).
 * Spans never overlap or touch, so each one shows as a run of `maskId` of its drawn length; a
 * start that would touch another span is drawn again (at most 32 tries, then the span is
 * skipped). Targets are unchanged: the model predicts the true tokens after a masked context.
 */
export function spanMask(opts: SpanMaskOptions): BatchTransform {
  const op = 'spanMask';
  if (opts === null || typeof opts !== 'object') throw new Error(`${op}: expected options { maskId, rate?, meanSpan?, maxSpan? }, got ${got(opts)}`);
  const o = optionsArg<SpanMaskOptions>(op, opts, ['maskId', 'rate', 'meanSpan', 'maxSpan']);
  const maskId = tokenId(op, 'maskId', o.maskId);
  const rate = o.rate === undefined ? 0.15 : checkNumber(op, 'rate', o.rate, { min: 0, max: 1, maxExclusive: true });
  const meanSpan = o.meanSpan === undefined ? 3 : checkNumber(op, 'meanSpan', o.meanSpan, { min: 1 });
  const maxSpan = o.maxSpan === undefined ? 10 : checkNumber(op, 'maxSpan', o.maxSpan, { integer: true, min: 1 });
  const q = 1 / meanSpan; // success probability of the geometric distribution: mean 1/q
  return rowTransform(op, (r, out, u) => {
    const [b, t] = r.shape;
    const masked = new Uint8Array(t);
    for (let i = 0; i < b; i++) {
      masked.fill(0);
      const budget = Math.ceil(rate * t);
      let count = 0;
      let misses = 0;
      while (count < budget && misses < 32 * (budget + 1)) {
        // ℓ = 1 + ⌊ln U / ln(1 − q)⌋ with U in (0, 1]: P(ℓ = k) = q(1 − q)^(k−1)
        const g = q >= 1 ? 1 : 1 + Math.floor(Math.log(1 - u.next()) / Math.log(1 - q));
        const len = Math.min(g, maxSpan, t);
        let placed = false;
        for (let tries = 0; tries < 32 && !placed; tries++) {
          const s = u.int(t - len + 1);
          let free = true;
          for (let j = Math.max(0, s - 1); j < Math.min(t, s + len + 1) && free; j++) if (masked[j]) free = false;
          if (!free) continue;
          masked.fill(1, s, s + len);
          placed = true;
        }
        if (placed) count += len;
        else misses++;
      }
      for (let j = 0; j < t; j++) if (masked[j]) out.input[i * t + j] = maskId;
    }
  });
}

// ---- swaps -------------------------------------------------------------------------------------

/** Options of {@link randomSwap}. */
export interface RandomSwapOptions {
  /** Probability that each position starts a swap. */
  p: number;
  /** The partner of a swap at t is t + d, d uniform in [1, distance] (1 by default: adjacent tokens). */
  distance?: number;
  /**
   * `'clean'` (default): targets stay the original next tokens. `'follow'`: the swapped window is
   * new text and the targets are its next tokens (`target[t] = input[t + 1]`, the last target kept).
   */
  targets?: 'clean' | 'follow';
}

/**
 * Random swaps of nearby tokens (EDA's random swap, Wei & Zou 2019, kept local): positions are
 * visited left to right and each, with probability `p`, swaps its token with the one `d` ahead
 * (d uniform in [1, distance]; skipped past the end of the row). Each row keeps its multiset of tokens.
 */
export function randomSwap(opts: RandomSwapOptions): BatchTransform {
  const op = 'randomSwap';
  if (opts === null || typeof opts !== 'object') throw new Error(`${op}: expected options { p, distance?, targets? }, got ${got(opts)}`);
  const o = optionsArg<RandomSwapOptions>(op, opts, ['p', 'distance', 'targets']);
  const p = probability(op, 'p', o.p);
  const distance = o.distance === undefined ? 1 : checkNumber(op, 'distance', o.distance, { integer: true, min: 1 });
  const follow = o.targets !== undefined && checkChoice(op, 'targets', o.targets, ['clean', 'follow'] as const) === 'follow';
  return rowTransform(op, (r, out, u) => {
    const [b, t] = r.shape;
    for (let i = 0; i < b; i++)
      for (let j = 0; j < t; j++) {
        // two draws per position, whatever happens, so the stream does not depend on the content
        const swap = u.next() < p;
        const d = 1 + u.int(distance);
        if (!swap || j + d >= t) continue;
        const a = i * t + j;
        const tmp = out.input[a]!;
        out.input[a] = out.input[a + d]!;
        out.input[a + d] = tmp;
      }
  }, follow);
}

// ---- synonyms ----------------------------------------------------------------------------------

/** What {@link synonymReplace} needs of a tokenizer to read a table of words. */
export interface SynonymTokenizer {
  encode(text: string): ArrayLike<number>;
}

/** Options of {@link synonymReplace}. */
export interface SynonymReplaceOptions {
  /**
   * Token id → the ids that may replace it (`Map` or a plain object keyed by the id), or, with
   * `tokenizer`, word → words; each word must encode to exactly one token (with a BPE tokenizer,
   * write the leading space: `' big'`).
   */
  table: ReadonlyMap<number, readonly number[]> | Record<string, readonly (number | string)[]>;
  /** Probability that each input token found in the table is replaced. */
  p: number;
  /** Encodes the words of a word table. */
  tokenizer?: SynonymTokenizer;
  /** As {@link RandomSwapOptions.targets}: `'clean'` (default) or `'follow'`. */
  targets?: 'clean' | 'follow';
}

/**
 * Synonym replacement (EDA, Wei & Zou 2019): each input token that has synonyms in `table` is,
 * with probability `p`, replaced by one of them drawn uniformly. Only ids from the table ever
 * appear as replacements.
 *
 * @example
 * synonymReplace({ table: { ' big': [' large', ' huge'] }, tokenizer, p: 0.2 })
 */
export function synonymReplace(opts: SynonymReplaceOptions): BatchTransform {
  const op = 'synonymReplace';
  if (opts === null || typeof opts !== 'object') throw new Error(`${op}: expected options { table, p, tokenizer?, targets? }, got ${got(opts)}`);
  const o = optionsArg<SynonymReplaceOptions>(op, opts, ['table', 'p', 'tokenizer', 'targets']);
  const p = probability(op, 'p', o.p);
  const follow = o.targets !== undefined && checkChoice(op, 'targets', o.targets, ['clean', 'follow'] as const) === 'follow';
  if (o.tokenizer !== undefined && (o.tokenizer === null || typeof o.tokenizer !== 'object' || typeof o.tokenizer.encode !== 'function'))
    throw new Error(`${op}: tokenizer must have encode(text), got ${got(o.tokenizer)}`);
  const table = synonymTable(op, o.table, o.tokenizer);
  return rowTransform(op, (r, out, u) => {
    for (let k = 0; k < r.input.length; k++) {
      // two draws per position, whatever the token, so the stream does not depend on the content
      const hit = u.next() < p;
      const pick = u.next();
      const syn = table.get(r.input[k]!);
      if (hit && syn) out.input[k] = syn[Math.min(syn.length - 1, Math.floor(pick * syn.length))]!;
    }
  }, follow);
}

function synonymTable(op: string, table: unknown, tokenizer: SynonymTokenizer | undefined): Map<number, number[]> {
  const out = new Map<number, number[]>();
  const entries: [unknown, unknown][] =
    table instanceof Map ? [...table.entries()] : table !== null && typeof table === 'object' && !Array.isArray(table) ? Object.entries(table) : (() => {
      throw new Error(`${op}: table must be a Map or an object of token id (or word) → synonyms, got ${got(table)}`);
    })();
  if (entries.length === 0) throw new Error(`${op}: table has no entries`);
  const idOf = (v: unknown, where: string): number => {
    if (tokenizer && typeof v === 'string') {
      const ids = Array.from(tokenizer.encode(v));
      if (ids.length !== 1) throw new Error(`${op}: ${where} '${v}' encodes to ${ids.length} tokens; the table maps single tokens`);
      return tokenId(op, where, ids[0]);
    }
    // object keys are strings: read '12' as the id 12
    const n = typeof v === 'string' && !tokenizer && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n === 'string') throw new Error(`${op}: ${where} '${n}' is a word; pass a tokenizer to map words to ids`);
    return tokenId(op, where, n);
  };
  for (const [key, syns] of entries) {
    const id = idOf(key, `table key ${show(key)}`);
    if (!Array.isArray(syns) || syns.length === 0) throw new Error(`${op}: table[${show(key)}] must be a non-empty array of synonyms, got ${got(syns)}`);
    out.set(id, syns.map((s, i) => idOf(s, `table[${show(key)}][${i}]`)));
  }
  return out;
}

// ---- composition -------------------------------------------------------------------------------

/**
 * Apply transforms left to right (the first is applied first), each to the previous one's rows,
 * all drawing from the one generator in turn.
 *
 * @example
 * const augment = composeTransforms(synonymReplace({ table, p: 0.1 }), tokenDropout({ p: 0.1, replaceId: unk }));
 * await train({ ..., transform: augment });
 */
export function composeTransforms(...transforms: BatchTransform[]): BatchTransform {
  const op = 'composeTransforms';
  transforms.forEach((t, i) => {
    if (typeof t !== 'function') throw new Error(`${op}: transform ${i} must be a function (rows, generator) → rows, got ${got(t)}`);
  });
  return (rows, generator) => {
    let r = checkRows(op, rows);
    checkGenerator(op, generator);
    for (const t of transforms) r = checkRows(op, t(r, generator));
    return r === rows ? copyRows(r) : r;
  };
}
