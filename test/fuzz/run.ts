/**
 * `npm run fuzz`: every fuzzer of every parser for many cases, each in a child process that a
 * watchdog kills when it stops making progress (a hang), with a heap limit (an absurd
 * allocation crashes the child, not the run).
 *
 *   npm run fuzz [-- --runs 10000] [--seed N] [--only safetensors,checkpoint] [--jobs 2] [--hang-ms 60000]
 *
 * Prints, per fuzzer and per parser: cases, failures, time and the seed; exits 1 after printing
 * each failure's counterexample (for a hang or a crash: the input of the case it stopped in).
 * @module
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { preview } from './common.js';
import { PARSERS, fuzzersOf, type ParserName } from './index.js';

interface Options {
  runs: number;
  seed: number;
  only: ParserName[];
  jobs: number;
  hangMs: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    runs: 10_000,
    seed: Date.now() % 2 ** 31,
    only: Object.keys(PARSERS) as ParserName[],
    jobs: Math.max(1, Math.min(4, availableParallelism())),
    hangMs: 60_000,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[++i];
    const int = (): number => {
      const n = Number(value);
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`fuzz: ${flag} needs a non-negative integer, got ${value}`);
      return n;
    };
    if (flag === '--runs') o.runs = int();
    else if (flag === '--seed') o.seed = int();
    else if (flag === '--jobs') o.jobs = Math.max(1, int());
    else if (flag === '--hang-ms') o.hangMs = int();
    else if (flag === '--only') {
      const names = (value ?? '').split(',').filter(Boolean);
      for (const n of names) if (!(n in PARSERS)) throw new Error(`fuzz: unknown parser '${n}' (have ${Object.keys(PARSERS).join(', ')})`);
      o.only = names as ParserName[];
    } else throw new Error(`fuzz: unknown option '${flag}' (--runs, --seed, --only, --jobs, --hang-ms)`);
  }
  return o;
}

interface Job {
  parser: ParserName;
  index: number;
  name: string;
}

interface Outcome extends Job {
  cases: number;
  ms: number;
  /** null: passed; else what went wrong, with the counterexample. */
  failure: string | null;
}

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

/** Run one fuzzer in a child process; a hang (no new case for `hangMs`) or a crash becomes a failure naming the case. */
function runChild(job: Job, o: Options, dir: string): Promise<Outcome> {
  const progress = join(dir, `${job.parser}-${job.index}.progress`);
  const result = join(dir, `${job.parser}-${job.index}.json`);
  const start = performance.now();
  const child = spawn(
    process.execPath,
    ['--max-old-space-size=2048', '--import', 'tsx', WORKER, job.parser, String(job.index), String(o.runs), String(o.seed), progress, result],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const keep = (b: Buffer): void => {
    output = (output + b.toString()).slice(-8000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const caseNow = (): number => {
    try {
      const b = readFileSync(progress);
      return b.length >= 4 ? b.readUInt32LE(0) : 0;
    } catch {
      return 0;
    }
  };
  let hung: number | null = null;
  let last = -1;
  let since = performance.now();
  const watchdog = setInterval(() => {
    const n = caseNow();
    if (n !== last) {
      last = n;
      since = performance.now();
    } else if (performance.now() - since > o.hangMs) {
      hung = n;
      child.kill('SIGKILL');
    }
  }, 250);
  return new Promise((done) => {
    child.on('exit', (code, signal) => {
      clearInterval(watchdog);
      const ms = performance.now() - start;
      if (existsSync(result)) {
        const r = JSON.parse(readFileSync(result, 'utf8')) as { runs: number; failed: boolean; ms: number; report: string | null };
        done({ ...job, cases: r.runs, ms: r.ms, failure: r.failed ? r.report : null });
        return;
      }
      const n = caseNow();
      const what = hung !== null ? `hung in case ${n} (no progress for ${o.hangMs} ms)` : `crashed in case ${n} (exit code ${code}, signal ${signal})`;
      done({ ...job, cases: n, ms, failure: `${what}\n${output.trim()}` });
    });
  });
}

/** The input of case `n` (1-based) of a fuzzer run with `seed`: sampling its arbitrary with that seed gives the same sequence as the run. */
async function inputOfCase(job: Job, seed: number, n: number, runs: number): Promise<string> {
  if (n < 1 || n > runs) return `(case ${n} was a shrinking step; rerun with the same seed to see the input)`;
  const fuzzer = (await fuzzersOf(job.parser))[job.index]!;
  return preview(fc.stringify(fc.sample(fuzzer.arb, { seed, numRuns: n })[n - 1]), 4000);
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const jobs: Job[] = [];
  for (const parser of o.only) (await fuzzersOf(parser)).forEach((f, index) => jobs.push({ parser, index, name: f.name }));
  console.log(`fuzz: ${jobs.length} fuzzers of ${o.only.join(', ')}; ${o.runs} cases each; seed ${o.seed}; ${o.jobs} at a time`);
  const dir = mkdtempSync(join(tmpdir(), 'kiln-fuzz-'));
  const outcomes: Outcome[] = [];
  try {
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < jobs.length) {
        const job = jobs[next++]!;
        const out = await runChild(job, o, dir);
        if (out.failure && /^(hung|crashed) in case/.test(out.failure)) out.failure += `\ninput: ${await inputOfCase(job, o.seed, out.cases, o.runs)}`;
        outcomes.push(out);
        console.log(`  ${out.failure ? 'FAIL' : 'ok  '} ${job.parser.padEnd(12)} ${String(out.cases).padStart(7)} cases ${(out.ms / 1000).toFixed(1).padStart(7)} s  ${job.name}`);
      }
    };
    await Promise.all(Array.from({ length: o.jobs }, lane));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\n${'parser'.padEnd(12)} ${'cases'.padStart(8)} ${'failures'.padStart(8)} ${'time'.padStart(9)}  seed`);
  for (const parser of o.only) {
    const mine = outcomes.filter((x) => x.parser === parser);
    const cases = mine.reduce((s, x) => s + x.cases, 0);
    const ms = mine.reduce((s, x) => s + x.ms, 0);
    const failures = mine.filter((x) => x.failure).length;
    console.log(`${parser.padEnd(12)} ${String(cases).padStart(8)} ${String(failures).padStart(8)} ${`${(ms / 1000).toFixed(1)} s`.padStart(9)}  ${o.seed}`);
  }
  const failed = outcomes.filter((x) => x.failure);
  for (const f of failed) console.log(`\n---- ${f.parser}: ${f.name}\n${f.failure}\nrerun: npm run fuzz -- --only ${f.parser} --seed ${o.seed} --runs ${o.runs}`);
  process.exitCode = failed.length > 0 ? 1 : 0;
}

await main();
