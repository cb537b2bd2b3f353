/**
 * Glitch-token audit: which vocabulary entries a language model has barely trained, read from
 * its weights alone (Land & Bartolo 2024, "Fishing for Magikarp: Automatically Detecting
 * Under-trained Tokens in Large Language Models", arXiv:2405.05417).
 *
 * A token that never appears in the training text gets no gradient as an input, and as an output
 * only the push every softmax gives all tokens it should not predict: `∂L/∂u_j = p_j·h`, nearly
 * the same direction for every such token (with Adam, nearly the same step). Its unembedding row
 * therefore ends as its random initialisation plus a component shared with every other unseen
 * token. Following Land & Bartolo, the indicator removes what all rows share (the mean row and
 * the first principal component of the centred rows) and measures what is left:
 *
 *     x_i = u_i − mean(u);   v = first principal component of X;   r_i = ‖x_i − (x_i·v)·v‖
 *
 * and scores it robustly, `z_i = (r_i − median r) / (1.4826·MAD r)` (a z-score for normal data
 * that a minority of odd rows cannot drag). Under-trained rows have the smallest `r`: a strongly
 * negative `z`. Given token counts from the training text, the audit also reports each token's
 * count and flags the unseen and rare ones, so the two signals can be checked against each other.
 *
 * Host-side and browser-safe: the rows are read with `await data()`.
 * @module
 */
import type { Tensor } from '../tensor/tensor.js';
import { checkKeys, checkNumber, show } from '../tensor/validate.js';

/** What {@link auditTokens} needs of a model: a GPT (`lm_head.weight`, `transformer.wte.weight`), or the `[V, C]` matrix itself. */
export type TokenAuditModel = Tensor | { lm_head: { weight: Tensor }; transformer?: { wte?: { weight: Tensor } } };

/** What {@link auditTokens} needs of a tokenizer (any kiln tokenizer): the vocabulary size and the text (or bytes) of an id. */
export interface TokenAuditTokenizer {
  readonly vocabSize: number;
  decode(ids: ArrayLike<number>): string;
  /** A byte-level tokenizer's exact bytes of one id (BPE's); used in place of `decode` when present. */
  tokenBytes?(id: number): Uint8Array;
  /** Whether `id` is a special token (never in the text, so never counted as rare). */
  isSpecial?(id: number): boolean;
}

/** Options of {@link auditTokens}. */
export interface TokenAuditOptions {
  /** How often each token id occurs in the training text (length `vocabSize`), e.g. from {@link tokenCounts}. */
  counts?: ArrayLike<number>;
  /** Which matrix to read: `'unembedding'` (`lm_head.weight`, the default, as Land & Bartolo) or `'embedding'` (`transformer.wte.weight`); the same tensor in a tied GPT. */
  matrix?: 'unembedding' | 'embedding';
  /** A token is flagged when its z-score is at most `−zThreshold` (default 2). */
  zThreshold?: number;
  /** With `counts`: a token seen at most this many times is flagged as rare (default 0: only unseen ones). */
  rareCount?: number;
}

/** One token's line in the audit. */
export interface TokenAuditEntry {
  id: number;
  /** The token's text; a byte that is not valid UTF-8 on its own is the lone surrogate U+DC00 + byte, as Python's 'surrogateescape' ({@link escapeToken} prints it `\xNN`). */
  text: string;
  /** ‖u_i‖, the row's norm. */
  norm: number;
  /** ‖x_i − (x_i·v)·v‖, the norm after removing the mean row and the first principal component. */
  residualNorm: number;
  /** The robust z-score of `residualNorm`; strongly negative: under-trained. */
  z: number;
  /** How often the token occurs in the training text, or null without `counts`. */
  count: number | null;
  special: boolean;
  /** Whether the weights (z ≤ −zThreshold) or the counts (count ≤ rareCount) single it out. */
  flagged: boolean;
}

/** What {@link auditTokens} returns. */
export interface TokenAudit {
  /** Every token, most under-trained first (ascending `z`; ties by id). */
  tokens: TokenAuditEntry[];
  matrix: 'unembedding' | 'embedding';
  vocabSize: number;
  width: number;
  /** Median and MAD of `residualNorm` (the z-score's centre and scale before the 1.4826 factor). */
  median: number;
  mad: number;
  zThreshold: number;
  /** How many tokens the weights flag (z ≤ −zThreshold). */
  flaggedByWeights: number;
  /** With `counts`: the tokens (special ones aside) seen at most `rareCount` times, and how many of them rank among the that-many lowest z-scores (the indicator's precision at that cut). */
  rare: { count: number; threshold: number; inLowest: number } | null;
}

const OP = 'auditTokens';

/**
 * Token counts: how often each id in `[0, vocabSize)` occurs in `ids` (an id outside is an error).
 *
 * @example
 * tokenCounts(tokenizer.encode(text), tokenizer.vocabSize);
 */
export function tokenCounts(ids: ArrayLike<number>, vocabSize: number): Float64Array {
  const op = 'tokenCounts';
  checkNumber(op, 'vocabSize', vocabSize, { integer: true, min: 1, max: 2 ** 31 - 1 });
  if (ids === null || typeof ids !== 'object' || typeof (ids as ArrayLike<number>).length !== 'number') throw new Error(`${op}: ids must be an array of token ids, got ${show(ids)}`);
  const counts = new Float64Array(vocabSize);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= vocabSize) throw new Error(`${op}: ids[${i}] must be an integer in [0, ${vocabSize}), got ${show(id)}`);
    counts[id]!++;
  }
  return counts;
}

/**
 * A token's text for one line of output: JSON string escapes for quotes, backslashes and control
 * characters (`\n`, `\u0000`), in double quotes, so leading spaces and invisible tokens show; a
 * byte escaped as a lone surrogate (see {@link TokenAuditEntry.text}) as `\xNN`.
 */
export function escapeToken(text: string): string {
  if (typeof text !== 'string') throw new Error(`escapeToken: text must be a string, got ${show(text)}`);
  // JSON.stringify leaves \x7f-\x9f and the line separators as they are; they are escaped too
  return JSON.stringify(text)
    .replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
    .replace(/(?<!\\)((?:\\\\)*)\\udc([89a-f][0-9a-f])/g, '$1\\x$2'); // an escape, not an escaped backslash before 'udc'
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function tokenText(tok: TokenAuditTokenizer, id: number): string {
  if (typeof tok.tokenBytes === 'function') {
    const bytes = tok.tokenBytes(id);
    try {
      return UTF8.decode(bytes);
    } catch {
      // a piece of a multi-byte character: ASCII bytes as themselves, the others as the lone
      // surrogates U+DC80–U+DCFF (Python's 'surrogateescape'), which escapeToken writes \xNN
      return Array.from(bytes, (b) => String.fromCharCode(b < 0x80 ? b : 0xdc00 + b)).join('');
    }
  }
  return tok.decode([id]);
}

function median(sorted: Float64Array): number {
  const n = sorted.length;
  return n % 2 ? sorted[(n - 1) >> 1]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
}

// The first principal component of the centred rows x [V, C] by power iteration on XᵀX
// (deterministic start; 50 iterations of 2·V·C flops each, never the C×C matrix).
function firstComponent(x: Float64Array, V: number, C: number): Float64Array {
  let v = new Float64Array(C);
  for (let j = 0; j < C; j++) v[j] = 1 + ((j * 7919) % 13) / 13; // not orthogonal to a component by accident
  const xv = new Float64Array(V);
  for (let it = 0; it < 50; it++) {
    for (let i = 0; i < V; i++) {
      let s = 0;
      for (let j = 0; j < C; j++) s += x[i * C + j]! * v[j]!;
      xv[i] = s;
    }
    const w = new Float64Array(C);
    for (let i = 0; i < V; i++) {
      const a = xv[i]!;
      if (a !== 0) for (let j = 0; j < C; j++) w[j] += a * x[i * C + j]!;
    }
    let n = 0;
    for (let j = 0; j < C; j++) n += w[j]! * w[j]!;
    n = Math.sqrt(n);
    if (!(n > 0)) return new Float64Array(C); // all rows equal: nothing to remove
    for (let j = 0; j < C; j++) w[j] /= n;
    v = w;
  }
  return v;
}

/**
 * Audit a language model's vocabulary for under-trained ("glitch") tokens: score every row of its
 * unembedding (or embedding) matrix by how little of it is left once what all rows share is
 * removed (see the module comment), list the tokens most under-trained first, and with `counts`
 * report how often each occurs in the training text.
 *
 * @example
 * const audit = await auditTokens(model, tokenizer, { counts: tokenCounts(trainIds, tokenizer.vocabSize) });
 * for (const t of audit.tokens.slice(0, 10)) console.log(t.id, escapeToken(t.text), t.z.toFixed(2), t.count);
 */
export async function auditTokens(model: TokenAuditModel, tokenizer: TokenAuditTokenizer, opts: TokenAuditOptions = {}): Promise<TokenAudit> {
  checkKeys(OP, opts, ['counts', 'matrix', 'zThreshold', 'rareCount']);
  const o = opts ?? {};
  const which = o.matrix === undefined ? 'unembedding' : o.matrix;
  if (which !== 'unembedding' && which !== 'embedding') throw new Error(`${OP}: matrix must be 'unembedding' or 'embedding', got ${show(which)}`);
  const zThreshold = o.zThreshold === undefined ? 2 : checkNumber(OP, 'zThreshold', o.zThreshold, { min: 0 });
  const rareCount = o.rareCount === undefined ? 0 : checkNumber(OP, 'rareCount', o.rareCount, { integer: true, min: 0 });
  const weight = matrixOf(model, which);
  if (tokenizer === null || typeof tokenizer !== 'object' || typeof tokenizer.decode !== 'function' || typeof tokenizer.vocabSize !== 'number')
    throw new Error(`${OP}: tokenizer must be a tokenizer (vocabSize and decode), got ${show(tokenizer)}`);
  const [V, C] = weight.shape as [number, number];
  if (tokenizer.vocabSize !== V) throw new Error(`${OP}: the tokenizer has ${tokenizer.vocabSize} tokens and the ${which} matrix ${V} rows: they are not from the same model`);
  if (V < 3) throw new Error(`${OP}: the ${which} matrix has ${V} rows; at least 3 are needed for a median and a spread`);
  let counts: Float64Array | null = null;
  if (o.counts !== undefined) {
    const c = o.counts;
    if (c === null || typeof c !== 'object' || typeof c.length !== 'number') throw new Error(`${OP}: counts must be an array of per-token counts, got ${show(c)}`);
    if (c.length !== V) throw new Error(`${OP}: counts has ${c.length} entries for ${V} tokens`);
    counts = new Float64Array(V);
    for (let i = 0; i < V; i++) {
      const n = c[i];
      if (typeof n !== 'number' || !(n >= 0) || !Number.isFinite(n)) throw new Error(`${OP}: counts[${i}] must be a count ≥ 0, got ${show(n)}`);
      counts[i] = n;
    }
  }

  const w = Float64Array.from(await weight.data());
  // u_i − mean(u), then without the first principal component
  const mean = new Float64Array(C);
  for (let i = 0; i < V; i++) for (let j = 0; j < C; j++) mean[j] += w[i * C + j]! / V;
  const x = new Float64Array(V * C);
  for (let i = 0; i < V; i++) for (let j = 0; j < C; j++) x[i * C + j] = w[i * C + j]! - mean[j]!;
  const v = firstComponent(x, V, C);
  const norm = new Float64Array(V);
  const residual = new Float64Array(V);
  for (let i = 0; i < V; i++) {
    let nn = 0;
    let proj = 0;
    let xx = 0;
    for (let j = 0; j < C; j++) {
      const a = w[i * C + j]!;
      const b = x[i * C + j]!;
      nn += a * a;
      xx += b * b;
      proj += b * v[j]!;
    }
    norm[i] = Math.sqrt(nn);
    residual[i] = Math.sqrt(Math.max(0, xx - proj * proj));
  }
  if (!norm.every(Number.isFinite)) throw new Error(`${OP}: the ${which} matrix holds NaN or Infinity`);
  const sorted = Float64Array.from(residual).sort();
  const med = median(sorted);
  const mad = median(Float64Array.from(residual, (r) => Math.abs(r - med)).sort());
  const scale = 1.4826 * mad;

  const tokens: TokenAuditEntry[] = [];
  for (let id = 0; id < V; id++) {
    const special = typeof tokenizer.isSpecial === 'function' ? tokenizer.isSpecial(id) : false;
    const z = scale > 0 ? (residual[id]! - med) / scale : 0;
    const count = counts ? counts[id]! : null;
    const rare = count !== null && !special && count <= rareCount;
    tokens.push({ id, text: tokenText(tokenizer, id), norm: norm[id]!, residualNorm: residual[id]!, z, count, special, flagged: z <= -zThreshold || rare });
  }
  tokens.sort((a, b) => a.z - b.z || a.id - b.id);
  let rare: TokenAudit['rare'] = null;
  if (counts) {
    const isRare = (t: TokenAuditEntry): boolean => !t.special && t.count! <= rareCount;
    const n = tokens.filter(isRare).length;
    rare = { count: n, threshold: rareCount, inLowest: tokens.slice(0, n).filter(isRare).length };
  }
  return { tokens, matrix: which, vocabSize: V, width: C, median: med, mad, zThreshold, flaggedByWeights: tokens.filter((t) => t.z <= -zThreshold).length, rare };
}

function isTensor(x: unknown): x is Tensor {
  return x !== null && typeof x === 'object' && typeof (x as Tensor).data === 'function' && Array.isArray((x as Tensor).shape) && typeof (x as Tensor).dtype === 'string';
}

function matrixOf(model: TokenAuditModel, which: 'unembedding' | 'embedding'): Tensor {
  let w: unknown;
  if (isTensor(model)) w = model;
  else if (model !== null && typeof model === 'object') {
    const m = model as { lm_head?: { weight?: unknown }; transformer?: { wte?: { weight?: unknown } } };
    w = which === 'unembedding' ? m.lm_head?.weight : m.transformer?.wte?.weight;
    if (w === undefined) throw new Error(`${OP}: model has no ${which === 'unembedding' ? 'lm_head.weight' : 'transformer.wte.weight'} (pass a GPT or the [vocab, width] matrix), got ${show(model)}`);
  } else throw new Error(`${OP}: model must be a GPT or a [vocab, width] tensor, got ${show(model)}`);
  if (!isTensor(w)) throw new Error(`${OP}: the ${which} weight must be a tensor, got ${show(w)}`);
  if ((w as Tensor & { disposed?: boolean }).disposed) throw new Error(`${OP}: the ${which} matrix is disposed`);
  if (w.shape.length !== 2) throw new Error(`${OP}: the ${which} matrix must be [vocab, width], got [${w.shape.join(', ')}]`);
  if (w.dtype === 'i32' || w.dtype === 'bool') throw new Error(`${OP}: the ${which} matrix must be floating point, got ${w.dtype}`);
  return w;
}
