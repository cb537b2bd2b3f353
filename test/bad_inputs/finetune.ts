/**
 * Bad-input table: fine-tuning and alignment (src/finetune, src/align). The pipelines that run a
 * whole job from a `kiln train` folder are exempt here: their arguments and bad files are what
 * test/cli.test.ts and cli_bad_inputs.test.ts exercise through the commands that call them.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BPETokenizer,
  BottleneckAdapter,
  GPT,
  Generator,
  Linear,
  RewardModel,
  addSpecialTokens,
  applyLoRA,
  batchExamples,
  defaultBackendName,
  loadAdapters,
  ppo,
  rand,
  saveAdapters,
  tensor,
  type StyleGuide,
  type Tensor,
} from '../../src/index.js';
import { T, bool, choice, construct, fixed, func, ids, instance, int, num, opts, str, type Bad, type Param, type Table } from './sweep.js';

const OPTIONAL = { optional: true } as const;
const root = mkdtempSync(join(tmpdir(), 'kiln-bad-finetune-'));
const TINY = { vocabSize: 12, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8 };
const gpt = (): GPT => new GPT(TINY, { backend: defaultBackendName(), generator: new Generator(0) });
const withLoRA = (): GPT => {
  const m = gpt();
  applyLoRA(m, { rank: 2 });
  return m;
};
const base = BPETokenizer.train('a b c a b c abc', { vocabSize: 262 });
const chatTokenizer = addSpecialTokens(base);

const bad = (value: unknown, needle: string | string[]): Bad => ({ value, needle });
const model = (good: () => unknown = gpt): Param => instance('model', good);
const tokenizer = (good: () => unknown = () => base): Param => instance('tokenizer', good);

const guide = (): StyleGuide => ({ name: 'g', rules: [{ kind: 'case', value: 'lower' }, { kind: 'endsWith', value: '.' }] });
const guideArg = (): Param => ({
  kind: 'guide',
  good: guide,
  refuse: [bad(5, '5'), bad(null, 'null'), bad({ name: 'g', rules: [] }, 'rules'), bad({ name: 'g', rules: [{ kind: 'shout' }] }, 'shout'), bad('{"name":"g"}', 'string')],
});
const ruleArg = (): Param => ({ kind: 'rule', good: () => ({ kind: 'maxWords', value: 3 }), refuse: [bad(5, '5'), bad({ kind: 'shout' }, 'shout'), bad({ kind: 'maxWords', value: 0 }, '0')] });
const messages = (): Param => ({
  kind: 'messages',
  good: () => [{ role: 'user', content: 'a b' }, { role: 'assistant', content: 'c' }],
  refuse: [bad(5, '5'), bad(null, 'null'), bad([{ role: 'bot', content: 'x' }], 'bot'), bad([{ role: 'user', content: 5 }], '5')],
});
const examples = (): Param => ({
  kind: 'examples',
  good: () => [{ prompt: [1, 2], response: [3] }, { prompt: [4], response: [5, 6] }],
  refuse: [bad(5, '5'), bad(null, 'null'), bad([], 'no examples'), bad([{ prompt: [1], response: ['x'] }], 'x'), bad([{ prompt: [-1], response: [1] }], '-1'), bad([5], '5')],
});
const layout = (): Param => opts({ blockSize: int({ min: 1 }), pad: int({ min: 0, optional: true }), backend: str(() => defaultBackendName(), OPTIONAL) }, { good: () => ({ blockSize: 8 }), optional: false });
const logits = (): Param => T(() => rand([2, 3, 5]));
const labels = (): Param => ids([2, 3], 5);
const vec = (): Param => T(() => rand([3]));
const place = (): Param => opts({ dtype: choice(['f32', 'f64'], OPTIONAL), backend: str(() => defaultBackendName(), OPTIONAL), generator: fixed(() => new Generator(0)) });
const gptConfig = (): Param => opts({ vocabSize: int({ min: 1 }), blockSize: int({ min: 1 }), nLayer: int({ min: 1 }), nHead: int({ min: 1 }), nEmbd: int({ min: 1 }) }, { good: () => ({ ...TINY }), optional: false });
const batch = (): { idx: Tensor; labels: Tensor; lengths: number[] } =>
  batchExamples(
    [
      { prompt: [1, 2], response: [3] },
      { prompt: [4], response: [5, 6] },
    ],
    { blockSize: 8 },
  );

export const FINETUNE_TABLE: Table = {
  // ---- objectives
  logSigmoid: { params: [T()] },
  sequenceLogProbs: { params: [logits(), labels(), opts({ ignoreIndex: int({ optional: true }), average: bool(OPTIONAL) })] },
  bradleyTerryLoss: { params: [vec(), vec()] },
  dpoLoss: { params: [vec(), vec(), T(() => rand([3]), OPTIONAL), T(() => rand([3]), OPTIONAL), opts({ beta: num({ min: 0, minExclusive: true, optional: true }), labelSmoothing: num({ min: 0, max: 0.5, optional: true }) })] },
  distillationLoss: {
    params: [
      T(() => rand([2, 5])),
      T(() => rand([2, 5])),
      T(() => tensor([1, 3], [2], { dtype: 'i32' }), OPTIONAL),
      opts({ temperature: num({ min: 0, minExclusive: true, optional: true }), alpha: num({ min: 0, max: 1, optional: true }), ignoreIndex: int({ optional: true }) }),
    ],
  },
  hiddenStateLoss: {
    params: [T(() => rand([2, 4])), T(() => rand([2, 6])), { kind: 'projection', good: () => new Linear(4, 6), refuse: [bad(5, '5'), bad({}, 'object')] }],
  },
  // ---- models and PEFT
  RewardModel: { params: [gptConfig(), place()], call: construct((c, o) => new RewardModel(c, o)) },
  pairAccuracy: {
    params: [
      instance('reward model', () => new RewardModel(TINY, { backend: defaultBackendName() })),
      { kind: 'batch', good: batch, refuse: [bad(5, '5'), bad(null, 'null'), bad({}, 'object')] },
      { kind: 'batch', good: batch, refuse: [bad(5, '5'), bad(null, 'null'), bad({}, 'object')] },
    ],
  },
  applyLoRA: {
    params: [
      model(),
      opts(
        { rank: int({ min: 1 }), alpha: num({ min: 0, minExclusive: true, optional: true }), dropout: num({ min: 0, max: 1, maxExclusive: true, optional: true }), generator: fixed(() => new Generator(1)) },
        { good: () => ({ rank: 2 }), optional: false },
      ),
    ],
  },
  applyAdapters: { params: [model(), opts({ bottleneck: int({ min: 1 }), generator: fixed(() => new Generator(1)) }, { good: () => ({ bottleneck: 2 }), optional: false })] },
  BottleneckAdapter: { params: [int({ min: 1, good: 8 }), int({ min: 1, good: 2 }), place()], call: construct((w, b, o) => new BottleneckAdapter(w, b, o)) },
  loraLayers: { params: [model(withLoRA)] },
  mergeLoRA: { params: [model(withLoRA)] },
  unmergeLoRA: { params: [model(withLoRA)] },
  removeLoRA: { params: [model(withLoRA), opts({ merge: bool(OPTIONAL) })] },
  peftStateDict: { params: [model(withLoRA)] },
  peftConfig: { params: [model(withLoRA)] },
  loadPeftState: {
    params: [
      model(),
      { kind: 'config', good: () => ({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 2, target_modules: ['transformer.h.0.attn.c_attn'], bias: 'none', fan_in_fan_out: false }), refuse: [bad(5, '5'), bad(null, 'null'), bad({ peft_type: 'IA3' }, 'IA3')] },
      {
        kind: 'tensors',
        good: () => ({ 'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight': rand([2, 8]), 'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight': rand([24, 2]) }),
        refuse: [bad(5, '5'), bad(null, 'null'), bad({ x: 5 }, '5'), bad(() => ({ 'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight': rand([3, 8]) }), 'missing')],
      },
    ],
  },
  saveAdapters: { params: [str(() => join(root, 'adapter')), model(withLoRA)] },
  loadAdapters: {
    params: [{ kind: 'folder', good: () => join(root, 'saved'), refuse: [bad(5, '5'), bad('', "''"), bad(join(root, 'none'), 'cannot read')] }, model()],
    call: async (dir: string, m: GPT) => {
      const src = withLoRA();
      await saveAdapters(join(root, 'saved'), src);
      src.dispose();
      return loadAdapters(dir, m);
    },
  },
  // ---- SFT and style
  addSpecialTokens: { params: [tokenizer(), { kind: 'tokens', good: () => ['<|x|>'], refuse: [bad(5, '5'), bad([''], "''"), bad([5], '5')] }] },
  resizeTokenEmbeddings: { params: [model(), int({ min: 12, good: 14 })] },
  chatExample: { params: [tokenizer(() => chatTokenizer), messages()] },
  chatPrompt: { params: [messages()] },
  evaluateResponses: {
    params: [
      model(() => new GPT({ ...TINY, vocabSize: chatTokenizer.vocabSize, blockSize: 32 }, { backend: defaultBackendName(), generator: new Generator(0) })),
      tokenizer(() => chatTokenizer),
      { kind: 'conversations', good: () => [{ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }] }], refuse: [bad(5, '5'), bad([{ messages: 5 }], '5'), bad([], 'no conversations')] },
      opts({ maxNewTokens: int({ min: 1, optional: true }) }, { good: () => ({ maxNewTokens: 2 }) }),
    ],
  },
  parseStyleGuide: { params: [{ kind: 'guide json', good: () => '{"name":"g","rules":[{"kind":"case","value":"lower"}]}', refuse: [bad('{oops', 'not JSON'), bad(5, '5'), bad('{"name":""}', 'name')] }, str(() => 'g.json', OPTIONAL)], prefix: ['parseStyleGuide', 'g.json'] },
  styleSystemPrompt: { params: [guideArg()] },
  describeRule: { params: [ruleArg()] },
  followsRule: { params: [ruleArg(), str()] },
  styleScore: { params: [guideArg(), str()] },
  styleReport: { params: [guideArg(), { kind: 'texts', good: () => ['a.', 'B'], refuse: [bad(5, '5'), bad([5], '5'), bad([], 'no texts')] }] },
  applyStyle: { params: [guideArg(), str()] },
  // ---- data
  parsePreferencePairs: { params: [str(() => '{"prompt":"p","chosen":"a","rejected":"b"}'), str(() => 'prefs.jsonl', OPTIONAL)], prefix: ['parsePreferencePairs', 'prefs.jsonl'] },
  parseInstructions: { params: [str(() => '{"prompt":"p","response":"a"}'), str(() => 'sft.jsonl', OPTIONAL)], prefix: ['parseInstructions', 'sft.jsonl'] },
  batchExamples: { params: [examples(), layout()] },
  packExamples: { params: [examples(), layout()] },
  ppo: {
    params: [
      opts(
        {
          policy: instance('policy', gpt),
          reference: instance('reference', gpt),
          prompts: { kind: 'prompts', good: () => [[1, 2]], refuse: [bad(5, '5'), bad([[1, 99]], '99'), bad([], 'no prompts'), bad([[1, 2], [3]], 'one length')] },
          reward: func(() => (_p: readonly number[], r: readonly number[]) => r.length),
          responseLength: int({ min: 1, optional: true }),
          iterations: int({ min: 1, optional: true }),
          batchSize: int({ min: 1, optional: true }),
          epochs: int({ min: 1, optional: true }),
          clip: num({ min: 0, minExclusive: true, optional: true }),
          klCoef: num({ min: 0, optional: true }),
          gamma: num({ min: 0, max: 1, optional: true }),
          lambda: num({ min: 0, max: 1, optional: true }),
          lr: num({ min: 0, minExclusive: true, optional: true }),
        },
        { good: () => ({ policy: gpt(), reference: gpt(), prompts: [[1, 2]], reward: () => 1, responseLength: 2, iterations: 1, batchSize: 2, epochs: 1 }), optional: false },
      ),
    ],
    call: async (o: { policy?: unknown; reference?: unknown }) => {
      try {
        const r = await ppo(o as never);
        r.valueHead.dispose();
      } finally {
        for (const m of [o?.policy, o?.reference]) if (m instanceof GPT) m.dispose();
      }
    },
  },
  // ---- pipelines (see the module comment)
  pretrain: { exempt: 'runs kiln train from a configuration; test/cli.test.ts calls it, and the command it serves covers its arguments' },
  finetune: { exempt: 'runs a fine-tuning job from a kiln train folder; kiln finetune (cli tests) covers its arguments and bad files' },
  trainReward: { exempt: 'runs a job from a kiln train folder; kiln reward (cli tests) covers its arguments and bad files' },
  align: { exempt: 'runs a job from a kiln train folder; kiln align (cli tests) covers its arguments and bad files' },
  loadReward: { exempt: 'reads a folder kiln reward wrote; kiln align --method ppo --reward (cli tests) covers it' },
  builtinInstructions: { exempt: 'makes examples from a corpus; the pipelines call it on the default corpus' },
  builtinPreferencePairs: { exempt: 'makes pairs from a corpus; the pipelines call it on the default corpus' },
};
