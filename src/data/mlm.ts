/**
 * Data for masked-language-model pre-training (BERT, Devlin et al. 2019, §3.1 and appendix A.1),
 * and a WordPiece vocabulary trainer so that a BERT can be pre-trained on any corpus.
 *
 * **Masking** ({@link maskTokens} on the host, {@link maskTokensTensor} on a device; the two give
 * the same result from the same generator state): every token that is not special is selected
 * with probability `mlmProbability` (0.15); a selected token becomes `[MASK]` with probability
 * `maskFraction` (0.8), a random non-special token with probability `randomFraction` (0.1), and
 * stays as it is otherwise; its label is the original id. Every other label is −100 (ignored by
 * the loss). Each decision is an integer draw compared with a threshold in units of 2⁻²⁴, so
 * the draws are bit-identical on every backend (Philox words, see `backend/philox.ts`) and the
 * host function reproduces the device one exactly. Per call the generator gives three draws of
 * n values each, in this order: selection, action, replacement token.
 *
 * **Vocabulary** ({@link trainWordPiece}): words from the tokenizer's own basic tokenisation
 * (lower-casing, accent stripping and punctuation split as {@link WordPieceTokenizer}), spelled
 * as their first character and `##`-prefixed continuation characters, then merged pairwise, the
 * most frequent adjacent pair first (the BPE-style training Hugging Face's WordPiece trainer
 * uses), until the vocabulary has `vocabSize` entries or no pair occurs twice.
 * @module
 */
import { randint, tensor } from '../tensor/ops/creation.js';
import { eq, logicalAnd, logicalNot, logicalOr, lt, where } from '../tensor/ops/elementwise.js';
import { indexSelect, reshape } from '../tensor/ops/shape_ops.js';
import { asOp, live } from '../tensor/ops/util.js';
import { Generator } from '../tensor/random.js';
import { fmt } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { checkNumber, show } from '../tensor/validate.js';
import { got, idsArg, optionsArg } from './args.js';
import { WordPieceTokenizer } from './wordpiece.js';

/** Options of {@link maskTokens} and {@link maskTokensTensor}. */
export interface MaskTokensOptions {
  /** Number of token ids V: ids are in [0, V). */
  vocabSize: number;
  /** The `[MASK]` id. */
  maskId: number;
  /** Ids that are never selected and never drawn as replacements (`[PAD]`, `[CLS]`, `[SEP]`, `[MASK]`, …). */
  specialIds?: readonly number[];
  /** The probability that a non-special token is selected (default 0.15). */
  mlmProbability?: number;
  /** Of the selected tokens, the fraction replaced by `[MASK]` (default 0.8). */
  maskFraction?: number;
  /** Of the selected tokens, the fraction replaced by a random non-special token (default 0.1); the rest stay. */
  randomFraction?: number;
  /** The stream of the draws (required: masking must be reproducible). */
  generator: Generator;
}

/** What {@link maskTokens} returns. */
export interface MaskedTokens {
  /** The ids with the selected tokens masked, replaced or kept. */
  inputIds: Int32Array;
  /** The original id where a token was selected, −100 elsewhere. */
  labels: Int32Array;
}

/** What {@link maskTokensTensor} returns: i32 tensors of the input's shape. */
export interface MaskedTokensTensor {
  inputIds: Tensor;
  labels: Tensor;
}

/** The resolution of the integer draws: thresholds are multiples of 2⁻²⁴. */
const SCALE = 2 ** 24;

interface ResolvedMask {
  vocabSize: number;
  maskId: number;
  specials: Set<number>;
  /** The ids a random replacement is drawn from (every non-special id). */
  candidates: Int32Array;
  /** Thresholds in units of 2⁻²⁴: selected when draw < select; masked when < mask; random when < random. */
  select: number;
  mask: number;
  random: number;
  generator: Generator;
}

const MASK_KEYS = ['vocabSize', 'maskId', 'specialIds', 'mlmProbability', 'maskFraction', 'randomFraction', 'generator'];

function resolveMask(op: string, opts: MaskTokensOptions): ResolvedMask {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: expected options { vocabSize, maskId, generator, ... }, got ${got(opts)}`);
  const o = optionsArg<MaskTokensOptions>(op, opts, MASK_KEYS);
  const vocabSize = checkNumber(op, 'vocabSize', o.vocabSize, { integer: true, min: 1, max: 2 ** 31 - 1 });
  const maskId = checkNumber(op, 'maskId', o.maskId, { integer: true, min: 0, max: vocabSize - 1 });
  const specialIds = o.specialIds ?? [];
  if (!Array.isArray(specialIds)) throw new Error(`${op}: specialIds must be an array of token ids, got ${got(specialIds)}`);
  specialIds.forEach((s, i) => checkNumber(op, `specialIds[${i}]`, s, { integer: true, min: 0, max: vocabSize - 1 }));
  const specials = new Set<number>([...specialIds, maskId]);
  const p = o.mlmProbability === undefined ? 0.15 : checkNumber(op, 'mlmProbability', o.mlmProbability, { min: 0, max: 1 });
  const fm = o.maskFraction === undefined ? 0.8 : checkNumber(op, 'maskFraction', o.maskFraction, { min: 0, max: 1 });
  const fr = o.randomFraction === undefined ? 0.1 : checkNumber(op, 'randomFraction', o.randomFraction, { min: 0, max: 1 });
  if (fm + fr > 1 + 1e-12) throw new Error(`${op}: maskFraction + randomFraction must be at most 1, got ${fm} + ${fr}`);
  if (!(o.generator instanceof Generator)) throw new Error(`${op}: generator must be a Generator, got ${show(o.generator)}`);
  const candidates = Int32Array.from({ length: vocabSize }, (_, i) => i).filter((i) => !specials.has(i));
  if (fr > 0 && candidates.length === 0) throw new Error(`${op}: randomFraction ${fr} needs a non-special token to draw, but all ${vocabSize} ids are special`);
  const t = (x: number): number => Math.round(x * SCALE);
  return { vocabSize, maskId, specials, candidates, select: t(p), mask: t(fm), random: t(Math.min(1, fm + fr)), generator: o.generator };
}

/**
 * @internal Check masking options under the public name `op` (a model wrapper's) without drawing:
 * every error {@link maskTokens} would raise for them, raised now.
 */
export function checkMaskTokensOptions(op: string, opts: MaskTokensOptions): void {
  resolveMask(op, opts);
}

/**
 * BERT's masking of a sequence of token ids, on the host (see the module comment): about
 * `mlmProbability` of the non-special tokens are selected; of those, 80% become `maskId`, 10% a
 * random non-special token, 10% stay; `labels` hold their original ids and −100 elsewhere.
 *
 * @example
 * const { inputIds, labels } = maskTokens(ids, { vocabSize: tok.vocabSize, maskId: 4, specialIds: [0, 1, 2, 3], generator: new Generator(1) });
 */
export function maskTokens(ids: ArrayLike<number>, opts: MaskTokensOptions): MaskedTokens {
  const op = 'maskTokens';
  idsArg(op, ids);
  const r = resolveMask(op, opts);
  const n = ids.length;
  for (let i = 0; i < n; i++) {
    const v = ids[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= r.vocabSize) throw new Error(`${op}: ids[${i}] must be a token id in [0, ${r.vocabSize}), got ${show(v)}`);
  }
  const g = r.generator;
  const pick = g.draw(n, { kind: 'randint', low: 0, high: SCALE });
  const act = g.draw(n, { kind: 'randint', low: 0, high: SCALE });
  const repl = g.draw(n, { kind: 'randint', low: 0, high: Math.max(1, r.candidates.length) });
  const inputIds = new Int32Array(n);
  const labels = new Int32Array(n).fill(-100);
  for (let i = 0; i < n; i++) {
    const id = ids[i]!;
    inputIds[i] = id;
    if (r.specials.has(id) || pick[i]! >= r.select) continue;
    labels[i] = id;
    if (act[i]! < r.mask) inputIds[i] = r.maskId;
    else if (act[i]! < r.random) inputIds[i] = r.candidates[repl[i]!]!;
  }
  return { inputIds, labels };
}

/**
 * {@link maskTokens} on a device: ids `[...]` i32 → `{ inputIds, labels }` of the same shape,
 * computed without reading the ids back (no sync), equal to `maskTokens` of the same ids from
 * the same generator state. An id outside [0, vocabSize) is not checked here (the model's
 * embedding reports it).
 */
export function maskTokensTensor(ids: Tensor, opts: MaskTokensOptions): MaskedTokensTensor {
  const op = 'maskTokensTensor';
  if (!(ids instanceof Tensor)) throw new Error(`${op}: ids must be an i32 Tensor, got ${show(ids)}`);
  live(op, ids);
  if (ids.dtype !== 'i32') throw new Error(`${op}: ids must be i32 token ids, got ${fmt(ids.shape)} ${ids.dtype}`);
  const r = resolveMask(op, opts);
  return asOp(op, () => {
    const place = { backend: ids.backend.name, generator: r.generator, dtype: 'i32' as const };
    const shape = ids.shape;
    const pick = randint(0, SCALE, shape, place);
    const act = randint(0, SCALE, shape, place);
    const repl = randint(0, Math.max(1, r.candidates.length), shape, place);
    let special: Tensor | null = null;
    for (const s of r.specials) {
      const hit = eq(ids, s);
      special = special ? logicalOr(special, hit) : hit;
    }
    let selected = lt(pick, r.select);
    if (special) selected = logicalAnd(selected, logicalNot(special));
    const masked = logicalAnd(selected, lt(act, r.mask));
    const random = logicalAnd(selected, logicalAnd(logicalNot(lt(act, r.mask)), lt(act, r.random)));
    const table = tensor(r.candidates.length ? r.candidates : Int32Array.of(0), [Math.max(1, r.candidates.length)], { backend: ids.backend.name, dtype: 'i32' });
    const drawn = reshape(indexSelect(table, 0, reshape(repl, [-1])), shape);
    const inputIds = where(masked, r.maskId, where(random, drawn, ids));
    const labels = where(selected, ids, -100);
    return { inputIds, labels };
  });
}

/** Options of {@link trainWordPiece}. */
export interface TrainWordPieceOptions {
  /** The vocabulary size to reach (special tokens and the alphabet included). */
  vocabSize: number;
  /** Special tokens, first in the vocabulary (default `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`, ids 0–4). */
  specialTokens?: readonly string[];
  /** Lower-case and strip accents (BERT uncased; default true). */
  lowercase?: boolean;
  /** Pairs seen fewer times than this are never merged (default 2). */
  minFrequency?: number;
  /** Characters seen fewer times than this are left out of the alphabet (they become `[UNK]`; default 1). */
  minCharFrequency?: number;
}

const DEFAULT_SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
const CONT = '##';

/**
 * A WordPiece tokenizer trained on `texts` (see the module comment): special tokens first, then
 * the alphabet (each character seen at the start of a word, and `##` + each seen after it, most
 * frequent first), then merged pieces in the order they were made. Deterministic: ties go to the
 * pair that sorts first.
 *
 * @example
 * const tok = trainWordPiece(documents.map((d) => d.text), { vocabSize: 2000 });
 * tok.encode('the union'); // ids; tok.specialTokens.get('[MASK]') === 4
 */
export function trainWordPiece(texts: readonly string[], opts: TrainWordPieceOptions): WordPieceTokenizer {
  const op = 'trainWordPiece';
  if (!Array.isArray(texts)) throw new Error(`${op}: texts must be an array of strings, got ${got(texts)}`);
  texts.forEach((t, i) => {
    if (typeof t !== 'string') throw new Error(`${op}: texts[${i}] must be a string, got ${got(t)}`);
  });
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: expected options { vocabSize, ... }, got ${got(opts)}`);
  const o = optionsArg<TrainWordPieceOptions>(op, opts, ['vocabSize', 'specialTokens', 'lowercase', 'minFrequency', 'minCharFrequency']);
  const specials = o.specialTokens ?? DEFAULT_SPECIALS;
  if (!Array.isArray(specials) || !specials.every((s) => typeof s === 'string' && s !== ''))
    throw new Error(`${op}: specialTokens must be an array of non-empty strings, got ${got(specials)}`);
  if (new Set(specials).size !== specials.length) throw new Error(`${op}: specialTokens has a repeated token: ${show(specials)}`);
  if (!specials.includes('[UNK]')) throw new Error(`${op}: specialTokens must include '[UNK]' (the unknown token), got ${show(specials)}`);
  const vocabSize = checkNumber(op, 'vocabSize', o.vocabSize, { integer: true, min: specials.length, max: 2 ** 24 });
  if (o.lowercase !== undefined && typeof o.lowercase !== 'boolean') throw new Error(`${op}: lowercase must be true or false, got ${show(o.lowercase)}`);
  const lowercase = o.lowercase ?? true;
  const minFrequency = o.minFrequency === undefined ? 2 : checkNumber(op, 'minFrequency', o.minFrequency, { integer: true, min: 1 });
  const minCharFrequency = o.minCharFrequency === undefined ? 1 : checkNumber(op, 'minCharFrequency', o.minCharFrequency, { integer: true, min: 1 });

  // words and their counts, by the tokenizer's own basic tokenisation
  const basic = new WordPieceTokenizer(['[UNK]'], { lowercase, specialTokens: [] });
  const wordCounts = new Map<string, number>();
  for (const text of texts) for (const w of basic.basicTokenize(text)) wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);

  // the alphabet: first characters and ##-continuations, most frequent first
  const charCounts = new Map<string, number>();
  const words: string[][] = [];
  const freqs: number[] = [];
  for (const [w, c] of wordCounts) {
    const sym = Array.from(w).map((ch, i) => (i === 0 ? ch : CONT + ch));
    for (const s of sym) charCounts.set(s, (charCounts.get(s) ?? 0) + c);
    words.push(sym);
    freqs.push(c);
  }
  const vocab: string[] = [...specials];
  const inVocab = new Set(vocab);
  const byCount = (a: [string, number], b: [string, number]): number => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
  for (const [s, c] of [...charCounts].sort(byCount)) {
    if (vocab.length >= vocabSize) break;
    if (c < minCharFrequency || inVocab.has(s)) continue;
    vocab.push(s);
    inVocab.add(s);
  }

  // pair counts and which words hold each pair
  const SEP = '\u0000';
  const pairCounts = new Map<string, number>();
  const pairWords = new Map<string, Set<number>>();
  const addPairs = (wi: number, sign: 1 | -1): void => {
    const sym = words[wi]!;
    for (let j = 0; j + 1 < sym.length; j++) {
      const key = sym[j]! + SEP + sym[j + 1]!;
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + sign * freqs[wi]!);
      if (sign > 0) {
        let set = pairWords.get(key);
        if (!set) pairWords.set(key, (set = new Set()));
        set.add(wi);
      }
    }
  };
  // words with a character outside the alphabet cannot be pieced together: they stay [UNK]
  for (let wi = 0; wi < words.length; wi++) if (words[wi]!.every((s) => inVocab.has(s))) addPairs(wi, 1);

  while (vocab.length < vocabSize) {
    let best: string | null = null;
    let bestCount = minFrequency - 1;
    for (const [key, c] of pairCounts) if (c > bestCount || (c === bestCount && best !== null && c >= minFrequency && key < best)) [best, bestCount] = [key, c];
    if (best === null) break;
    const [a, b] = best.split(SEP) as [string, string];
    const merged = a + b.slice(CONT.length);
    const holders = pairWords.get(best)!;
    pairWords.delete(best);
    for (const wi of holders) {
      addPairs(wi, -1);
      const sym = words[wi]!;
      const next: string[] = [];
      for (let j = 0; j < sym.length; j++) {
        if (j + 1 < sym.length && sym[j] === a && sym[j + 1] === b) {
          next.push(merged);
          j++;
        } else next.push(sym[j]!);
      }
      words[wi] = next;
      addPairs(wi, 1);
    }
    for (const [key, c] of pairCounts) if (c <= 0) pairCounts.delete(key);
    if (!inVocab.has(merged)) {
      vocab.push(merged);
      inVocab.add(merged);
    }
  }
  return new WordPieceTokenizer(vocab, { lowercase, specialTokens: specials });
}
