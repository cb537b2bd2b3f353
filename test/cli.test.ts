/**
 * The `kiln` command, run as users run it: `process.execPath bin/kiln.mjs ...` in a child process
 * (from the TypeScript sources through tsx, no build needed). Bad arguments, missing files and
 * corrupt checkpoints give one line on stderr and a non-zero status; `kiln train` on a small
 * corpus written here writes a checkpoint, metrics.json and a loss-curve SVG; `kiln sample` and
 * `kiln eval` read them back; SIGINT during training saves a checkpoint that `--resume` continues
 * from. The argument parser, the SVG chart and the progress display are also tested in-process.
 * Every training run uses `--backend ref` and the `micro` config.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError, formatHelp, parseArgs, type CommandSpec } from '../src/cli/args.js';
import { main } from '../src/cli/main.js';
import { getConfig } from '../src/cli/configs.js';
import { align, finetune, pretrain, trainReward } from '../src/index.js';
import { downsample, escapeXml, lineChartSvg, niceTicks, smooth, tickStep } from '../src/cli/plot.js';
import { ProgressBar, formatCount, formatDuration } from '../src/cli/progress.js';

const BIN = fileURLToPath(new URL('../bin/kiln.mjs', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'kiln-cli-'));
const corpusPath = join(root, 'corpus.txt');
const out = join(root, 'out');

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run `kiln ARGS` in a child process (cwd: the temporary folder; native kernels off). */
function kiln(args: string[], opts: { onStderr?: (chunk: string, child: ReturnType<typeof spawn>) => void } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: root, env: { ...process.env, KILN_DISABLE_NATIVE: '1', KILN_DEBUG: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      opts.onStderr?.(stderr, child);
    });
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
}

/** Paragraphs of sentences from a small grammar (a fixed LCG, high bits), separated by blank lines. */
function writeCorpus(path: string, paragraphs: number): void {
  const subj = ['the cat', 'a dog', 'the old farmer', 'my sister', 'the river', 'a small bird'];
  const verb = ['sees', 'likes', 'follows', 'builds', 'finds', 'paints'];
  const obj = ['the red house', 'a green field', 'the long road', 'an open door', 'the quiet lake', 'a wooden boat'];
  let s = 2024;
  const r = (k: number): number => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return Math.floor(s / 65536) % k;
  };
  const paras = Array.from({ length: paragraphs }, () => Array.from({ length: 4 + r(4) }, () => `${subj[r(6)]} ${verb[r(6)]} ${obj[r(6)]}.`).join(' '));
  writeFileSync(path, `${paras.join('\n\n')}\n`);
}

/** Well-formedness of the SVG's tags: every element closed in order (a small stack check, no XML library). */
function checkTags(svg: string): string[] {
  const stack: string[] = [];
  const names: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z][\w-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g)) {
    const [, close, name, , selfClose] = m;
    if (!close) names.push(name!);
    if (selfClose) continue;
    if (close) expect(stack.pop(), `closing </${name}>`).toBe(name);
    else stack.push(name!);
  }
  expect(stack).toEqual([]);
  // no stray '<' or '&' outside tags and entities
  expect(svg.replace(/<[^>]*>/g, '').match(/<|&(?!(amp|lt|gt|quot|apos);)/)).toBeNull();
  return names;
}

const oneLine = (r: Run): void => {
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(r.stderr).not.toMatch(/^\s+at /m); // no stack trace
};

beforeAll(() => {
  writeCorpus(corpusPath, 60);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('kiln (child process)', () => {
  it('prints help for the command and each subcommand', async () => {
    const [top, trainHelp, sampleHelp, benchHelp, auditHelp, auditTokensHelp, labelHelp, evalHelp] = await Promise.all([
      kiln(['--help']),
      kiln(['train', '--help']),
      kiln(['help', 'sample']),
      kiln(['bench', '--help']),
      kiln(['audit', '--help']),
      kiln(['audit', 'tokens', '--help']),
      kiln(['help', 'label']),
      kiln(['eval', '--help']),
    ]);
    expect(top.status).toBe(0);
    for (const cmd of ['train', 'sample', 'eval', 'finetune', 'reward', 'align', 'bench', 'audit', 'label']) expect(top.stdout).toMatch(new RegExp(`^  ${cmd} +\\S`, 'm'));
    expect(top.stdout).toMatch(/ref\s+available/);
    expect(trainHelp.status).toBe(0);
    for (const opt of ['--data PATH', '--config NAME', '--backend NAME', '--steps N', '--out DIR', '--resume']) expect(trainHelp.stdout).toContain(opt);
    expect(sampleHelp.stdout).toContain('--top-k N');
    expect(benchHelp.stdout).toContain('kiln bench NAME');
    for (const r of [auditHelp, auditTokensHelp, labelHelp, evalHelp]) expect([r.status, r.stderr]).toEqual([0, '']);
    expect(auditTokensHelp.stdout).toBe(auditHelp.stdout);
    expect(auditHelp.stdout).toMatch(/^kiln audit: /);
    for (const opt of ['kiln audit tokens --ckpt DIR|FILE', '--top N', '--data PATH', '--matrix unembedding|embedding', '--backend NAME', '--json']) expect(auditHelp.stdout).toContain(opt);
    expect(labelHelp.stdout).toMatch(/^kiln label: /);
    for (const opt of ['kiln label --pairs IN.jsonl --out OUT.jsonl', 'kiln label --ckpt DIR --prompts FILE', '--pairs IN.jsonl', '--prompts FILE', '-o, --out OUT.jsonl', '--port N', '--tokens N', '--temperature T']) expect(labelHelp.stdout).toContain(opt);
    for (const opt of ['--report FILE', '--report-samples N']) expect(evalHelp.stdout).toContain(opt);
    for (const opt of ['--watts-per-core W', '--grid-intensity G']) expect(trainHelp.stdout).toContain(opt);
  });

  it('rejects bad arguments and missing files with one line on stderr and a non-zero status', async () => {
    const cases: [string[], number, RegExp][] = [
      [['train', '--steps', 'abc'], 2, /^kiln train: --steps expects an integer, got 'abc'/],
      [['train', '--bogus'], 2, /unknown option '--bogus'/],
      [['train', '--steps'], 2, /--steps needs a value/],
      [['train', '--config', 'huge'], 2, /--config must be one of micro, tiny, small/],
      [['train', '--backend', 'nope'], 2, /unknown backend 'nope'/],
      [['train', '--n-embd', '30', '--n-head', '4', '--backend', 'ref'], 2, /multiple of the heads/],
      [['train', 'extra'], 2, /unexpected argument 'extra'/],
      [['frob'], 2, /^kiln: unknown command 'frob'/],
      [['sample'], 2, /--ckpt is required/],
      [['eval', '--ckpt', 'x'], 2, /--data is required/],
      [['audit'], 2, /^kiln audit: which audit\? \(tokens\)/],
      [['audit', 'weights'], 2, /^kiln audit: unknown audit 'weights'; the audits are tokens/],
      [['audit', 'tokens'], 2, /^kiln audit: --ckpt is required/],
      [['label', '--pairs', 'p.jsonl'], 2, /^kiln label: --out is required/],
      [['label', '--out', 'x.jsonl'], 2, /^kiln label: give either --pairs IN\.jsonl, or --ckpt DIR with --prompts FILE/],
      [['label', '--pairs', 'missing.jsonl', '--out', 'x.jsonl'], 1, /^kiln label: --pairs: cannot read 'missing\.jsonl': no such file or directory/],
      [['train', '--data', 'missing.txt', '--backend', 'ref', '--out', 'never'], 1, /--data: cannot read 'missing.txt': no such file or directory/],
      [['sample', '--ckpt', 'missing-dir'], 1, /--ckpt: cannot read 'missing-dir': no such file or directory/],
      [['train', '--resume', '--out', 'empty-out', '--backend', 'ref'], 1, /nothing to resume/],
    ];
    const runs = await Promise.all(cases.map(([args]) => kiln(args)));
    runs.forEach((r, i) => {
      const [args, status, message] = cases[i]!;
      expect(r.status, args.join(' ')).toBe(status);
      expect(r.stderr, args.join(' ')).toMatch(message);
      oneLine(r);
    });
    expect(existsSync(join(root, 'never'))).toBe(false); // a bad --data fails before anything is written
  });

  it('kiln bench runs the bench dispatcher through tsx', async () => {
    const r = await kiln(['bench', 'no-such-bench']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown bench 'no-such-bench'; available: .*gpt/);
  });

  describe('train, sample, eval', () => {
    let trained: Run;
    beforeAll(async () => {
      trained = await kiln(['train', '--data', corpusPath, '--steps', '20', '--config', 'micro', '--backend', 'ref', '--out', out]);
    });

    it('kiln train writes a checkpoint, metrics.json and loss.svg, and prints the results and a sample', () => {
      expect(trained.status, trained.stderr).toBe(0);
      expect(existsSync(join(out, 'ckpt-00000020.safetensors'))).toBe(true);
      expect(existsSync(join(out, 'tokenizer.json'))).toBe(true);
      const m = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
      expect(m).toMatchObject({ config: 'micro', backend: 'ref', steps: 20, stopReason: 'completed', data: { documents: 60 } });
      expect(m.perplexity).toBeCloseTo(Math.exp(m.valLoss), 6);
      expect(m.unigramPerplexity).toBeCloseTo(Math.exp(m.unigramEntropy), 6);
      for (const k of ['trainLoss', 'valLoss', 'unigramEntropy', 'tokensPerSecond', 'wallSeconds']) expect(Number.isFinite(m[k]) && m[k] > 0, k).toBe(true);
      for (const k of ['data', 'tokenizer', 'shards', 'training', 'evaluation', 'sampling', 'total']) expect(m.timings[k]).toBeGreaterThanOrEqual(0);
      expect(m.evals.map((e: { step: number }) => e.step)).toEqual([10, 20]);
      expect(m.runConfig).toMatchObject({ name: 'micro', steps: 20, nLayer: 2, nEmbd: 32, blockSize: 16 });
      expect(trained.stdout).toMatch(/val loss\s+\d+\.\d+\s+\(perplexity/);
      expect(trained.stdout).toMatch(/unigram entropy\s+\d+\.\d+/);
      expect(trained.stdout).toContain('sample (temperature');
      expect(trained.stderr).toMatch(/^time: data .* training .* ms\/step.* total \d/m);
      expect(trained.stderr).toMatch(/^step 20\/20 \(100%\) loss /m); // not a terminal: plain lines
    });

    it('kiln train --checkpointing trains the same model (dropout on), recomputing the layers', async () => {
      const args = (dir: string): string[] => ['train', '--data', corpusPath, '--steps', '4', '--config', 'micro', '--dropout', '0.1', '--eval-every', '0', '--sample-tokens', '8', '--backend', 'ref', '--out', join(root, dir)];
      const [plain, ckpt] = await Promise.all([kiln(args('plain')), kiln([...args('ckpt'), '--checkpointing'])]);
      expect(plain.status, plain.stderr).toBe(0);
      expect(ckpt.status, ckpt.stderr).toBe(0);
      expect(ckpt.stderr).toMatch(/^model: GPT .*; gradient checkpointing$/m);
      expect(plain.stderr).not.toMatch(/checkpointing/);
      const [a, b] = ['plain', 'ckpt'].map((d) => JSON.parse(readFileSync(join(root, d, 'metrics.json'), 'utf8')));
      expect(b.model.gradientCheckpointing).toBe(true);
      // the reference backend recomputes exactly: the same losses and the same sample
      expect([b.trainLoss, b.valLoss, b.sample]).toEqual([a.trainLoss, a.valLoss, a.sample]);
    });

    it('loss.svg is a valid SVG with axes, tick labels and a polyline per curve', () => {
      const svg = readFileSync(join(out, 'loss.svg'), 'utf8');
      expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
      expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
      const names = checkTags(svg);
      expect(names.filter((n) => n === 'polyline')).toHaveLength(3); // raw train, smoothed train, validation
      for (const m of svg.matchAll(/<polyline [^>]*points="([^"]+)"/g)) {
        const pts = m[1]!.split(' ').map((p) => p.split(',').map(Number));
        for (const [x, y] of pts) {
          expect(x! >= 0 && x! <= 800 && y! >= 0 && y! <= 480).toBe(true);
        }
      }
      expect(svg).toContain('>step</text>');
      expect(svg).toContain('>loss (nats per token)</text>');
      expect(svg).toMatch(/>unigram entropy \d\.\d{3}</);
      expect(svg).toMatch(/>20<\/text>/); // the last x tick
    });

    it('kiln finetune trains LoRA adapters on JSONL instructions, writes what kiln sample reads, and names a bad line', async () => {
      const data = join(root, 'sft.jsonl');
      const pairs = [['hi', 'yes'], ['go', 'no'], ['up', 'down'], ['in', 'out'], ['on', 'off'], ['the cat', 'the dog'], ['a', 'b']];
      writeFileSync(data, pairs.map(([p, r]) => JSON.stringify({ prompt: p, response: r })).join('\n'));
      const fout = join(root, 'ft');
      const r = await kiln(['finetune', '--ckpt', out, '--data', data, '--lora', '4', '--steps', '10', '--backend', 'ref', '--out', fout]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/^data: 3 training and 4 held-out examples \(.*sft\.jsonl\)$/m);
      expect(r.stderr).toMatch(/^held-out before: exact match \d+\.\d%, ROUGE-L \d\.\d{3}$/m);
      expect(r.stdout).toMatch(/^kiln finetune: 3 examples, 10 steps in .*; trained \d+ of \d+ parameters$/m);
      const m = JSON.parse(readFileSync(join(fout, 'metrics.json'), 'utf8'));
      expect(m.losses).toHaveLength(10);
      expect(m.losses[9]).toBeLessThan(m.losses[0]);
      // LoRA on c_attn, the two c_proj and c_fc, and the embeddings (the chat tokens' rows are new: 300 + 4 of width 32)
      expect(m.trainableParameters).toBe(2 * 4 * ((32 + 96) + (32 + 32) + (32 + 128) + (128 + 32)) + 304 * 32);
      expect(JSON.parse(readFileSync(join(fout, 'adapter', 'adapter_config.json'), 'utf8')).modules_to_save).toEqual(['transformer.wte']);
      expect(existsSync(join(fout, 'adapter', 'adapter_model.safetensors'))).toBe(true);
      expect(JSON.parse(readFileSync(join(fout, 'adapter', 'adapter_config.json'), 'utf8'))).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8 });
      // the merged model with the chat tokens is a kiln checkpoint
      const s = await kiln(['sample', '--ckpt', fout, '--prompt', '<|user|>hi<|end|><|assistant|>', '--tokens', '4', '--backend', 'ref']);
      expect(s.status, s.stderr).toBe(0);
      expect(s.stderr).toMatch(/sampled 4 tokens from .*ckpt-00000010\.safetensors/);
      writeFileSync(data, '{"prompt":"hi","response":"yes"}\n{"prompt":"go"}\n');
      const bad = await kiln(['finetune', '--ckpt', out, '--data', data, '--backend', 'ref', '--out', join(root, 'ft-bad')]);
      expect(bad.status).toBe(1);
      expect(bad.stderr).toMatch(/sft\.jsonl:2: a record needs 'prompt' and 'response', or 'messages'; it has prompt/);
    });

    it('kiln reward, kiln align --method dpo and --method ppo run on JSONL pairs and write what kiln sample reads', async () => {
      const data = join(root, 'pairs.jsonl');
      const words = ['cat', 'dog', 'farmer', 'sister', 'river', 'bird', 'house', 'field'];
      const lines = words.map((w, i) => JSON.stringify({ prompt: `the ${w}`, chosen: 'yes', rejected: words[(i + 1) % words.length] }));
      writeFileSync(data, lines.join('\n'));
      const rw = join(root, 'rw');
      const r = await kiln(['reward', '--ckpt', out, '--data', data, '--steps', '6', '--backend', 'ref', '--out', rw]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/^data: 4 training and 4 held-out pairs \(.*pairs\.jsonl\)$/m);
      expect(r.stdout).toMatch(/^kiln reward: 4 pairs, 6 steps in .*; held-out accuracy \d+\.\d% → \d+\.\d% \(4 pairs\); wrote .*ckpt-00000006\.safetensors$/m);
      const dpo = await kiln(['align', '--ckpt', out, '--method', 'dpo', '--data', data, '--steps', '4', '--backend', 'ref', '--out', join(root, 'dpo')]);
      expect(dpo.status, dpo.stderr).toBe(0);
      expect(dpo.stdout).toMatch(/held-out after {3}likelihoodAccuracy \d\.\d{4}, rewardMargin -?\d\.\d{4}, marginAccuracy \d\.\d{4}/);
      const m = JSON.parse(readFileSync(join(root, 'dpo', 'metrics.json'), 'utf8'));
      expect(m.losses).toHaveLength(4);
      expect(m.losses[0]).toBeCloseTo(Math.log(2), 4); // the policy starts as the reference
      const ppoRun = await kiln(['align', '--ckpt', out, '--method', 'ppo', '--reward', rw, '--data', data, '--steps', '2', '--backend', 'ref', '--out', join(root, 'ppo')]);
      expect(ppoRun.status, ppoRun.stderr).toBe(0);
      expect(ppoRun.stdout).toMatch(/held-out after {3}meanReward -?\d+\.\d{4}, kl -?\d+\.\d{4}/);
      const s = await kiln(['sample', '--ckpt', join(root, 'ppo'), '--prompt', 'the', '--tokens', '3', '--backend', 'ref']);
      expect(s.status, s.stderr).toBe(0);
      // usage errors and bad data
      expect((await kiln(['align', '--ckpt', out, '--backend', 'ref'])).stderr).toMatch(/--method is required \(dpo or ppo\)/);
      expect((await kiln(['align', '--ckpt', out, '--method', 'ppo', '--backend', 'ref'])).stderr).toMatch(/--method ppo needs --reward/);
      writeFileSync(data, `${lines[0]}\n{"prompt":"a","chosen":"b","rejected":"b"}\n`);
      const bad = await kiln(['reward', '--ckpt', out, '--data', data, '--backend', 'ref', '--out', join(root, 'rw-bad')]);
      expect(bad.status).toBe(1);
      expect(bad.stderr).toMatch(/pairs\.jsonl:2: 'chosen' and 'rejected' are the same response/);
    });

    it('pretrain(options) is kiln train as a library function: the same files and results', async () => {
      const dir = join(root, 'pretrain');
      const steps: number[] = [];
      const r = await pretrain({ config: { ...getConfig('micro'), steps: 6, evalEvery: 3, checkpointEvery: 6 }, out: dir, data: corpusPath, backend: 'ref', callbacks: { onStep: (s) => void steps.push(s.step) } });
      expect(r.interrupted).toBe(false);
      expect(steps).toEqual([1, 2, 3, 4, 5, 6]);
      expect(r.result.step).toBe(6);
      expect(r.final!.perplexity).toBeCloseTo(Math.exp(r.final!.valLoss), 6);
      for (const f of ['run.json', 'metrics.json', 'loss.svg', 'sample.txt', 'tokenizer.json', 'ckpt-00000006.safetensors']) expect(existsSync(join(dir, f)), f).toBe(true);
      expect(JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8'))).toMatchObject({ steps: 6, stopReason: 'completed', sample: r.sample });
    });

    it('finetune, trainReward and align (dpo, ppo) as library functions, with their events', async () => {
      const sft = join(root, 'lib-sft.jsonl');
      writeFileSync(sft, [['hi', 'yes'], ['go', 'no'], ['up', 'down'], ['in', 'out'], ['on', 'off'], ['a', 'b']].map(([p, r]) => JSON.stringify({ prompt: p, response: r })).join('\n'));
      const guide = join(root, 'lib-style.json');
      writeFileSync(guide, JSON.stringify({ name: 'caps', rules: [{ kind: 'case', value: 'upper' }] }));
      // the guide's system prompt does not fit this model's 16-token context: an error, not a silently shortened set
      await expect(finetune({ ckpt: out, out: join(root, 'lib-x'), data: sft, style: guide, backend: 'ref' })).rejects.toThrow(/^finetune: 6 of 6 examples do not fit the model's context of 16 tokens/);
      const events: string[] = [];
      const ft = await finetune({ ckpt: out, out: join(root, 'lib-ft'), data: sft, lora: 2, steps: 3, backend: 'ref', onEvent: (e) => void events.push(e.type) });
      expect(ft.losses).toHaveLength(3);
      expect(ft.adapters).toBe(join(root, 'lib-ft', 'adapter'));
      expect(events).toEqual(['data', 'eval', 'step', 'step', 'step', 'eval']);
      const pairs = join(root, 'lib-pairs.jsonl');
      writeFileSync(pairs, ['cat', 'dog', 'farmer', 'sister', 'river', 'bird'].map((w, i, ws) => JSON.stringify({ prompt: `the ${w}`, chosen: 'yes', rejected: ws[(i + 1) % ws.length] })).join('\n'));
      const rw = await trainReward({ ckpt: out, out: join(root, 'lib-rw'), data: pairs, steps: 2, backend: 'ref' });
      expect(rw.losses).toHaveLength(2);
      expect(rw.heldOutPairs).toBe(4);
      const dpo = await align({ ckpt: out, out: join(root, 'lib-dpo'), data: pairs, method: 'dpo', steps: 2, backend: 'ref' });
      expect(Object.keys(dpo.after)).toEqual(['likelihoodAccuracy', 'rewardMargin', 'marginAccuracy']);
      const ppoRun = await align({ ckpt: out, out: join(root, 'lib-ppo'), data: pairs, method: 'ppo', reward: join(root, 'lib-rw'), steps: 1, batchPairs: 2, backend: 'ref' });
      expect(Object.keys(ppoRun.after)).toEqual(['meanReward', 'kl']);
      await expect(align({ ckpt: out, out: join(root, 'x'), data: pairs, method: 'ppo', backend: 'ref' })).rejects.toThrow(/^align: ppo needs --reward/);
      await expect(finetune({ ckpt: out, out: join(root, 'x'), data: join(root, 'none.jsonl'), backend: 'ref' })).rejects.toThrow(/^--data: cannot read/);
    });

    it('kiln sample --ckpt prints a continuation of the prompt, the same for the same seed', async () => {
      const args = ['sample', '--ckpt', out, '--prompt', 'the cat', '--tokens', '20', '--seed', '5', '--backend', 'ref'];
      const [a, b] = await Promise.all([kiln(args), kiln(args)]);
      expect(a.status, a.stderr).toBe(0);
      expect(a.stdout.startsWith('the cat')).toBe(true);
      expect(a.stdout.length).toBeGreaterThan('the cat'.length + 5);
      expect(b.stdout).toBe(a.stdout);
      expect(a.stderr).toMatch(/sampled 20 tokens from .*ckpt-00000020\.safetensors \(step 20\)/);
    });

    it('kiln eval --ckpt --data reports perplexity, the unigram baseline and throughput', async () => {
      const [text, json] = await Promise.all([
        kiln(['eval', '--ckpt', out, '--data', corpusPath, '--backend', 'ref', '--max-batches', '4']),
        kiln(['eval', '--ckpt', out, '--data', corpusPath, '--backend', 'ref', '--max-batches', '4', '--json']),
      ]);
      expect(text.status, text.stderr).toBe(0);
      expect(text.stdout).toMatch(/perplexity\s+\d+\.\d+/);
      expect(text.stdout).toMatch(/throughput\s+[\d.]+k? tokens\/s/);
      const r = JSON.parse(json.stdout);
      expect(r.tokens).toBe(4 * 8 * 16);
      expect(r.perplexity).toBeCloseTo(Math.exp(r.loss), 9);
      expect(r.step).toBe(20);
    });

    it('kiln eval --int8 and kiln sample --int8: int8 Linear layers, the perplexity change and speed-up against f32', async () => {
      const [ev, sample] = await Promise.all([
        kiln(['eval', '--ckpt', out, '--data', corpusPath, '--backend', 'ref', '--max-batches', '4', '--int8', '--json']),
        kiln(['sample', '--ckpt', out, '--prompt', 'the cat', '--tokens', '20', '--backend', 'ref', '--int8']),
      ]);
      expect(ev.status, ev.stderr).toBe(0);
      const r = JSON.parse(ev.stdout);
      expect(r.int8Layers).toBe(2 * 4 + 1); // per layer c_attn, attn.c_proj, c_fc, mlp.c_proj; lm_head
      expect(Math.abs(r.int8PerplexityChange)).toBeLessThan(0.01);
      expect(r.int8Perplexity).toBeCloseTo(r.perplexity * (1 + r.int8PerplexityChange), 6);
      expect(r.int8Speedup).toBeGreaterThan(0);
      expect(sample.status, sample.stderr).toBe(0);
      expect(sample.stdout.startsWith('the cat')).toBe(true);
      expect(sample.stderr).toMatch(/^int8: \d+ Linear layers quantized, weights [\d.]+ → [\d.]+ MiB$/m);
      expect(sample.stderr).toMatch(/tokens\/s, int8\)/);
    });

    it('kiln eval --report refuses a folder or a device before evaluating', async () => {
      const r = await kiln(['eval', '--ckpt', out, '--data', corpusPath, '--backend', 'ref', '--report', root]);
      expect(r.status).toBe(1);
      expect(r.stderr.trim()).toMatch(/^kiln eval: --report: '.*' is a folder, not a file$/);
    });

    it('a corrupt or truncated checkpoint gives one clear line and status 1', async () => {
      const bad = join(root, 'bad');
      mkdirSync(bad);
      copyFileSync(join(out, 'tokenizer.json'), join(bad, 'tokenizer.json'));
      const file = join(bad, 'ckpt-00000020.safetensors');
      const bytes = readFileSync(join(out, 'ckpt-00000020.safetensors'));
      bytes[bytes.length - 100] ^= 0xff; // a flipped bit in the tensor data
      writeFileSync(file, bytes);
      const short = join(root, 'short.safetensors');
      copyFileSync(join(out, 'ckpt-00000020.safetensors'), short);
      truncateSync(short, 20);
      const [flipped, truncated, again] = await Promise.all([
        kiln(['sample', '--ckpt', bad, '--backend', 'ref']),
        kiln(['sample', '--ckpt', short, '--backend', 'ref']),
        kiln(['train', '--data', corpusPath, '--config', 'micro', '--backend', 'ref', '--out', out]),
      ]);
      expect(flipped.status).toBe(1);
      expect(flipped.stderr).toMatch(/^kiln sample: .*ckpt-00000020\.safetensors' is corrupt or not a checkpoint: checksum mismatch/);
      oneLine(flipped);
      expect(truncated.status).toBe(1);
      expect(truncated.stderr).toMatch(/short\.safetensors' is corrupt or not a kiln checkpoint/);
      oneLine(truncated);
      expect(again.status).toBe(1); // a second run into the same folder must say --resume or --overwrite
      expect(again.stderr).toMatch(/holds checkpoints of an earlier run; pass --resume/);
      oneLine(again);
    });
  });

  it('SIGINT during training saves a checkpoint, and --resume continues from its step', async () => {
    const dir = join(root, 'interrupted');
    let sent = false;
    const first = await kiln(['train', '--data', corpusPath, '--config', 'micro', '--backend', 'ref', '--steps', '5000', '--log-every', '1', '--out', dir], {
      onStderr: (text, child) => {
        if (!sent && /^step [3-9]\/5000/m.test(text)) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    expect(sent).toBe(true);
    expect(first.status, first.stderr).toBe(130);
    const step = Number(/interrupted at step (\d+): checkpoint/.exec(first.stdout)?.[1]);
    expect(step).toBeGreaterThanOrEqual(3);
    expect(step).toBeLessThan(5000);
    expect(first.stderr).toContain('SIGINT: finishing the current step and saving a checkpoint');
    const ckpt = join(dir, `ckpt-${String(step).padStart(8, '0')}.safetensors`);
    expect(existsSync(ckpt)).toBe(true);
    expect(JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8'))).toMatchObject({ interrupted: true, steps: step });

    const second = await kiln(['train', '--resume', '--out', dir, '--steps', String(step + 3), '--backend', 'ref']);
    expect(second.status, second.stderr).toBe(0);
    expect(second.stderr).toContain(`resumed from step ${step} (`);
    expect(second.stderr).toMatch(new RegExp(`^step ${step + 1}/${step + 3} `, 'm'));
    const m = JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8'));
    expect(m).toMatchObject({ steps: step + 3, stopReason: 'completed' });
    expect(m.resumedFrom).toBe(ckpt);
  });
});

// ---- in-process: arguments, chart, progress ----------------------------------------------------

const spec: CommandSpec = {
  name: 'demo',
  summary: 'a demo',
  usage: ['demo [--steps N]'],
  options: [
    { name: 'steps', type: 'int', min: 0, help: 'steps' },
    { name: 'lr', type: 'number', min: 0, help: 'rate' },
    { name: 'out', type: 'string', short: 'o', help: 'where' },
    { name: 'mode', type: 'string', choices: ['a', 'b'], help: 'which' },
    { name: 'resume', type: 'boolean', help: 'go on' },
    { name: 'top-k', type: 'int', min: 1, help: 'k' },
  ],
};

describe('parseArgs and formatHelp', () => {
  it('reads --name value, --name=value, flags, short aliases and kebab-case names', () => {
    expect(parseArgs(spec, ['--steps', '20', '--lr=3e-4', '-o', 'dir', '--resume', '--top-k', '5', '--mode', 'b'])).toEqual({
      _: [],
      help: false,
      steps: 20,
      lr: 3e-4,
      out: 'dir',
      resume: true,
      topK: 5,
      mode: 'b',
    });
    expect(parseArgs(spec, ['-h']).help).toBe(true);
    expect(parseArgs(spec, ['--resume=false']).resume).toBe(false);
  });

  it('names the option in every error', () => {
    const bad: [string[], RegExp][] = [
      [['--steps', '2.5'], /--steps expects an integer, got '2.5'/],
      [['--lr', 'fast'], /--lr expects a number, got 'fast'/],
      [['--lr', '-1'], /--lr must be ≥ 0, got -1/],
      [['--steps'], /--steps needs a value \(N\)/],
      [['--out', '--resume'], /--out needs a value/],
      [['--mode', 'c'], /--mode must be one of a, b, got 'c'/],
      [['--step', '3'], /unknown option '--step' \(did you mean --steps\?\)/],
      [['--steps', '1', '--steps', '2'], /--steps is given more than once/],
      [['--resume=yes'], /--resume is a flag/],
      [['stray'], /unexpected argument 'stray'/],
    ];
    for (const [argv, msg] of bad) {
      expect(() => parseArgs(spec, argv), argv.join(' ')).toThrow(UsageError);
      expect(() => parseArgs(spec, argv), argv.join(' ')).toThrow(msg);
    }
  });

  it('formatHelp lists every option with its placeholder', () => {
    const help = formatHelp(spec);
    for (const s of ['usage:', 'kiln demo [--steps N]', '--steps N', '--lr X', '-o, --out VALUE', '--mode a|b', '--resume', '--top-k N', '-h, --help']) expect(help).toContain(s);
  });

  it('main() returns 2 for an unknown command and 0 for --help, writing to the given streams', async () => {
    let o = '';
    let e = '';
    const io = { stdout: { write: (s: string) => (o += s) }, stderr: { write: (s: string) => (e += s) } };
    expect(await main(['nope'], io)).toBe(2);
    expect(e).toMatch(/unknown command 'nope'/);
    expect(await main(['--help'], io)).toBe(0);
    expect(o).toContain('usage: kiln <command>');
    expect(await main(['sample', '--tokens', 'x'], io)).toBe(2);
    expect(e).toMatch(/kiln sample: --tokens expects an integer, got 'x' \(see 'kiln sample --help'\)/);
  });
});

describe('the SVG chart', () => {
  it('picks ticks at 1, 2 or 5 × 10ᵏ', () => {
    expect(niceTicks(0, 1, 6)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0, 6000, 8)).toEqual([0, 1000, 2000, 3000, 4000, 5000, 6000]);
    expect(niceTicks(3.7, 7.9, 7)).toEqual([4, 5, 6, 7]);
    expect(niceTicks(0.55, 0.61, 4)).toEqual([0.56, 0.58, 0.6]);
    expect(tickStep(45, 6)).toBe(10);
    expect(tickStep(0, 6)).toBe(1);
  });

  it('writes one polyline per series inside the plot area, escapes text, and smooths/downsamples', () => {
    const svg = lineChartSvg(
      [
        { name: 'a<b', points: [[0, 1], [10, 3], [20, 2]], color: '#000' },
        { name: 'empty', points: [], color: '#111' },
        { name: 'c', points: [[5, NaN], [5, 2]], color: '#222', markers: true },
      ],
      { title: 'x & y', xLabel: 'step', yLabel: 'loss', hlines: [{ y: 2.5, label: 'base', color: '#0a0' }] },
    );
    const names = checkTags(svg);
    expect(names.filter((n) => n === 'polyline')).toHaveLength(2);
    expect(names.filter((n) => n === 'circle')).toHaveLength(1);
    expect(svg).toContain('x &amp; y');
    expect(svg).toContain('<title>a&lt;b</title>');
    expect(escapeXml(`<"'&>`)).toBe('&lt;&quot;&apos;&amp;&gt;');
    expect(smooth([[0, 1], [1, 5]], 0)).toEqual([[0, 1], [1, 5]]);
    // bias-corrected EMA: m₁ = 0.5·1 → 1; m₂ = 0.5·0.5 + 0.5·3 = 1.75, / (1 − 0.25) = 7/3
    expect(smooth([[0, 1], [1, 3]], 0.5)[1]![1]).toBeCloseTo(7 / 3, 12);
    expect(downsample([[0, 0], [1, 2], [2, 4], [3, 6]], 2)).toEqual([[0.5, 1], [2.5, 5]]);
  });
});

describe('ProgressBar', () => {
  const sink = (tty: boolean) => {
    const s = { text: '', isTTY: tty, columns: 100, write: (x: string) => void (s.text += x) };
    return s;
  };

  it('without a terminal prints a line every N steps and at the last, with the mean loss of the window', () => {
    let now = 0;
    const stream = sink(false);
    const bar = new ProgressBar({ total: 10, stream, every: 4, now: () => now });
    for (let step = 1; step <= 10; step++) {
      now = step * 500;
      bar.update({ step, loss: step, lr: 1e-3, tokensPerSecond: 2048 });
    }
    const lines = stream.text.trim().split('\n');
    expect(lines).toHaveLength(3);
    // steps 1–4 average 2.5; 500 ms per step, so 6 steps left take 3 s
    expect(lines[0]).toBe('step 4/10 (40%) loss 2.5000 lr 1.00e-3 2.05k tok/s elapsed 2s ETA 3s');
    expect(lines[2]).toMatch(/^step 10\/10 \(100%\) loss 9\.5000 .* ETA 0s$/);
    bar.log('hello');
    expect(stream.text.endsWith('hello\n')).toBe(true);
  });

  it('on a terminal redraws one line in place and prints messages above it', () => {
    let now = 0;
    const stream = sink(true);
    const bar = new ProgressBar({ total: 100, stream, now: () => now });
    now = 1000;
    bar.update({ step: 50, loss: 3, lr: 1e-3, tokensPerSecond: 1e5 });
    expect(stream.text).toMatch(/^\r\[█{15}░{15}\]  50\/100 loss 3\.0000 lr 1\.00e-3 100\.0k tok\/s ETA 1s\x1b\[K$/);
    bar.update({ step: 51, loss: 3, lr: 1e-3, tokensPerSecond: 1e5 }); // within 100 ms: not redrawn
    expect(stream.text.split('\r').length).toBe(2);
    bar.log('eval');
    expect(stream.text).toContain('\r\x1b[Keval\n[');
    bar.done();
    expect(stream.text.endsWith('\n')).toBe(true);
  });

  it('formats durations and counts', () => {
    expect([formatDuration(5), formatDuration(65), formatDuration(3725), formatDuration(NaN)]).toEqual(['5s', '1m05s', '1h02m', '?']);
    expect([formatCount(950), formatCount(2048), formatCount(12345), formatCount(4.56e6)]).toEqual(['950', '2.05k', '12.3k', '4.56M']);
  });
});
