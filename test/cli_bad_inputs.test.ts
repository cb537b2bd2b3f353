/**
 * Every flag of every `kiln` command against hostile but fair input, generated from the commands'
 * own declarations (name, type, range): numbers that are not numbers, out of range, fractions
 * where an integer is needed, hex, blanks; unknown flags, missing values, stray arguments; paths
 * that do not exist, are files where a folder is needed, devices, FIFOs or unreadable; unknown
 * configs and backends; and combinations that cannot run (a context of 10⁸ tokens, a width the
 * heads do not divide, a model larger than the machine, `--lr 1e30`). Each must end within a
 * time limit with status 1 or 2 and one line on stderr, `kiln <command>: …`, that names the flag
 * and the value. Most run in-process through `main(args, io)`; a few as the user runs them, in a
 * child process. Every run uses `--backend ref` and the `micro` config on a small corpus, so a
 * value wrongly accepted costs one training step, not a run.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends } from '../src/backend/registry.js';
import { shown, type CommandSpec, type OptionSpec } from '../src/cli/args.js';
import { auditSpec } from '../src/cli/audit.js';
import { evalSpec } from '../src/cli/eval.js';
import { labelSpec } from '../src/cli/label.js';
import { main } from '../src/cli/main.js';
import { sampleSpec } from '../src/cli/sample.js';
import { trainSpec } from '../src/cli/train.js';
import { GPT, isfinite, loadCheckpoint } from '../src/index.js';

const BIN = fileURLToPath(new URL('../bin/kiln.mjs', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'kiln-bad-'));
const corpus = join(root, 'corpus.txt');
const trained = join(root, 'trained');
const linux = process.platform === 'linux';
const isRoot = process.getuid?.() === 0;
/** Generated runs per flag. */
const RUNS = 25;
/** No case may take longer than this (in-process or child). */
const TIME_BOX_MS = 30_000;

interface Result {
  code: number | null;
  signal?: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Skip every item of the `kiln label` page at `url`, so the server stops: a value wrongly accepted
 * then fails its case at once (status 0) instead of leaving a server waiting for a browser.
 */
async function skipAll(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const html = await (await fetch(url)).text();
    const token = /name="token" value="([0-9a-f]+)"/.exec(html)?.[1];
    const index = /name="index" value="(\d+)"/.exec(html)?.[1];
    if (token === undefined || index === undefined) return;
    await fetch(new URL('/choose', url), { method: 'POST', body: new URLSearchParams({ token, index, choice: 'skip' }), redirect: 'manual' });
  }
}

/** Run `main(args)` in this process with captured streams and a time limit. */
async function inProcess(args: string[]): Promise<Result> {
  let stdout = '';
  let stderr = '';
  const write = (s: string): void => {
    stderr += s;
    const served = /^kiln label: open (http:\/\/127\.0\.0\.1:\d+\/)/m.exec(s);
    if (served) void skipAll(served[1]!).catch(() => {});
  };
  const io = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write } };
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`kiln ${args.join(' ')} did not finish within ${TIME_BOX_MS} ms`)), TIME_BOX_MS);
  });
  try {
    const code = await Promise.race([main(args, io), limit]);
    return { code, stdout, stderr, ms: performance.now() - t0 };
  } finally {
    clearTimeout(timer);
  }
}

/** Run `kiln ARGS` in a child process (native kernels off), killed after the time limit. */
function child(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, [BIN, ...args], { cwd: root, env: { ...process.env, KILN_DISABLE_NATIVE: '1', KILN_DEBUG: '', ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), TIME_BOX_MS);
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/** Whitespace runs collapse in the one-line message, so they do in what we look for. */
const asShown = (value: string): string => shown(value).replace(/\s+/g, ' ');

/**
 * The contract for a refused input: status 1 or 2 (no signal), one line on stderr that starts
 * with `kiln <command>: ` and names each of `mentions` (the flag, the value), no stack trace.
 * A `late` refusal (found in the data, or by training) may follow train's progress lines; the
 * refusal is then the last line and the only one that starts with `kiln train: ` but the first.
 */
function expectRefused(r: Result, command: string, mentions: string[], label: string, late = false): void {
  expect(r.signal ?? null, label).toBeNull();
  expect([1, 2], `${label}: status ${r.code}, stderr ${r.stderr}`).toContain(r.code);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  if (late) expect(lines.slice(1, -1).filter((l) => l.startsWith(`kiln ${command}: `)), `${label}: ${r.stderr}`).toEqual([]);
  else expect(lines, `${label}: ${r.stderr}`).toHaveLength(1);
  const last = lines[lines.length - 1] ?? '';
  expect(last.startsWith(`kiln ${command}: `), `${label}: ${r.stderr}`).toBe(true);
  for (const m of mentions) expect(last, label).toContain(m);
  expect(last, `${label}: a prefix said twice`).not.toMatch(/(--[a-z-]+): \1: /);
  expect(r.stderr, label).not.toMatch(/^\s+at /m);
  expect(r.ms, label).toBeLessThan(TIME_BOX_MS);
}

/** Paragraphs of sentences from a small grammar (a fixed LCG), separated by blank lines. */
function writeCorpus(path: string, paragraphs: number): void {
  const words = [
    ['the cat', 'a dog', 'the old farmer', 'my sister', 'the river'],
    ['sees', 'likes', 'follows', 'builds', 'finds'],
    ['the red house', 'a green field', 'the long road', 'an open door', 'the quiet lake'],
  ];
  let s = 7;
  const r = (k: number): number => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return Math.floor(s / 65536) % k;
  };
  const paras = Array.from({ length: paragraphs }, () => Array.from({ length: 4 + r(3) }, () => words.map((w) => w[r(5)]).join(' ') + '.').join(' '));
  writeFileSync(path, `${paras.join('\n\n')}\n`);
}

let outCount = 0;
/** A fresh output folder for each train run, so a wrongly accepted value is not masked by an earlier run's checkpoints. */
const freshOut = (): string => join(root, 'outs', String(outCount++));

/**
 * Arguments that make a command valid; the flag under test replaces its own. `kiln label` has two
 * forms: from a model (`--ckpt --prompts`, the base) and, when `--pairs` is the flag, from a pairs
 * file. Its port is 0, so a value wrongly accepted serves on a free port (and `inProcess` ends it).
 */
const BASE: Record<string, (flags: string[]) => Record<string, string>> = {
  train: () => ({ data: corpus, config: 'micro', backend: 'ref', out: freshOut(), steps: '1', 'sample-tokens': '2' }),
  sample: () => ({ ckpt: trained, tokens: '2', backend: 'ref' }),
  eval: () => ({ ckpt: trained, data: corpus, backend: 'ref', 'max-batches': '1' }),
  audit: () => ({ ckpt: trained, backend: 'ref', top: '3' }),
  label: (flags): Record<string, string> =>
    flags.includes('pairs')
      ? { out: join(freshOut(), 'prefs.jsonl'), port: '0' }
      : { ckpt: trained, prompts: paths.prompts, out: join(freshOut(), 'prefs.jsonl'), backend: 'ref', tokens: '2', port: '0' },
};
/** Positional arguments a command needs before its options (`kiln audit tokens`). */
const LEAD: Record<string, string[]> = { audit: ['tokens'] };
const SPECS: CommandSpec[] = [trainSpec, sampleSpec, evalSpec, auditSpec, labelSpec];

function argsFor(command: string, override: Record<string, string | null>, extra: string[] = []): string[] {
  const args = { ...BASE[command]!(Object.keys(override)), ...override };
  const argv = [command, ...(LEAD[command] ?? [])];
  for (const [k, v] of Object.entries(args)) if (v !== null) argv.push(`--${k}=${v}`);
  return [...argv, ...extra];
}

// ---- bad values by type and range, from the declaration ----------------------------------------------

const NOT_NUMBERS = ['', 'abc', 'NaN', 'nan', 'Infinity', '-Infinity', '1e400', '-1e400', '0x10', '0X1f', '0b11', '0o7', '1_000', '1,5', ' 5', '5 ', '5x', '--', '١٢', '1e', 'e5', '.', '+-1'];

/** Values `o` must refuse: not numbers, outside its range, fractions for integers, hex spellings of valid numbers. */
function badNumber(o: OptionSpec): fc.Arbitrary<string> {
  const choices: fc.Arbitrary<string>[] = [fc.constantFrom(...NOT_NUMBERS)];
  const lo = o.min ?? o.above;
  // hex, octal and binary spellings of values the flag would take
  choices.push(fc.integer({ min: Math.max(0, Math.ceil(lo ?? 0)), max: 1000 }).chain((n) => fc.constantFrom(`0x${n.toString(16)}`, `0o${n.toString(8)}`, `0b${n.toString(2)}`)));
  // (−0 is not below 0: it is 0)
  if (o.min !== undefined) choices.push(fc.double({ max: o.min, maxExcluded: true, noNaN: true, noDefaultInfinity: true }).filter((x) => x < o.min!).map(String));
  if (o.above !== undefined) choices.push(fc.double({ max: o.above, noNaN: true, noDefaultInfinity: true }).map((x) => String(x + 0)));
  if (o.below !== undefined) choices.push(fc.double({ min: o.below, noNaN: true, noDefaultInfinity: true }).map(String));
  const max = o.max ?? (o.type === 'int' ? Number.MAX_SAFE_INTEGER : undefined);
  if (max !== undefined) {
    choices.push(fc.constantFrom('1e30', '1e300', String(max * 10), `${max + 1}`.replace(/\.\d*$/, '')));
    if (o.type === 'int' && max < Number.MAX_SAFE_INTEGER) choices.push(fc.integer({ min: max + 1, max: Number.MAX_SAFE_INTEGER }).map(String));
  }
  if (o.type === 'int') choices.push(fc.double({ min: 0.001, max: 1e6, noNaN: true }).filter((x) => !Number.isInteger(x)).map(String));
  return fc.oneof(...choices);
}

/** Printable text without quotes or backslashes, so a message shows it as it is. */
const plainText = fc.string({ unit: fc.constantFrom(...'abcxyzABC019 ._-/:@#%+=~é漢'.split('')), minLength: 1, maxLength: 24 });

/** Paths made in beforeAll, each bad in its own way. */
const paths = {
  underFile: join(corpus, 'inside'),
  emptyFile: join(root, 'empty.txt'),
  emptyDir: join(root, 'empty-dir'),
  oneParagraph: join(root, 'one.txt'),
  fifo: join(root, 'fifo'),
  noTokenizer: join(root, 'no-tokenizer'),
  unreadable: join(root, 'unreadable.txt'),
  /** Prompts for `kiln label --ckpt`, one a line. */
  prompts: join(root, 'prompts.txt'),
  /** Pairs for `kiln label --pairs`: two completions per prompt. */
  pairs: join(root, 'pairs.jsonl'),
  /** JSON lines that are not what their flag reads. */
  notPairs: join(root, 'not-pairs.jsonl'),
  notPrompts: join(root, 'not-prompts.jsonl'),
};
/** Bad files for `kiln label --out` (a file it appends to; a missing one is made) and its inputs `--pairs` and `--prompts`. */
function badLabelFiles(flag: string): fc.Arbitrary<string> {
  const missing = fc.stringMatching(/^[a-z0-9]{1,12}$/).map((n) => join(root, 'no-such', n));
  // FIFOs as inputs are tried in a child process: a read that blocks would stop this one
  const fixed: Record<string, string[]> = {
    // lines that are not pairs (the input given as --out), a folder, a path under a file, a device
    out: [corpus, paths.pairs, paths.emptyDir, paths.underFile, ...(linux ? ['/dev/null', paths.fifo, '/proc/kiln-out.jsonl', '/proc/self/kiln-out.jsonl'] : [])],
    pairs: [corpus, paths.prompts, paths.notPairs, paths.emptyFile, paths.emptyDir, paths.underFile, ...(linux ? ['/dev/null', '/proc/self/mem'] : [])],
    prompts: [paths.notPrompts, paths.emptyFile, paths.emptyDir, paths.underFile, ...(linux ? ['/dev/null', '/proc/self/mem'] : [])],
  };
  return flag === 'out' ? fc.constantFrom(...fixed[flag]!) : fc.oneof(missing, fc.constantFrom(...fixed[flag]!));
}

/** Bad paths for `--data`, `--out` and `--ckpt` of `command` (the ones the platform can make). */
function badPaths(flag: string, command: string): fc.Arbitrary<string> {
  if (command === 'label' && flag !== 'ckpt') return badLabelFiles(flag);
  // a missing --out is made; a missing --data or --ckpt is an error
  const missing = fc.stringMatching(/^[a-z0-9]{1,12}$/).map((n) => join(root, 'no-such', n));
  const fixed: Record<string, string[]> = {
    // one paragraph leaves train no validation split (eval needs none)
    data: [paths.underFile, paths.emptyFile, paths.emptyDir, ...(command === 'train' ? [paths.oneParagraph] : []), ...(linux ? ['/dev/null', paths.fifo, '/proc/self/mem'] : [])],
    out: [corpus, paths.underFile, ...(linux ? ['/dev/null', '/proc/kiln-out', '/proc/self/kiln-out'] : [])],
    ckpt: [corpus, paths.emptyDir, paths.emptyFile, paths.noTokenizer, paths.underFile, ...(linux ? ['/dev/null', paths.fifo, '/proc/self/mem'] : [])],
  };
  return flag === 'out' ? fc.constantFrom(...fixed[flag]!) : fc.oneof(missing, fc.constantFrom(...fixed[flag]!));
}

/** The bad values of option `o` of `command`, or null when it has none to give (`--prompt` takes any text). */
function badValues(o: OptionSpec, command: string): fc.Arbitrary<string> | null {
  if (o.type === 'int' || o.type === 'number') return badNumber(o);
  if (o.type === 'boolean') return plainText.filter((v) => v !== 'true' && v !== 'false');
  if (o.choices) return fc.oneof(fc.constant(''), plainText.filter((v) => !o.choices!.includes(v)));
  if (o.name === 'backend') return fc.oneof(fc.constant(''), plainText.filter((v) => !backends().some((b) => b.name === v)));
  if (o.name === 'data' || o.name === 'out' || o.name === 'ckpt') return badPaths(o.name, command);
  if (command === 'label' && (o.name === 'pairs' || o.name === 'prompts')) return badPaths(o.name, command);
  return null;
}

beforeAll(async () => {
  writeCorpus(corpus, 40);
  writeFileSync(paths.emptyFile, '');
  mkdirSync(paths.emptyDir);
  writeFileSync(paths.oneParagraph, 'a single paragraph, so nothing is left for validation.\n');
  if (linux) execFileSync('mkfifo', [paths.fifo]);
  writeFileSync(paths.prompts, 'the cat\na dog sees\n');
  writeFileSync(paths.pairs, `${JSON.stringify({ prompt: 'the cat', a: 'sees', b: 'likes' })}\n`);
  writeFileSync(paths.notPairs, `${JSON.stringify({ prompt: 'the cat', chosen: 'sees', rejected: 'likes' })}\n`);
  writeFileSync(paths.notPrompts, `${JSON.stringify({ text: 'the cat' })}\n`);
  const r = await inProcess(['train', '--data', corpus, '--config', 'micro', '--backend', 'ref', '--steps', '2', '--sample-tokens', '2', '--out', trained]);
  expect(r.code, r.stderr).toBe(0);
  mkdirSync(paths.noTokenizer);
  const ckpt = readdirSync(trained).find((f) => f.endsWith('.safetensors'))!;
  copyFileSync(join(trained, ckpt), join(paths.noTokenizer, ckpt));
}, 120_000);
afterAll(() => {
  if (existsSync(paths.unreadable)) chmodSync(paths.unreadable, 0o644);
  rmSync(root, { recursive: true, force: true });
});

// ---- generated: every flag of every command ------------------------------------------------------------

describe.each(SPECS.map((s) => [s.name, s] as const))('kiln %s: every flag', (command, spec) => {
  for (const o of spec.options) {
    const bad = badValues(o, command);
    if (bad === null) continue;
    it(`--${o.name} refuses bad values (${o.type}${o.min !== undefined ? `, ≥ ${o.min}` : ''}${o.max !== undefined ? `, ≤ ${o.max}` : ''})`, async () => {
      await fc.assert(
        fc.asyncProperty(bad, async (value) => {
          const args = argsFor(command, { [o.name]: null }, [`--${o.name}=${value}`]);
          const r = await inProcess(args);
          expectRefused(r, command, [`--${o.name}`, asShown(value)], args.join(' '), command === 'train' && o.name === 'data');
        }),
        { numRuns: RUNS },
      );
    });
  }

  it('refuses a missing value for every flag that takes one, at the end or before another flag', async () => {
    for (const o of spec.options.filter((x) => x.type !== 'boolean')) {
      for (const tail of [[`--${o.name}`], [`--${o.name}`, '--help'], [`--${o.name}`, '--no-such-flag']]) {
        const args = argsFor(command, { [o.name]: null }, tail);
        expectRefused(await inProcess(args), command, [`--${o.name} needs a value`], args.join(' '));
      }
    }
  });

  it('refuses unknown flags and stray arguments, naming them', async () => {
    const known = new Set(spec.options.map((o) => o.name));
    await fc.assert(
      fc.asyncProperty(
        fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/).filter((n) => !known.has(n) && n !== 'help'),
        plainText.filter((v) => !v.startsWith('-')),
        async (name, stray) => {
          const unknown = await inProcess(argsFor(command, {}, [`--${name}`]));
          expectRefused(unknown, command, [`unknown option '--${name}'`], `--${name}`);
          const positional = await inProcess(argsFor(command, {}, [stray]));
          expectRefused(positional, command, [`unexpected argument '${asShown(stray)}'`], stray);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('refuses a flag given twice', async () => {
    const o = spec.options.find((x) => x.name === 'backend')!;
    const args = argsFor(command, {}, [`--${o.name}=ref`]);
    expectRefused(await inProcess(args), command, ['--backend is given more than once'], args.join(' '));
  });
});

// ---- by hand: forms and values the generators do not reach ---------------------------------------------

describe('kiln: forms of values', () => {
  it('reads a negative or fractional value after a space and refuses it by range', async () => {
    const cases: [string[], string[]][] = [
      [['--steps', '-5'], ['--steps must be ≥ 1, got -5']],
      [['--lr', '-.5'], ['--lr must be ≥ 0, got -.5']],
      [['--dropout', '-1e-3'], ['--dropout must be ≥ 0, got -1e-3']],
      [['--steps', '0'], ['--steps must be ≥ 1, got 0']],
    ];
    for (const [tail, mentions] of cases) {
      const args = [...argsFor('train', { [tail[0]!.slice(2)]: null }), ...tail];
      expectRefused(await inProcess(args), 'train', mentions, args.join(' '));
    }
  });

  it('shows a control character escaped and a pasted page cut short, on one line', async () => {
    const r = await inProcess(argsFor('sample', { backend: 'a\nb\u001b[31m' }));
    expectRefused(r, 'sample', ["unknown backend 'a\\nb\\u001b[31m'"], 'control characters');
    const page = 'x'.repeat(10_000);
    const long = await inProcess(argsFor('train', { steps: null }, [`--steps=${page}`]));
    expectRefused(long, 'train', ['--steps', `'${'x'.repeat(57)}...'`], 'a long value');
    expect(long.stderr.length).toBeLessThan(300);
  });

  it('names a --data path that cannot be read', async () => {
    writeFileSync(paths.unreadable, 'text\n\nmore text\n');
    // as root a mode-0 file is still readable, so the read error there is a path through a file
    if (isRoot || !linux) {
      const bad = join(paths.unreadable, 'child.txt');
      const args = argsFor('train', { data: bad });
      expectRefused(await inProcess(args), 'train', ['--data', bad], args.join(' '));
      return;
    }
    chmodSync(paths.unreadable, 0);
    const args = argsFor('train', { data: paths.unreadable });
    expectRefused(await inProcess(args), 'train', ['--data', paths.unreadable, 'permission denied'], args.join(' '));
  });
});

// ---- kiln audit and kiln label: their subcommand and their combinations of flags --------------------------

describe('kiln audit, kiln label: what the declarations do not say', () => {
  const labelOut = (): string => join(freshOut(), 'prefs.jsonl');
  const cases: [string, string[], 1 | 2, string[]][] = [
    ['audit without a subcommand', ['audit', '--ckpt', trained], 2, ['which audit?', 'tokens']],
    ['an unknown audit', ['audit', 'weights', '--ckpt', trained], 2, ["unknown audit 'weights'", 'the audits are tokens']],
    ['an audit in another case', ['audit', 'Tokens', '--ckpt', trained], 2, ["unknown audit 'Tokens'"]],
    ['two subcommands', ['audit', 'tokens', 'tokens', '--ckpt', trained], 2, ["unexpected argument 'tokens'"]],
    ['audit tokens without --ckpt', ['audit', 'tokens', '--backend', 'ref'], 2, ['--ckpt is required']],
    ['audit --top 0', ['audit', 'tokens', '--ckpt', trained, '--top', '0'], 2, ['--top must be ≥ 1, got 0']],
    ['audit --top 2.5', ['audit', 'tokens', '--ckpt', trained, '--top', '2.5'], 2, ['--top expects an integer', "'2.5'"]],
    ['a text file as the checkpoint', ['audit', 'tokens', '--ckpt', corpus, '--backend', 'ref'], 1, ['--ckpt', corpus, 'not a kiln checkpoint']],
    ['a folder without a checkpoint', ['audit', 'tokens', '--ckpt', paths.emptyDir, '--backend', 'ref'], 1, ['--ckpt', paths.emptyDir, 'no checkpoint']],
    ['a missing --data', ['audit', 'tokens', '--ckpt', trained, '--data', join(root, 'none.txt'), '--backend', 'ref'], 1, ['--data', join(root, 'none.txt'), 'no such file']],
    ['label with neither --pairs nor --ckpt', ['label', '--out', 'x.jsonl'], 2, ['give either --pairs', '--ckpt']],
    ['label with both --pairs and --ckpt', ['label', '--pairs', 'p.jsonl', '--ckpt', trained, '--out', 'x.jsonl'], 2, ['give either --pairs', '--ckpt']],
    ['label --ckpt without --prompts', ['label', '--ckpt', trained, '--out', 'x.jsonl'], 2, ['--ckpt needs --prompts']],
    ['label without --out', ['label', '--pairs', 'p.jsonl'], 2, ['--out is required']],
    ['label --pairs with --tokens', ['label', '--pairs', 'p.jsonl', '--out', 'x.jsonl', '--tokens', '3'], 2, ['--tokens applies with --ckpt, not --pairs']],
    ['label --pairs with --backend', ['label', '--pairs', 'p.jsonl', '--out', 'x.jsonl', '--backend', 'ref'], 2, ['--backend applies with --ckpt, not --pairs']],
    ['a port past 65535', ['label', '--pairs', 'p.jsonl', '--out', 'x.jsonl', '--port', '65536'], 2, ['--port must be ≤ 65535, got 65536']],
    ['a negative port', ['label', '--pairs', 'p.jsonl', '--out', 'x.jsonl', '--port', '-1'], 2, ['--port must be ≥ 0, got -1']],
    ['a missing --prompts file', ['label', '--ckpt', trained, '--prompts', join(root, 'none.txt'), '--out', 'x.jsonl', '--backend', 'ref'], 1, ['--prompts', join(root, 'none.txt'), 'no such file']],
    ['a missing --pairs file', ['label', '--pairs', join(root, 'none.jsonl'), '--out', 'x.jsonl'], 1, ['--pairs', join(root, 'none.jsonl'), 'no such file']],
    ['prompts, not pairs, as --pairs', ['label', '--pairs', paths.notPairs, '--out', 'x.jsonl'], 1, ['--pairs', `${paths.notPairs}:1: expected two completions`]],
    ['the input as --out', ['label', '--pairs', paths.pairs, '--out', paths.pairs], 1, ['--out', `line 1 of '${paths.pairs}' is not a {"prompt", "chosen", "rejected"} pair`]],
    ['a folder as --out', ['label', '--pairs', paths.pairs, '--out', paths.emptyDir], 1, ['--out', `'${paths.emptyDir}' is a folder`]],
    ['a checkpoint that is not one, with prompts', ['label', '--ckpt', corpus, '--prompts', paths.prompts, '--out', 'x.jsonl', '--backend', 'ref'], 1, ['--ckpt', corpus, 'not a kiln checkpoint']],
    ['an unknown backend', ['label', '--ckpt', trained, '--prompts', paths.prompts, '--out', 'x.jsonl', '--backend', 'nope'], 2, ['--backend', "unknown backend 'nope'"]],
  ];
  it.each(cases)('refuses %s', async (what, args, status, mentions) => {
    const r = await inProcess(args.map((a) => (a === 'x.jsonl' ? labelOut() : a)));
    expectRefused(r, args[0]!, mentions, what);
    expect(r.code, `${what}: ${r.stderr}`).toBe(status);
  });

  it('a refused kiln label writes nothing: no output file and no folder for it', async () => {
    const dir = freshOut();
    for (const args of [
      ['label', '--ckpt', trained, '--prompts', join(root, 'none.txt'), '--out', join(dir, 'prefs.jsonl'), '--backend', 'ref'],
      ['label', '--pairs', paths.notPairs, '--out', join(dir, 'prefs.jsonl')],
      ['label', '--pairs', paths.pairs, '--out', join(dir, 'prefs.jsonl'), '--port', '65536'],
    ]) {
      expectRefused(await inProcess(args), 'label', [], args.join(' '));
      expect(existsSync(dir), args.join(' ')).toBe(false);
    }
  });

  it('refuses a port in use, naming it, before any completion is generated', async () => {
    const busy = createServer();
    await new Promise<void>((done) => busy.listen(0, '127.0.0.1', () => done()));
    const port = (busy.address() as { port: number }).port;
    const dir = freshOut();
    try {
      for (const args of [
        ['label', '--pairs', paths.pairs, '--out', join(dir, 'a.jsonl'), '--port', String(port)],
        ['label', '--ckpt', trained, '--prompts', paths.prompts, '--out', join(dir, 'b.jsonl'), '--backend', 'ref', '--port', String(port)],
      ]) {
        const r = await inProcess(args);
        expectRefused(r, 'label', [`--port ${port}`, 'in use'], args.join(' '));
        expect(r.code).toBe(1);
        expect(r.stderr, 'nothing generated').not.toContain('generated two completions');
      }
      expect(existsSync(dir)).toBe(false);
    } finally {
      await new Promise<void>((done) => busy.close(() => done()));
    }
  });
});

// ---- combinations that cannot run ------------------------------------------------------------------------

describe('kiln train: combinations out of range', () => {
  it('--n-embd must be a multiple of --n-head', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2, max: 64 }), fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 63 }), async (heads, k, rest) => {
        const width = k * heads + (rest % heads || 1);
        const args = argsFor('train', { 'n-head': String(heads), 'n-embd': String(width) });
        expectRefused(await inProcess(args), 'train', [`--n-embd ${width}`, `--n-head ${heads}`], args.join(' '));
      }),
      { numRuns: RUNS },
    );
  });

  // llm.c token files (issue 13): 1024 header bytes (magic 20240520, version 1, count), then uint16 ids
  const tokenFile = (name: string, ids: number[], cut = 0): string => {
    const bytes = Buffer.alloc(1024 + 2 * ids.length);
    bytes.writeInt32LE(20240520, 0);
    bytes.writeInt32LE(1, 4);
    bytes.writeInt32LE(ids.length, 8);
    ids.forEach((t, i) => bytes.writeUInt16LE(t, 1024 + 2 * i));
    writeFileSync(join(root, name), bytes.subarray(0, bytes.length - cut));
    return join(root, name);
  };
  const tokens = tokenFile('tokens.bin', Array.from({ length: 2000 }, (_, i) => i % 299));
  const cases: [string, Record<string, string | null>, string[], boolean?][] = [
    ['a text file named .bin as --data', { data: (writeFileSync(join(root, 'text.bin'), 'hello world\n'.repeat(200)), join(root, 'text.bin')) }, ['--data', join(root, 'text.bin'), 'magic']],
    ['a token file cut short as --data', { data: tokenFile('short.bin', [1, 2, 3, 4], 3) }, ['--data', join(root, 'short.bin'), 'truncated']],
    ['--val-data with a text corpus', { 'val-data': tokens }, ['--val-data', 'is text']],
    ['--val-data that is not a token file', { data: tokens, 'vocab-size': '300', 'val-data': corpus }, ['--val-data', corpus]],
    ['--val-data of another format', { data: tokens, 'vocab-size': '300', 'val-data': (writeFileSync(join(root, 'wide.bin'), Buffer.concat([Buffer.from(new Int32Array([20240801, 7, 2, ...new Array(253).fill(0)]).buffer), Buffer.alloc(8)])), join(root, 'wide.bin')) }, ['--val-data', 'llama-3', 'gpt-2'], true],
    ['token ids past --vocab-size', { data: tokens, 'vocab-size': '257' }, ['--data', 'token id 298', '257'], true],
    ['--prompt on a token file', { data: tokens, 'vocab-size': '300', prompt: 'the' }, ['--prompt', 'token file']],
    ['--model bert on a token file', { data: tokens, model: 'bert' }, ['--model bert', 'token file']],
    ['a context of 10⁸ tokens', { 'block-size': '100000000' }, ['--block-size', '100000000']],
    ['a micro-batch of 10⁹ sequences', { 'batch-size': '1e9' }, ['--batch-size', '1e9']],
    ['no steps', { steps: '0' }, ['--steps', '0']],
    ['10⁵ threads', { threads: '100000' }, ['--threads', '100000']],
    ['threads on a backend without a pool', { threads: '2' }, ['--threads 2', "'ref'"]],
    ['logits past what one tensor holds', { 'batch-size': '65536', 'block-size': '65536' }, ['--batch-size 65536', '--block-size 65536']],
    ['a vocabulary whose logits do not fit', { 'vocab-size': '67108864' }, ['--vocab-size 67108864']],
    ['a model larger than the machine', { 'n-layer': '1024', 'n-embd': '65536', 'n-head': '1' }, ['--n-layer 1024', '--n-embd 65536', 'this machine has']],
    ['a model larger than the machine even with --checkpointing', { 'n-layer': '1024', 'n-embd': '65536', 'n-head': '1', checkpointing: 'true' }, ['--n-layer 1024', '--checkpointing', 'this machine has']],
    ['a context longer than the data', { 'block-size': '5000' }, ['--block-size 5000', 'training split'], true],
    ['a dropout of 1', { dropout: '1' }, ['--dropout', 'got 1']],
    ['--resume with --overwrite', { resume: 'true', overwrite: 'true' }, ['--resume', '--overwrite']],
    ['--resume where nothing ran', { resume: 'true' }, ['--resume', 'nothing to resume']],
  ];
  it.each(cases)('refuses %s', async (_what, override, mentions, late) => {
    const args = argsFor('train', override);
    const r = await inProcess(args);
    expectRefused(r, 'train', mentions, args.join(' '), late);
  });

  it('refuses KILN_NUM_THREADS that the cpu backend cannot take', async () => {
    for (const env of ['abc', '', '0', '100000', '1.5', '+4', ' 4', '0x10']) {
      const saved = process.env.KILN_NUM_THREADS;
      process.env.KILN_NUM_THREADS = env;
      try {
        for (const command of ['train', 'sample', 'eval', 'audit', 'label']) {
          const r = await inProcess(argsFor(command, {}));
          expectRefused(r, command, ['KILN_NUM_THREADS', `'${env}'`.replace(/^'(\d+)'$/, '$1')], `KILN_NUM_THREADS=${env} ${command}`);
        }
      } finally {
        if (saved === undefined) delete process.env.KILN_NUM_THREADS;
        else process.env.KILN_NUM_THREADS = saved;
      }
    }
  });

  it('refuses to resume a run to a step it has reached, and to change its model', async () => {
    const out = freshOut();
    expect((await inProcess(argsFor('train', { out, steps: '2' }))).code).toBe(0);
    const again = await inProcess(['train', '--resume', '--out', out, '--steps', '2', '--backend', 'ref']);
    expectRefused(again, 'train', ['--steps 2', 'already at step 2'], 'resume to step 2');
    const wider = await inProcess(['train', '--resume', '--out', out, '--n-embd', '64', '--backend', 'ref']);
    expectRefused(wider, 'train', ['--n-embd cannot change when resuming'], 'resume wider');
  });
});

// ---- a diverging run -------------------------------------------------------------------------------------

/** The steps of the checkpoints in `dir`. */
const checkpointSteps = (dir: string): number[] =>
  readdirSync(dir)
    .map((f) => /^ckpt-(\d+)\.safetensors$/.exec(f))
    .filter((m) => m !== null)
    .map((m) => Number(m![1]));

describe('kiln train --lr 1e30', () => {
  const DIVERGED = /^kiln train: the loss diverged at step (\d+) \(lr [^)]+\): (?:the loss|a parameter) is (?:NaN|-?Infinity)(?: after the update)?; stopped, (?:the last checkpoint is '([^']+)'|no checkpoint was written) \(lower the learning rate/;

  it('stops with the divergence line and keeps the last good checkpoint: none after the divergence', async () => {
    const out = freshOut();
    const r = await inProcess(argsFor('train', { out, lr: '1e30', steps: '30', 'checkpoint-every': '1', 'log-every': '1' }));
    expectRefused(r, 'train', ['the loss diverged at step', '(lr '], 'lr 1e30', true);
    const m = DIVERGED.exec(r.stderr.trim().split('\n').pop()!);
    expect(m, r.stderr).not.toBeNull();
    const step = Number(m![1]);
    const steps = checkpointSteps(out);
    expect(steps.every((s) => s < step), `checkpoints ${steps} after the divergence at ${step}`).toBe(true);
    expect(existsSync(join(out, 'metrics.json'))).toBe(false);
    if (m![2] !== undefined) {
      expect(m![2]).toBe(join(out, `ckpt-${String(Math.max(...steps)).padStart(8, '0')}.safetensors`));
      // the checkpoint it names holds finite weights
      const run = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
      const model = new GPT(run.model, { backend: 'ref' });
      await loadCheckpoint(m![2], { model, backend: 'ref' });
      for (const p of model.parameters()) expect(Array.from(await isfinite(p).data()).every(Boolean)).toBe(true);
    }
  });

  it('an update that overflows the weights writes no checkpoint at all (--lr 1e300)', async () => {
    const out = freshOut();
    const r = await inProcess(argsFor('train', { out, lr: '1e300', steps: '30', 'checkpoint-every': '1' }));
    expectRefused(r, 'train', ['diverged at step 1', 'no checkpoint was written'], 'lr 1e300', true);
    expect(checkpointSteps(out)).toEqual([]);
  });

  it('in a child process: status 1, the one line, no signal', async () => {
    const r = await child(['train', '--data', corpus, '--config', 'micro', '--backend', 'ref', '--lr', '1e30', '--out', join(root, 'child-lr')]);
    expectRefused(r, 'train', ['the loss diverged at step'], 'child lr 1e30', true);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').pop()).toMatch(DIVERGED);
  });
});

// ---- as the user runs them ---------------------------------------------------------------------------------

describe('kiln (child process): refusals end the process at once', () => {
  const out = (name: string): string => join(root, 'child', name);
  const cases: [string, string[], Record<string, string>, string[]][] = [
    ['a context of 10⁸ tokens', ['train', '--data', corpus, '--block-size', '100000000', '--out', out('block')], {}, ['--block-size', '100000000']],
    ['a hex step count', ['train', '--steps', '0x10', '--out', out('hex')], {}, ['--steps', '0x10']],
    ['KILN_NUM_THREADS=abc', ['train', '--data', corpus, '--config', 'micro', '--out', out('env')], { KILN_NUM_THREADS: 'abc' }, ['KILN_NUM_THREADS', 'abc']],
    ['an unknown bench', ['bench', '--steps'], {}, ["unknown bench '--steps'"]],
    ['an unknown audit', ['audit', 'glitch'], {}, ["unknown audit 'glitch'"]],
    ['label without --out', ['label', '--pairs', 'p.jsonl'], {}, ['--out is required']],
    ['a backend this process cannot load (native kernels off)', ['sample', '--ckpt', trained, '--backend', 'cpu'], {}, ['--backend', "'cpu' is not available here"]],
    ...(linux
      ? ([
          // mkdir -p of a path under /proc never returns in Node 20
          ['an output folder that cannot be made', ['train', '--data', corpus, '--config', 'micro', '--backend', 'ref', '--out', '/proc/kiln-out'], {}, ['--out', '/proc/kiln-out']],
          ['a FIFO as data', ['train', '--data', join(root, 'fifo'), '--config', 'micro', '--backend', 'ref', '--out', out('fifo')], {}, ['--data', 'not a file or a folder']],
          // a read of a FIFO blocks until a writer comes: these would never end
          ['a FIFO as --pairs', ['label', '--pairs', join(root, 'fifo'), '--out', out('fifo-pairs.jsonl'), '--port', '0'], {}, ['--pairs', join(root, 'fifo'), 'not a regular file']],
          ['a FIFO as --prompts', ['label', '--ckpt', trained, '--prompts', join(root, 'fifo'), '--out', out('fifo-prompts.jsonl'), '--backend', 'ref', '--port', '0'], {}, ['--prompts', join(root, 'fifo'), 'not a regular file']],
          ['a FIFO as --out', ['label', '--pairs', join(root, 'pairs.jsonl'), '--out', join(root, 'fifo'), '--port', '0'], {}, ['--out', join(root, 'fifo'), 'not a regular file']],
          ['a FIFO as audit --data', ['audit', 'tokens', '--ckpt', trained, '--data', join(root, 'fifo'), '--backend', 'ref'], {}, ['--data', 'not a file or a folder']],
        ] as [string, string[], Record<string, string>, string[]][])
      : []),
  ];
  it.each(cases)('%s', async (_what, args, env, mentions) => {
    const r = await child(args, env);
    expectRefused(r, args[0]!, mentions, args.join(' '));
    expect(existsSync(out('block')) || existsSync(out('hex')) || existsSync(out('env'))).toBe(false); // nothing written
  });
});
