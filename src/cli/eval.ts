/**
 * `kiln eval`: the perplexity of a model saved by `kiln train` on a corpus, with its tokens per
 * second, and the unigram entropy of the corpus's tokens as the context-free baseline. The text
 * is tokenised with the run's tokenizer into shards cached beside the checkpoint.
 * @module
 */
import { join } from 'node:path';
import { TokenDataset } from '../data/batches.js';
import { buildShards } from '../data/shards.js';
import { evaluate, unigramEntropy } from '../train/loop.js';
import { UsageError, type CommandSpec, type ParsedArgs } from './args.js';
import { formatCount } from './progress.js';
import { loadTrained, resolveCheckpoint } from './sample.js';
import { EOT, backendOption, corpusSources, describeBackend, loadCorpus, selectBackend, threadsOption, type CommandIO } from './train.js';

/** The declaration of `kiln eval`. */
export const evalSpec: CommandSpec = {
  name: 'eval',
  summary: 'perplexity and throughput of a model saved by kiln train on a corpus',
  usage: ['eval --ckpt DIR|FILE --data PATH [--batch-size N] [--max-batches N] [--json]'],
  options: [
    { name: 'ckpt', type: 'string', placeholder: 'DIR|FILE', help: 'the output folder of kiln train (its newest checkpoint is used) or a checkpoint file' },
    { name: 'data', type: 'string', placeholder: 'PATH', help: 'a text file (one document per paragraph), a folder of text files or a .jsonl file' },
    { name: 'batch-size', type: 'int', min: 1, max: 2 ** 20, help: 'windows per batch', defaultText: '8' },
    { name: 'max-batches', type: 'int', min: 1, help: 'score only the first N batches', defaultText: 'all' },
    backendOption,
    threadsOption,
    { name: 'json', type: 'boolean', help: 'print the results as JSON' },
  ],
};

/** Run `kiln eval`; returns the exit status. */
export async function evalCommand(args: ParsedArgs, io: CommandIO): Promise<number> {
  if (args.ckpt === undefined) throw new UsageError('--ckpt is required (the output folder of kiln train, or a checkpoint file)');
  if (args.data === undefined) throw new UsageError('--data is required (the text to evaluate on)');
  // bad paths fail before the backend loads
  await resolveCheckpoint(String(args.ckpt));
  corpusSources(String(args.data));
  const backend = await selectBackend(args.backend === undefined ? undefined : String(args.backend), args.threads as number | undefined);
  const { model, tokenizer, config, file, dir, step } = await loadTrained(String(args.ckpt), backend);
  const corpus = await loadCorpus(String(args.data));
  const eos = tokenizer.specialTokens.get(EOT) ?? null;
  const shards = await buildShards(corpus.documents, tokenizer, { cacheDir: join(dir, 'cache'), eos });
  const data = TokenDataset.open(shards);
  try {
    if (data.length < 2) throw new Error(`--data: '${corpus.label}' tokenises to ${data.length} token(s); at least 2 are needed`);
    const r = await evaluate(model, data, {
      blockSize: config.blockSize,
      batchSize: (args.batchSize as number | undefined) ?? 8,
      ...(args.maxBatches === undefined ? {} : { maxBatches: args.maxBatches as number }),
      backend,
    });
    const entropy = unigramEntropy(data.window(0, data.length));
    const result = {
      checkpoint: file,
      step,
      data: corpus.label,
      documents: corpus.documents.length,
      backend,
      tokens: r.tokens,
      loss: r.nll,
      perplexity: r.perplexity,
      unigramEntropy: entropy,
      unigramPerplexity: Math.exp(entropy),
      batches: r.batches,
      seconds: r.seconds,
      tokensPerSecond: r.tokens / r.seconds,
    };
    if (args.json) io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else
      io.stdout.write(
        [
          `kiln eval: ${file} (step ${step}) on ${corpus.label}, backend ${describeBackend(backend)}`,
          `  tokens           ${r.tokens}`,
          `  loss             ${r.nll.toFixed(4)} nats/token`,
          `  perplexity       ${r.perplexity.toFixed(2)}`,
          `  unigram entropy  ${entropy.toFixed(4)} (perplexity ${Math.exp(entropy).toFixed(2)})`,
          `  throughput       ${formatCount(result.tokensPerSecond)} tokens/s (${r.batches} batches in ${r.seconds.toFixed(2)}s)`,
          '',
        ].join('\n'),
      );
    return 0;
  } finally {
    data.close();
  }
}
