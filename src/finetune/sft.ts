/**
 * Supervised fine-tuning pieces: a chat template with special tokens added to a trained (or
 * GPT-2) tokenizer, the model's embeddings resized for them (new rows start as the mean of the
 * old, so the new tokens start as an "average" token rather than noise), and conversations
 * turned into prompt + response tokens for {@link batchExamples} and {@link packExamples}.
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import type { ChatMessage } from '../align/data.js';
import type { TokenizedExample } from '../align/data.js';
import { BPETokenizer } from '../data/bpe.js';
import { tidy } from '../tensor/memory.js';
import { concat } from '../tensor/ops/shape_ops.js';
import { checkNumber, show } from '../tensor/validate.js';
import { options } from '../nn/validate.js';
import { GPT } from '../nn/gpt.js';
import { generate } from '../nn/generate.js';
import { exactMatch } from '../metrics/qa.js';
import { rouge } from '../metrics/rouge.js';
import { tensor } from '../tensor/ops/creation.js';

/** The template's special tokens: a header per role and the end of a turn. */
export const CHAT_TOKENS = {
  system: '<|system|>',
  user: '<|user|>',
  assistant: '<|assistant|>',
  end: '<|end|>',
} as const;

/**
 * `tokenizer` with `tokens` added as special tokens (ids from its vocabSize on; ones it already
 * has keep their ids). Returns a new tokenizer; ordinary text encodes exactly as before.
 */
export function addSpecialTokens(tokenizer: BPETokenizer, tokens: readonly string[] = Object.values(CHAT_TOKENS)): BPETokenizer {
  if (!(tokenizer instanceof BPETokenizer)) throw new Error(`addSpecialTokens: expected a BPETokenizer, got ${show(tokenizer)}`);
  if (!Array.isArray(tokens)) throw new Error(`addSpecialTokens: tokens must be an array of strings, got ${show(tokens)}`);
  const json = tokenizer.toJSON();
  let next = tokenizer.vocabSize;
  for (const t of tokens) {
    if (typeof t !== 'string' || t === '') throw new Error(`addSpecialTokens: a special token must be a non-empty string, got ${show(t)}`);
    if (!(t in json.specialTokens)) json.specialTokens[t] = next++;
  }
  return BPETokenizer.fromJSON(json);
}

/**
 * A GPT like `model` with a vocabulary of `vocabSize` (≥ the model's): the same weights, and new
 * embedding rows (and untied head rows) set to the mean of the old ones. Returns a new model on
 * the same backend and dtype; `model` is left as it was.
 */
export function resizeTokenEmbeddings(model: GPT, vocabSize: number): GPT {
  const op = 'resizeTokenEmbeddings';
  if (!(model instanceof GPT)) throw new Error(`${op}: expected a GPT, got ${show(model)}`);
  const old = model.config.vocabSize;
  if (!Number.isInteger(vocabSize) || vocabSize < old) throw new Error(`${op}: vocabSize must be an integer ≥ the model's ${old}, got ${show(vocabSize)}`);
  const p = model.parameters()[0]!;
  const bigger = new GPT({ ...model.config, vocabSize }, { dtype: p.dtype, backend: p.backend.name });
  const state = model.stateDict();
  const grow = (w: typeof p): typeof p => (vocabSize === old ? w : concat([w, w.mean(0, true).expand([vocabSize - old, w.shape[1]!])], 0));
  noGrad(() =>
    tidy(() => {
      const wte = grow(state['transformer.wte.weight']!);
      // a tied head is the embedding under a second name
      const next: Record<string, typeof p> = { ...state, 'transformer.wte.weight': wte, 'lm_head.weight': model.config.tiedHead ? wte : grow(state['lm_head.weight']!) };
      bigger.loadStateDict(next);
    }),
  );
  return bigger;
}

/**
 * A conversation as prompt + response tokens under the chat template: every turn is
 * `<|role|>content<|end|>`; the prompt is all turns before the last (an assistant turn) plus its
 * header `<|assistant|>`, the response its content and `<|end|>` (so the model learns to stop).
 * The tokenizer must have {@link CHAT_TOKENS} (see {@link addSpecialTokens}).
 */
// messages: a list of { role, content } turns
function messagesArg(op: string, messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages)) throw new Error(`${op}: messages must be an array of { role, content }, got ${show(messages)}`);
  messages.forEach((m, i) => {
    const r = (m as ChatMessage | null)?.role;
    if (r !== 'system' && r !== 'user' && r !== 'assistant') throw new Error(`${op}: messages[${i}].role must be system, user or assistant, got ${show(m === null || typeof m !== 'object' ? m : r)}`);
    if (typeof (m as ChatMessage).content !== 'string') throw new Error(`${op}: messages[${i}].content must be a string, got ${show((m as ChatMessage).content)}`);
  });
  return messages as ChatMessage[];
}

export function chatExample(tokenizer: BPETokenizer, messages: readonly ChatMessage[]): TokenizedExample {
  const op = 'chatExample';
  if (!(tokenizer instanceof BPETokenizer)) throw new Error(`${op}: expected a BPETokenizer, got ${show(tokenizer)}`);
  messagesArg(op, messages);
  for (const t of Object.values(CHAT_TOKENS))
    if (!tokenizer.specialTokens.has(t)) throw new Error(`${op}: the tokenizer lacks the special token ${t} (addSpecialTokens first)`);
  if (messages.length === 0 || messages[messages.length - 1]!.role !== 'assistant') throw new Error(`${op}: the conversation must end with an assistant turn`);
  const turn = (m: ChatMessage): string => `${CHAT_TOKENS[m.role]}${m.content}${CHAT_TOKENS.end}`;
  const last = messages[messages.length - 1]!;
  const prompt = messages.slice(0, -1).map(turn).join('') + CHAT_TOKENS.assistant;
  return { prompt: tokenizer.encode(prompt), response: tokenizer.encode(`${last.content}${CHAT_TOKENS.end}`) };
}

/** The text of a prompt for generation under the template: the turns, then the assistant's header. */
export function chatPrompt(messages: readonly ChatMessage[]): string {
  return messagesArg('chatPrompt', messages).map((m) => `${CHAT_TOKENS[m.role]}${m.content}${CHAT_TOKENS.end}`).join('') + CHAT_TOKENS.assistant;
}

/** What {@link evaluateResponses} returns. */
export interface ResponseEval {
  /** Mean SQuAD-style exact match of the generated responses against the references. */
  exactMatch: number;
  /** Mean ROUGE-L F-measure. */
  rougeL: number;
  /** The generated responses, in order. */
  predictions: string[];
}

/**
 * Generate a response (greedy, up to `maxNewTokens`, stopping at `<|end|>`) to each
 * conversation without its last (assistant) turn, and score it against that turn: exact match
 * and ROUGE-L, averaged. The held-out evaluation of supervised fine-tuning.
 */
export async function evaluateResponses(model: GPT, tokenizer: BPETokenizer, conversations: readonly { messages: ChatMessage[] }[], opts: { maxNewTokens?: number } = {}): Promise<ResponseEval> {
  const op = 'evaluateResponses';
  if (!(model instanceof GPT)) throw new Error(`${op}: model must be a GPT, got ${show(model)}`);
  if (!(tokenizer instanceof BPETokenizer)) throw new Error(`${op}: expected a BPETokenizer, got ${show(tokenizer)}`);
  if (!Array.isArray(conversations)) throw new Error(`${op}: conversations must be an array of { messages }, got ${show(conversations)}`);
  conversations.forEach((c, i) => messagesArg(`${op}: conversations[${i}]`, (c as { messages?: unknown } | null)?.messages));
  const o = options(op, opts, ['maxNewTokens']);
  const maxNew = o.maxNewTokens === undefined ? 64 : checkNumber(op, 'maxNewTokens', o.maxNewTokens, { integer: true, min: 1 });
  if (conversations.length === 0) throw new Error(`${op}: no conversations`);
  const end = tokenizer.specialTokens.get(CHAT_TOKENS.end);
  if (end === undefined) throw new Error(`${op}: the tokenizer lacks ${CHAT_TOKENS.end} (addSpecialTokens first)`);
  const backend = model.parameters()[0]!.backend.name;
  const was = model.training;
  model.eval();
  const predictions: string[] = [];
  let em = 0;
  let rl = 0;
  try {
    for (const c of conversations) {
      const ref = c.messages[c.messages.length - 1]!;
      if (ref.role !== 'assistant') throw new Error(`${op}: each conversation must end with the assistant turn to compare against`);
      const ids = tokenizer.encode(chatPrompt(c.messages.slice(0, -1)));
      const room = model.config.blockSize - ids.length;
      if (room < 1) throw new Error(`${op}: a prompt of ${ids.length} tokens leaves no room in blockSize ${model.config.blockSize}`);
      const idx = tensor(ids, [1, ids.length], { dtype: 'i32', backend });
      const out = await generate(model, idx, { maxNewTokens: Math.min(maxNew, room), greedy: true, eos: end });
      const toks = Array.from(await out.data()).slice(ids.length);
      idx.dispose();
      out.dispose();
      const stop = toks.indexOf(end);
      const text = tokenizer.decode(stop < 0 ? toks : toks.slice(0, stop));
      predictions.push(text);
      em += exactMatch(text, ref.content);
      rl += rouge(text, ref.content, { types: ['rougeL'] }).rougeL.fmeasure;
    }
  } finally {
    model.train(was);
  }
  return { exactMatch: em / conversations.length, rougeL: rl / conversations.length, predictions };
}
