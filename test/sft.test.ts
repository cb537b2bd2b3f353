/**
 * Supervised fine-tuning (src/finetune/sft.ts): special tokens added to a trained tokenizer,
 * embeddings resized with mean rows, the chat template's prompt/response split, and the effect
 * of fine-tuning with the loss on response tokens only (exact match and ROUGE-L of greedy
 * generations rise from 0 to 1 on the taught conversations).
 */
import { describe, expect, it } from 'vitest';
import {
  AdamW,
  BPETokenizer,
  CHAT_TOKENS,
  GPT,
  Generator,
  addSpecialTokens,
  batchExamples,
  chatExample,
  chatPrompt,
  evaluateResponses,
  noGrad,
  packExamples,
  resizeTokenEmbeddings,
  sequenceLogProbs,
  tensor,
  tidy,
  type ChatMessage,
} from '../src/index.js';
import { describeBackends, optimize } from './harness.js';

const corpus = ['the cat sat on the mat', 'a dog ran in the park', 'what is the colour of the sky', 'the sky is blue', 'grass is green'].join('\n');
const base = BPETokenizer.train(corpus, { vocabSize: 300 });
const tok = addSpecialTokens(base);

describe('chat template and embeddings', () => {
  it('addSpecialTokens appends the chat tokens and keeps ordinary text as it was', () => {
    expect(tok.vocabSize).toBe(base.vocabSize + 4);
    for (const [i, t] of Object.values(CHAT_TOKENS).entries()) expect(tok.encode(t)).toEqual([base.vocabSize + i]);
    expect(tok.encode('the sky is blue')).toEqual(base.encode('the sky is blue'));
    expect(tok.decode(tok.encode(`${CHAT_TOKENS.user}hi${CHAT_TOKENS.end}`))).toBe('<|user|>hi<|end|>');
    expect(addSpecialTokens(tok).vocabSize).toBe(tok.vocabSize); // already there: unchanged
  });

  it('chatExample splits a conversation into the prompt up to the assistant header and the response with its end token', () => {
    const msgs: ChatMessage[] = [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'sky?' }, { role: 'assistant', content: 'blue' }];
    const ex = chatExample(tok, msgs);
    expect(tok.decode(ex.prompt)).toBe('<|system|>be brief<|end|><|user|>sky?<|end|><|assistant|>');
    expect(tok.decode(ex.response)).toBe('blue<|end|>');
    expect(chatPrompt(msgs.slice(0, -1))).toBe(tok.decode(ex.prompt));
    expect(() => chatExample(base, msgs)).toThrow(/^chatExample: the tokenizer lacks the special token <\|system\|>/);
  });

  it('resizeTokenEmbeddings keeps every old logit and starts the new rows at the mean', async () => {
    const m = new GPT({ vocabSize: base.vocabSize, blockSize: 16, nLayer: 1, nHead: 2, nEmbd: 16, dropout: 0, bias: true, tiedHead: true }, { backend: 'ref', generator: new Generator(1) });
    const big = resizeTokenEmbeddings(m, tok.vocabSize);
    const V = base.vocabSize;
    const w = Array.from(await big.stateDict()['transformer.wte.weight']!.data());
    const old = Array.from(await m.stateDict()['transformer.wte.weight']!.data());
    expect(w.slice(0, V * 16)).toEqual(old);
    for (let j = 0; j < 16; j++) {
      let mean = 0;
      for (let i = 0; i < V; i++) mean += old[i * 16 + j]!;
      for (let r = V; r < tok.vocabSize; r++) expect(w[r * 16 + j]!).toBeCloseTo(mean / V, 6);
    }
    const idx = tensor(base.encode('the cat sat'), [1, 3], { dtype: 'i32', backend: 'ref' });
    const a = Array.from(await tidy(() => m.forward(idx, null).logits).data());
    const b = Array.from(await tidy(() => big.forward(idx, null).logits).data());
    for (let t = 0; t < 3; t++) expect(b.slice(t * tok.vocabSize, t * tok.vocabSize + V)).toEqual(a.slice(t * V, (t + 1) * V));
    expect(() => resizeTokenEmbeddings(m, V - 1)).toThrow(/^resizeTokenEmbeddings: vocabSize must be an integer ≥ the model's/);
    m.dispose();
    big.dispose();
  });
});

const conversations: { messages: ChatMessage[] }[] = [
  { messages: [{ role: 'user', content: 'what is the colour of the sky' }, { role: 'assistant', content: 'blue' }] },
  { messages: [{ role: 'user', content: 'what is the colour of grass' }, { role: 'assistant', content: 'green' }] },
  { messages: [{ role: 'user', content: 'where did the dog run' }, { role: 'assistant', content: 'in the park' }] },
  { messages: [{ role: 'user', content: 'where did the cat sit' }, { role: 'assistant', content: 'on the mat' }] },
];

describeBackends('supervised fine-tuning', (backend) => {
  it('training on response tokens only teaches the responses: exact match and ROUGE-L rise from 0 to 1', async () => {
    const m = new GPT({ vocabSize: tok.vocabSize, blockSize: 32, nLayer: 2, nHead: 2, nEmbd: 32, dropout: 0, bias: true, tiedHead: true }, { backend, generator: new Generator(2) });
    const examples = conversations.map((c) => chatExample(tok, c.messages));
    const packed = packExamples(examples, { blockSize: 32, backend });
    const before = await evaluateResponses(m, tok, conversations, { maxNewTokens: 6 });
    expect(before.exactMatch).toBe(0);
    const scored = examples.reduce((n, e) => n + e.response.length, 0);
    await optimize(new AdamW(m.parameters(), { lr: 1e-2, weightDecay: 0 }), 60, () =>
      sequenceLogProbs(m.forward(packed.idx, null, { positions: packed.positions, attnMask: packed.attnMask }).logits, packed.labels).sum().neg().div(scored),
    );
    const after = await evaluateResponses(m, tok, conversations, { maxNewTokens: 6 });
    console.log(`[sft] ${backend}: exact match ${before.exactMatch} → ${after.exactMatch}, ROUGE-L ${before.rougeL.toFixed(3)} → ${after.rougeL.toFixed(3)}; ${JSON.stringify(after.predictions)}`);
    expect(after.predictions).toEqual(['blue', 'green', 'in the park', 'on the mat']);
    expect(after.exactMatch).toBe(1);
    expect(after.rougeL).toBe(1);
    // scored unpacked (one example per row, no mask), each response is near certain: what was
    // learnt in packed rows carries over to examples alone
    const b = batchExamples(examples, { blockSize: 32, backend });
    const perToken = await tidy(() => noGrad(() => sequenceLogProbs(m.forward(b.idx, null).logits, b.labels, { average: true }))).data();
    for (const v of perToken) expect(v).toBeGreaterThan(-0.1); // responses: near certain
    for (const t of [packed.idx, packed.labels, packed.positions, packed.attnMask, b.idx, b.labels]) t.dispose();
    m.dispose();
  });
});
