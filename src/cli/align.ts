/**
 * `kiln reward` and `kiln align --method dpo|ppo`: thin glue over {@link trainReward} and
 * {@link align} (src/align/pipeline.ts), which a script can call with the same options.
 * @module
 */
import { resolve } from 'node:path';
import { align, trainReward, type PreferenceRunOptions } from '../align/pipeline.js';
import { UsageError, type CommandSpec, type OptionSpec, type ParsedArgs } from './args.js';
import { resolveCheckpoint } from './sample.js';
import { backendOption, describeBackend, loadCorpus, selectBackend, threadsOption, type CommandIO } from './train.js';

const common: OptionSpec[] = [
  { name: 'ckpt', type: 'string', placeholder: 'DIR|FILE', help: 'the output folder of kiln train or kiln finetune, or a checkpoint file' },
  { name: 'data', type: 'string', placeholder: 'FILE', help: 'preference pairs, JSONL: {"prompt", "chosen", "rejected"} per line', defaultText: 'a built-in set made from the default corpus' },
  { name: 'steps', type: 'int', min: 1, help: 'optimizer steps (PPO: rollout batches)', defaultText: '200' },
  { name: 'lr', type: 'number', above: 0, help: 'learning rate', defaultText: '3e-4 (reward), 1e-4 (align)' },
  { name: 'seed', type: 'int', min: 0, help: 'seed of the data order and the samples', defaultText: '0' },
  backendOption,
  threadsOption,
];

/** The declaration of `kiln reward`. */
export const rewardSpec: CommandSpec = {
  name: 'reward',
  summary: 'train a reward model (Bradley–Terry on preference pairs) from a model saved by kiln train',
  usage: ['reward --ckpt DIR|FILE [--data FILE.jsonl] [--steps N] [--out DIR]'],
  options: [...common, { name: 'out', type: 'string', placeholder: 'DIR', help: 'where the reward model, tokenizer and metrics.json go', defaultText: 'kiln-reward' }],
};

/** The declaration of `kiln align`. */
export const alignSpec: CommandSpec = {
  name: 'align',
  summary: 'align a model to preferences with DPO, or with PPO against a kiln reward model',
  usage: ['align --ckpt DIR|FILE --method dpo [--data FILE.jsonl] [--beta B] [--steps N] [--out DIR]', 'align --ckpt DIR|FILE --method ppo --reward DIR [--steps N] [--out DIR]'],
  options: [
    ...common,
    { name: 'method', type: 'string', choices: ['dpo', 'ppo'], placeholder: 'M', help: 'DPO on the pairs, or PPO with the reward model' },
    { name: 'reward', type: 'string', placeholder: 'DIR', help: 'PPO: the output folder of kiln reward' },
    { name: 'beta', type: 'number', above: 0, help: "DPO's β, or PPO's KL coefficient", defaultText: '0.1 (dpo), 0.05 (ppo)' },
    { name: 'out', type: 'string', placeholder: 'DIR', help: 'where the aligned model, tokenizer and metrics.json go', defaultText: 'kiln-align' },
  ],
};

async function options(args: ParsedArgs, io: CommandIO, dflt: string): Promise<PreferenceRunOptions> {
  if (args.ckpt === undefined) throw new UsageError('--ckpt is required (the output folder of kiln train, or a checkpoint file)');
  await resolveCheckpoint(String(args.ckpt)); // a bad --ckpt fails before the backend loads
  const backend = await selectBackend(args.backend === undefined ? undefined : String(args.backend), args.threads as number | undefined);
  const log = (s: string): void => void io.stderr.write(`${s}\n`);
  const steps = (args.steps as number | undefined) ?? 200;
  const every = Math.max(1, Math.floor(steps / 10));
  log(`kiln ${dflt.slice(5)}: ${String(args.ckpt)} on ${describeBackend(backend)}`);
  return {
    ckpt: String(args.ckpt),
    out: resolve(String(args.out ?? dflt)),
    backend,
    steps,
    ...(args.data !== undefined ? { data: String(args.data) } : { documents: (await loadCorpus(undefined)).documents }),
    ...(args.lr !== undefined ? { lr: args.lr as number } : {}),
    ...(args.seed !== undefined ? { seed: args.seed as number } : {}),
    onEvent: (e) => {
      if (e.type === 'data') log(`data: ${e.train} training and ${e.heldOut} held-out pairs (${e.source})`);
      else if (e.type === 'eval') log(`held-out ${e.when}: ${Object.entries(e.metrics).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')}`);
      else if (e.step % every === 0 || e.step === 1) log(`step ${e.step}/${steps}: ${dflt === 'kiln-align' && args.method === 'ppo' ? 'mean reward' : 'loss'} ${e.loss.toFixed(4)}`);
    },
  };
}

/** Run `kiln reward`; returns the exit status. */
export async function rewardCommand(args: ParsedArgs, io: CommandIO): Promise<number> {
  const o = await options(args, io, 'kiln-reward');
  const r = await trainReward(o);
  io.stdout.write(
    `kiln reward: ${r.trainPairs} pairs, ${r.losses.length} steps in ${r.seconds.toFixed(1)}s; held-out accuracy ${(100 * r.accuracyBefore).toFixed(1)}% → ${(100 * r.accuracyAfter).toFixed(1)}% (${r.heldOutPairs} pairs); wrote ${r.checkpoint}\n`,
  );
  return 0;
}

/** Run `kiln align`; returns the exit status. */
export async function alignCommand(args: ParsedArgs, io: CommandIO): Promise<number> {
  if (args.method === undefined) throw new UsageError('--method is required (dpo or ppo)');
  if (args.method === 'ppo' && args.reward === undefined) throw new UsageError('--method ppo needs --reward, the output folder of kiln reward');
  const o = await options(args, io, 'kiln-align');
  const r = await align({
    ...o,
    method: args.method as 'dpo' | 'ppo',
    ...(args.reward !== undefined ? { reward: String(args.reward) } : {}),
    ...(args.beta !== undefined ? { beta: args.beta as number } : {}),
  });
  const fmt = (m: Record<string, number>): string => Object.entries(m).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ');
  io.stdout.write(`kiln align (${r.method}): ${r.losses.length} steps in ${r.seconds.toFixed(1)}s\n  held-out before  ${fmt(r.before)}\n  held-out after   ${fmt(r.after)}\n  wrote ${r.checkpoint}\n`);
  return 0;
}
