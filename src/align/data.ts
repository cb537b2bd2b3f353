/**
 * Fine-tuning and preference data: JSONL records (instructions as `{prompt, response}` or
 * `{messages: [{role, content}]}`, preference pairs as `{prompt, chosen, rejected}`, what a
 * labelling tool writes), checked line by line (a bad line is an Error naming the source, the
 * line and the problem: nothing is skipped silently), and batches of prompt + response tokens
 * whose labels score the response only.
 * @module
 */
import { tensor } from '../tensor/ops/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkNumber, show } from '../tensor/validate.js';
import { options } from '../nn/validate.js';
import { IGNORE_INDEX } from './losses.js';

/** One turn of a conversation. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** A preference pair: two responses to one prompt, the first preferred. */
export interface PreferencePair {
  prompt: string;
  chosen: string;
  rejected: string;
}

/** An instruction example as a conversation (a `{prompt, response}` record becomes user + assistant). */
export interface InstructionExample {
  messages: ChatMessage[];
}

// Each non-blank line of `text` parsed as JSON and checked by `check`; errors name source:line.
function parseJsonl<T>(op: string, text: string, source: string, check: (rec: Record<string, unknown>, where: string) => T): T[] {
  if (typeof text !== 'string') throw new Error(`${op}: expected the file's text (a string), got ${show(text)}`);
  if (typeof source !== 'string' || source === '') throw new Error(`${op}: source must be a non-empty string (the file's name), got ${show(source)}`);
  const out: T[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const where = `${source}:${i + 1}`;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new Error(`${where}: not JSON (${(e as Error).message})`);
    }
    if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) throw new Error(`${where}: expected a JSON object, got ${show(rec)}`);
    out.push(check(rec as Record<string, unknown>, where));
  }
  if (out.length === 0) throw new Error(`${source}: no records (every line is blank)`);
  return out;
}

function text(rec: Record<string, unknown>, key: string, where: string): string {
  const v = rec[key];
  if (typeof v !== 'string') throw new Error(`${where}: '${key}' must be a string, got ${v === undefined ? 'nothing' : show(v)}`);
  if (v.trim() === '') throw new Error(`${where}: '${key}' is empty`);
  return v;
}

/** Preference pairs from JSONL (`{"prompt": …, "chosen": …, "rejected": …}` per line). */
export function parsePreferencePairs(jsonl: string, source = 'parsePreferencePairs'): PreferencePair[] {
  return parseJsonl('parsePreferencePairs', jsonl, source, (rec, where) => {
    const pair = { prompt: text(rec, 'prompt', where), chosen: text(rec, 'chosen', where), rejected: text(rec, 'rejected', where) };
    if (pair.chosen === pair.rejected) throw new Error(`${where}: 'chosen' and 'rejected' are the same response`);
    return pair;
  });
}

/** Instruction examples from JSONL: `{"prompt", "response"}` or `{"messages": [{role, content}, …]}` ending with the assistant. */
export function parseInstructions(jsonl: string, source = 'parseInstructions'): InstructionExample[] {
  return parseJsonl('parseInstructions', jsonl, source, (rec, where) => {
    if ('messages' in rec) {
      const ms = rec.messages;
      if (!Array.isArray(ms) || ms.length === 0) throw new Error(`${where}: 'messages' must be a non-empty array, got ${show(ms)}`);
      const messages = ms.map((m, j) => {
        if (m === null || typeof m !== 'object') throw new Error(`${where}: messages[${j}] must be an object, got ${show(m)}`);
        const r = (m as Record<string, unknown>).role;
        if (r !== 'system' && r !== 'user' && r !== 'assistant') throw new Error(`${where}: messages[${j}].role must be system, user or assistant, got ${show(r)}`);
        return { role: r, content: text(m as Record<string, unknown>, 'content', `${where}: messages[${j}]`) } as ChatMessage;
      });
      if (messages[messages.length - 1]!.role !== 'assistant') throw new Error(`${where}: the last message must be the assistant's (the response to learn)`);
      return { messages };
    }
    if (!('response' in rec)) throw new Error(`${where}: a record needs 'prompt' and 'response', or 'messages'; it has ${Object.keys(rec).join(', ') || 'no keys'}`);
    return { messages: [{ role: 'user', content: text(rec, 'prompt', where) }, { role: 'assistant', content: text(rec, 'response', where) }] };
  });
}

/** A tokenized example: the prompt's tokens, then the response's (the part that is scored). */
export interface TokenizedExample {
  prompt: number[];
  response: number[];
}

// blockSize, pad and backend of batchExamples and packExamples, checked
function layoutOptions(op: string, opts: unknown): { blockSize: number; pad: number } {
  const o = options(op, opts as Record<string, unknown>, ['blockSize', 'pad', 'backend']);
  const blockSize = checkNumber(op, 'blockSize', o.blockSize, { integer: true, min: 1 });
  const pad = o.pad === undefined ? 0 : checkNumber(op, 'pad', o.pad, { integer: true, min: 0, max: 2 ** 31 - 1 });
  if (o.backend !== undefined && typeof o.backend !== 'string') throw new Error(`${op}: backend must be a backend's name, got ${show(o.backend)}`);
  return { blockSize, pad };
}

// examples: a non-empty array of { prompt, response } lists of token ids
function checkExamples(op: string, examples: unknown): void {
  if (!Array.isArray(examples)) throw new Error(`${op}: examples must be an array of { prompt, response } token lists, got ${show(examples)}`);
  if (examples.length === 0) throw new Error(`${op}: no examples`);
  examples.forEach((e, i) => {
    if (e === null || typeof e !== 'object') throw new Error(`${op}: example ${i} must be { prompt, response }, got ${show(e)}`);
    for (const k of ['prompt', 'response'] as const) {
      const v = (e as Record<string, unknown>)[k];
      if (!Array.isArray(v) || v.some((t) => !Number.isInteger(t) || t < 0 || t > 2 ** 31 - 1)) throw new Error(`${op}: example ${i}'s ${k} must be a list of token ids, got ${show(v)}`);
    }
  });
}

/** What {@link batchExamples} returns: inputs, next-token labels and each row's length. */
export interface ExampleBatch {
  /** `[B, T]` i32: prompt + response, right-padded with `pad`. */
  idx: Tensor;
  /** `[B, T]` i32: labels[t] = the token after position t where it is a response token, else {@link IGNORE_INDEX}. */
  labels: Tensor;
  /** Tokens per row before padding (the reward model reads its last token). */
  lengths: number[];
}

/**
 * Examples as one batch of width `T` = the longest row (at most `blockSize`): each row is prompt +
 * response, its prompt cut from the left when the row is longer than blockSize (the response is
 * kept whole; a response that alone does not fit, with a token of prompt before it, is an
 * error), then right-padded. Row b's labels score its response tokens: labels[b, t] is token t + 1
 * where that is a response token.
 */
export function batchExamples(examples: readonly TokenizedExample[], opts: { blockSize: number; pad?: number; backend?: string }): ExampleBatch {
  const op = 'batchExamples';
  const { blockSize, pad } = layoutOptions(op, opts);
  checkExamples(op, examples);
  const rows = examples.map((e, i) => {
    if (e.response.length === 0) throw new Error(`${op}: example ${i} has an empty response`);
    if (e.prompt.length === 0) throw new Error(`${op}: example ${i} has an empty prompt (the first response token needs a token before it)`);
    if (e.response.length >= blockSize) throw new Error(`${op}: example ${i}'s response has ${e.response.length} tokens; with a token of prompt it does not fit blockSize ${blockSize}`);
    const keep = Math.min(e.prompt.length, blockSize - e.response.length);
    const toks = [...e.prompt.slice(e.prompt.length - keep), ...e.response];
    return { toks, start: keep }; // tokens at index ≥ start are the response
  });
  const T = Math.max(...rows.map((r) => r.toks.length));
  const idx = new Int32Array(rows.length * T).fill(pad);
  const labels = new Int32Array(rows.length * T).fill(IGNORE_INDEX);
  const lengths: number[] = [];
  rows.forEach(({ toks, start }, b) => {
    for (let t = 0; t < toks.length; t++) idx[b * T + t] = toks[t]!;
    for (let t = start - 1; t + 1 < toks.length; t++) labels[b * T + t] = toks[t + 1]!;
    lengths.push(toks.length);
  });
  const place = { dtype: 'i32' as const, ...(opts.backend ? { backend: opts.backend } : {}) };
  return { idx: tensor(idx, [rows.length, T], place), labels: tensor(labels, [rows.length, T], place), lengths };
}

/** What {@link packExamples} returns: full rows of several examples each, for `GPT.forward(idx, null, { positions, attnMask })`. */
export interface PackedBatch {
  /** `[R, T]` i32, T = blockSize; the tail of a row is `pad`. */
  idx: Tensor;
  /** `[R, T]` i32: the next token where it is a response token of the same example, else {@link IGNORE_INDEX}. */
  labels: Tensor;
  /** `[R, T]` i32: positions restart at 0 with each example. */
  positions: Tensor;
  /** `[R, 1, T, T]` bool: a token sees only tokens of its own example (causality is the model's). */
  attnMask: Tensor;
  /** The examples (their indices) in each row. */
  rows: number[][];
}

/**
 * Pack short examples into full rows of `blockSize` tokens, in order, starting a new row when
 * the next example does not fit (an example longer than blockSize is cut as in
 * {@link batchExamples}). The positions and the mask keep examples apart: the model sees each
 * as if it were alone in its row (a test checks the logits), so packing wastes no compute on
 * padding without mixing examples.
 */
export function packExamples(examples: readonly TokenizedExample[], opts: { blockSize: number; pad?: number; backend?: string }): PackedBatch {
  const op = 'packExamples';
  const { blockSize, pad } = layoutOptions(op, opts);
  checkExamples(op, examples);
  const rows: { toks: number[]; start: number; ex: number }[][] = [];
  let row: { toks: number[]; start: number; ex: number }[] = [];
  let used = 0;
  examples.forEach((e, i) => {
    if (e.prompt.length === 0 || e.response.length === 0) throw new Error(`${op}: example ${i} has an empty ${e.prompt.length === 0 ? 'prompt' : 'response'}`);
    if (e.response.length >= blockSize) throw new Error(`${op}: example ${i}'s response has ${e.response.length} tokens; with a token of prompt it does not fit blockSize ${blockSize}`);
    const keep = Math.min(e.prompt.length, blockSize - e.response.length);
    const toks = [...e.prompt.slice(e.prompt.length - keep), ...e.response];
    if (used + toks.length > blockSize && row.length) {
      rows.push(row);
      row = [];
      used = 0;
    }
    row.push({ toks, start: keep, ex: i });
    used += toks.length;
  });
  rows.push(row);
  const R = rows.length, T = blockSize;
  const idx = new Int32Array(R * T).fill(pad);
  const labels = new Int32Array(R * T).fill(IGNORE_INDEX);
  const positions = new Int32Array(R * T);
  const seg = new Int32Array(R * T).fill(-1);
  rows.forEach((r, b) => {
    let at = b * T;
    r.forEach(({ toks, start }, k) => {
      for (let t = 0; t < toks.length; t++) {
        idx[at + t] = toks[t]!;
        positions[at + t] = t;
        seg[at + t] = k;
        if (t >= start - 1 && t + 1 < toks.length) labels[at + t] = toks[t + 1]!;
      }
      at += toks.length;
    });
  });
  const mask = new Uint8Array(R * T * T);
  for (let b = 0; b < R; b++)
    for (let i = 0; i < T; i++)
      for (let j = 0; j < T; j++) mask[(b * T + i) * T + j] = seg[b * T + i] === seg[b * T + j] ? 1 : 0;
  const place = opts.backend ? { backend: opts.backend } : {};
  return {
    idx: tensor(idx, [R, T], { ...place, dtype: 'i32' }),
    labels: tensor(labels, [R, T], { ...place, dtype: 'i32' }),
    positions: tensor(positions, [R, T], { ...place, dtype: 'i32' }),
    attnMask: tensor(mask, [R, 1, T, T], { ...place, dtype: 'bool' }),
    rows: rows.map((r) => r.map((x) => x.ex)),
  };
}
