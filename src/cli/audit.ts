/**
 * `kiln audit tokens`: the glitch-token audit of a model saved by `kiln train` (see
 * `metrics/token_audit.ts`): the tokens whose unembedding rows look untrained, most suspect first,
 * each with its id, its text (escaped), its norms, its z-score and how often it occurs in the
 * training text. The counts come from `--data` tokenised with the run's tokenizer, or else from
 * the run's own training split (its data and split seed are in run.json and the checkpoint),
 * tokenised into the shards `kiln train` cached.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TokenDataset } from '../data/batches.js';
import { buildShards } from '../data/shards.js';
import type { TextDocument } from '../data/sources.js';
import { splitDocuments } from '../data/split.js';
import { auditTokens, escapeToken, tokenCounts, type TokenAudit } from '../metrics/token_audit.js';
import { UsageError, shown, type CommandSpec, type ParsedArgs } from './args.js';
import { formatCount } from './progress.js';
import { loadTrained, resolveCheckpoint, type TrainedModel } from './sample.js';
import { EOT, backendOption, corpusSources, loadCorpus, selectBackend, type CommandIO, type RunFile } from './train.js';

/** The audits `kiln audit` runs (the first argument). */
export const AUDITS = ['tokens'] as const;

/** The declaration of `kiln audit`. */
export const auditSpec: CommandSpec = {
  name: 'audit',
  summary: 'audit a model saved by kiln train: under-trained (glitch) tokens',
  usage: ['audit tokens --ckpt DIR|FILE [--top N] [--data PATH] [--matrix unembedding|embedding] [--json]'],
  positional: true,
  options: [
    { name: 'ckpt', type: 'string', placeholder: 'DIR|FILE', help: 'the output folder of kiln train (its newest checkpoint is used) or a checkpoint file' },
    { name: 'top', type: 'int', min: 1, max: 1e6, help: 'tokens to list, most suspect first', defaultText: '20' },
    {
      name: 'data',
      type: 'string',
      placeholder: 'PATH',
      help: "count the tokens of this text (file, folder or .jsonl) instead of the run's training split",
      defaultText: "the run's training split, when its data can still be read",
    },
    { name: 'matrix', type: 'string', choices: ['unembedding', 'embedding'], help: 'the matrix to read (the same one in a tied GPT)', defaultText: 'unembedding' },
    backendOption,
    { name: 'json', type: 'boolean', help: 'print the audit as JSON (every token)' },
  ],
  notes: [
    'Each token is scored by what is left of its row once the mean row and the first principal component are removed (Land & Bartolo 2024, "Fishing for Magikarp"), as a robust z-score: tokens the model never trained on sit far below the rest. The count column says how often each occurs in the training text.',
  ],
};

// the token ids of `documents` (cached shards in the run's cache), as counts per token
async function countsOf(documents: TextDocument[], t: TrainedModel): Promise<{ counts: Float64Array; tokens: number }> {
  const eos = t.tokenizer.specialTokens.get(EOT) ?? null;
  const shards = await buildShards(documents, t.tokenizer, { cacheDir: join(t.dir, 'cache'), eos });
  const data = TokenDataset.open(shards);
  try {
    return { counts: tokenCounts(data.window(0, data.length), t.tokenizer.vocabSize), tokens: data.length };
  } finally {
    data.close();
  }
}

// the run's training split as kiln train made it (run.json's data; the checkpoint's split seed), or why not
async function trainingSplit(t: TrainedModel): Promise<{ documents: TextDocument[]; label: string } | { why: string }> {
  const runPath = join(t.dir, 'run.json');
  if (!existsSync(runPath)) return { why: `no run.json beside the checkpoint, so the training text is unknown (pass --data)` };
  let run: RunFile;
  try {
    run = JSON.parse(readFileSync(runPath, 'utf8')) as RunFile;
  } catch (e) {
    return { why: `${runPath} is unreadable (${(e as Error).message})` };
  }
  if (run.data !== null && typeof run.data === 'string' && !existsSync(run.data)) return { why: `the run's data '${run.data}' is gone (pass --data)` };
  const corpus = await loadCorpus(run.data ?? undefined);
  const { train } = splitDocuments(corpus.documents, { valFraction: t.run.config.valFraction, seed: t.run.config.seed });
  return { documents: train, label: `the training split of ${corpus.label}` };
}

/** The audit as text: a summary and the top `top` tokens. */
export function formatAudit(a: TokenAudit, top: number, header: string): string {
  const lines = [header];
  lines.push(`  ${a.flaggedByWeights} token(s) at z ≤ −${a.zThreshold} (residual norm: median ${a.median.toPrecision(4)}, MAD ${a.mad.toPrecision(4)})`);
  if (a.rare)
    lines.push(
      `  ${a.rare.count} token(s) never in the counted text${a.rare.count ? `; ${a.rare.inLowest} of them are among the ${a.rare.count} lowest z-scores` : ''}`,
    );
  lines.push('');
  lines.push(`  ${'rank'.padStart(4)}  ${'id'.padStart(6)}  ${'z'.padStart(7)}  ${'norm'.padStart(7)}  ${'residual'.padStart(8)}  ${'count'.padStart(8)}  token`);
  a.tokens.slice(0, top).forEach((t, i) => {
    const count = t.count === null ? '—' : formatCount(t.count);
    lines.push(
      `  ${String(i + 1).padStart(4)}  ${String(t.id).padStart(6)}  ${t.z.toFixed(2).padStart(7)}  ${t.norm.toFixed(4).padStart(7)}  ${t.residualNorm.toFixed(4).padStart(8)}  ${count.padStart(8)}  ${escapeToken(t.text)}${t.special ? ' (special)' : ''}`,
    );
  });
  return `${lines.join('\n')}\n`;
}

/** Run `kiln audit`; returns the exit status. */
export async function auditCommand(args: ParsedArgs, io: CommandIO): Promise<number> {
  const [what, ...rest] = args._;
  if (what === undefined) throw new UsageError(`which audit? (${AUDITS.join(', ')}): kiln audit tokens --ckpt DIR`);
  if (!(AUDITS as readonly string[]).includes(what)) throw new UsageError(`unknown audit '${shown(what)}'; the audits are ${AUDITS.join(', ')}`);
  if (rest.length) throw new UsageError(`unexpected argument '${shown(rest[0]!)}'`);
  if (args.ckpt === undefined) throw new UsageError('--ckpt is required (the output folder of kiln train, or a checkpoint file)');
  await resolveCheckpoint(String(args.ckpt)); // bad paths fail before the backend loads
  if (args.data !== undefined) corpusSources(String(args.data));
  const backend = await selectBackend(args.backend === undefined ? undefined : String(args.backend));
  const t = await loadTrained(String(args.ckpt), backend);
  let counted: { counts: Float64Array; tokens: number; label: string } | null = null;
  let note = '';
  if (args.data !== undefined) {
    const corpus = await loadCorpus(String(args.data));
    counted = { ...(await countsOf(corpus.documents, t)), label: corpus.label };
  } else {
    const split = await trainingSplit(t);
    if ('why' in split) note = `no token counts: ${split.why}`;
    else counted = { ...(await countsOf(split.documents, t)), label: split.label };
  }
  const matrix = (args.matrix as 'unembedding' | 'embedding' | undefined) ?? 'unembedding';
  const audit = await auditTokens(t.model, t.tokenizer as Parameters<typeof auditTokens>[1], { matrix, ...(counted ? { counts: counted.counts } : {}) });
  if (args.json) {
    io.stdout.write(`${JSON.stringify({ checkpoint: t.file, step: t.step, counts: counted ? { source: counted.label, tokens: counted.tokens } : null, ...audit }, null, 2)}\n`);
    return 0;
  }
  if (note) io.stderr.write(`kiln audit: ${note}\n`);
  const header =
    `kiln audit tokens: ${t.file} (step ${t.step}), ${matrix} matrix [${audit.vocabSize} × ${audit.width}]` +
    (counted ? `; counts from ${counted.label} (${formatCount(counted.tokens)} tokens)` : '');
  io.stdout.write(formatAudit(audit, (args.top as number | undefined) ?? 20, header));
  return 0;
}
