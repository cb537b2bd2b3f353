/**
 * Style guides (src/finetune/style.ts): parsing with errors that name the rule, each rule's
 * check, the rewrite that makes any text follow every rule (a property over random texts and
 * guides), and the effect of fine-tuning on styled data: the held-out style score rises to 1.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AdamW,
  BPETokenizer,
  GPT,
  Generator,
  addSpecialTokens,
  applyStyle,
  chatExample,
  evaluateResponses,
  followsRule,
  packExamples,
  parseStyleGuide,
  sequenceLogProbs,
  styleReport,
  styleScore,
  styleSystemPrompt,
  type ChatMessage,
  type StyleGuide,
  type StyleRule,
} from '../src/index.js';
import { describeBackends, optimize } from './harness.js';

const terse: StyleGuide = parseStyleGuide(
  '{"name":"terse","tone":"plain and brief","rules":[{"kind":"case","value":"lower"},{"kind":"endsWith","value":"."},{"kind":"maxWords","value":4},{"kind":"forbid","words":["very","really"]},{"kind":"replace","from":"utilize","to":"use"}]}',
);

describe('style guides', () => {
  it('parse, state the rules in a system prompt, check and score', () => {
    expect(styleSystemPrompt(terse)).toBe('Style: terse, plain and brief. Rules: write in lowercase; end with "."; use at most 4 words; never use the words "very", "really"; say "use", not "utilize".');
    expect(styleScore(terse, 'we use it.')).toBe(1);
    expect(styleScore(terse, 'We Really utilize it a lot')).toBeCloseTo(0, 12);
    expect(followsRule({ kind: 'forbid', words: ['very'] }, 'everyday')).toBe(true); // whole words only
    expect(followsRule({ kind: 'forbid', words: ['very'] }, 'Very good')).toBe(false);
    expect(styleReport(terse, ['ok.', 'Not OK'])).toEqual({
      score: (1 + 3 / 5) / 2,
      rules: [
        { rule: 'write in lowercase', passRate: 0.5 },
        { rule: 'end with "."', passRate: 0.5 },
        { rule: 'use at most 4 words', passRate: 1 },
        { rule: 'never use the words "very", "really"', passRate: 1 },
        { rule: 'say "use", not "utilize"', passRate: 1 },
      ],
    });
    expect(() => parseStyleGuide('{"name":"x","rules":[{"kind":"shout"}]}', 'g.json')).toThrow(/^g\.json: rule 0: 'kind' must be one of case, startsWith, endsWith, maxWords, forbid, replace, got 'shout'/);
    expect(() => parseStyleGuide('{"name":"x","rules":[{"kind":"maxWords","value":0}]}', 'g.json')).toThrow(/^g\.json: rule 0 \(maxWords\): 'value' must be a positive integer, got 0/);
    expect(() => parseStyleGuide('{"name":"x","rules":[]}', 'g.json')).toThrow(/^g\.json: 'rules' must be a non-empty array/);
    expect(() => parseStyleGuide('{oops', 'g.json')).toThrow(/^g\.json: not JSON/);
  });

  it('applyStyle makes any text follow every rule of any consistent guide', () => {
    const rule: fc.Arbitrary<StyleRule> = fc.oneof(
      fc.constantFrom<StyleRule>({ kind: 'case', value: 'lower' }, { kind: 'case', value: 'upper' }),
      fc.constantFrom<StyleRule>({ kind: 'endsWith', value: '.' }, { kind: 'endsWith', value: '!' }),
      fc.constantFrom<StyleRule>({ kind: 'startsWith', value: '- ' }),
      // at least 2: a guide whose limit leaves no room beside the '- ' prefix contradicts itself
      fc.integer({ min: 2, max: 8 }).map((n): StyleRule => ({ kind: 'maxWords', value: n })),
      fc.constantFrom<StyleRule>({ kind: 'forbid', words: ['very', 'really'] }, { kind: 'replace', from: 'utilize', to: 'use' }),
    );
    const text = fc.array(fc.constantFrom('We', 'really', 'utilize', 'the', 'VERY', 'best', 'tools', 'today', 'and', 'tomorrow'), { maxLength: 12 }).map((w) => w.join(' '));
    fc.assert(
      fc.property(fc.uniqueArray(rule, { minLength: 1, maxLength: 5, selector: (r) => (r.kind === 'case' || r.kind === 'endsWith' ? r.kind : JSON.stringify(r)) }), text, (rules, t) => {
        const g: StyleGuide = { name: 'g', rules };
        const styled = applyStyle(g, t);
        for (const r of rules) if (!followsRule(r, styled)) throw new Error(`${JSON.stringify(r)} fails on ${JSON.stringify(styled)} (from ${JSON.stringify(t)})`);
      }),
      { numRuns: 300 },
    );
  });
});

describeBackends('style-guide fine-tuning', (backend) => {
  it('fine-tuning on responses rewritten to a guide, under its system prompt, raises the held-out style score to 1', async () => {
    const base = BPETokenizer.train('what colour is the sky the sky is blue grass is green a dog ran in the park', { vocabSize: 280 });
    const tok = addSpecialTokens(base);
    const guide: StyleGuide = { name: 'shout', rules: [{ kind: 'case', value: 'upper' }, { kind: 'endsWith', value: '!' }] };
    const qa: [string, string][] = [['sky', 'blue'], ['grass', 'green'], ['dog', 'in the park'], ['sea', 'blue'], ['leaf', 'green'], ['cat', 'on the mat']];
    const convo = ([q, a]: [string, string]): { messages: ChatMessage[] } => ({
      messages: [{ role: 'system', content: 'shout' }, { role: 'user', content: q }, { role: 'assistant', content: applyStyle(guide, a) }],
    });
    const train = qa.slice(0, 4).map(convo), held = qa.slice(4).map(convo);
    const m = new GPT({ vocabSize: tok.vocabSize, blockSize: 32, nLayer: 1, nHead: 2, nEmbd: 32, dropout: 0, bias: true, tiedHead: true }, { backend, generator: new Generator(4) });
    const packed = packExamples(train.map((c) => chatExample(tok, c.messages)), { blockSize: 32, backend });
    const before = styleReport(guide, (await evaluateResponses(m, tok, held, { maxNewTokens: 6 })).predictions).score;
    await optimize(new AdamW(m.parameters(), { lr: 1e-2, weightDecay: 0 }), 40, () =>
      sequenceLogProbs(m.forward(packed.idx, null, { positions: packed.positions, attnMask: packed.attnMask }).logits, packed.labels).sum().neg().div(20),
    );
    const preds = (await evaluateResponses(m, tok, held, { maxNewTokens: 6 })).predictions;
    const after = styleReport(guide, preds).score;
    console.log(`[style] ${backend}: held-out style score ${before.toFixed(3)} → ${after.toFixed(3)} ${JSON.stringify(preds)}`);
    expect(before).toBeLessThan(0.5);
    expect(after).toBe(1);
    for (const t of [packed.idx, packed.labels, packed.positions, packed.attnMask]) t.dispose();
    m.dispose();
  });
});
