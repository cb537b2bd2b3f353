/**
 * `kiln finetune`: supervised fine-tuning of a model that `kiln train` saved: thin glue over
 * {@link finetune} (src/finetune/pipeline.ts), which a script can call with the same options.
 * @module
 */
import { resolve } from 'node:path';
import { finetune, type FinetuneEvent } from '../finetune/pipeline.js';
import { UsageError, type CommandSpec, type ParsedArgs } from './args.js';
import { resolveCheckpoint } from './sample.js';
import { backendOption, describeBackend, loadCorpus, selectBackend, threadsOption, type CommandIO } from './train.js';

/** The declaration of `kiln finetune`. */
export const finetuneSpec: CommandSpec = {
  name: 'finetune',
  summary: 'supervised fine-tuning (chat template, loss on responses, optional LoRA) of a model saved by kiln train',
  usage: ['finetune --ckpt DIR|FILE [--data FILE.jsonl] [--lora RANK] [--style GUIDE.json] [--steps N] [--lr LR] [--out DIR]'],
  options: [
    { name: 'ckpt', type: 'string', placeholder: 'DIR|FILE', help: 'the output folder of kiln train (its newest checkpoint is used) or a checkpoint file' },
    { name: 'data', type: 'string', placeholder: 'FILE', help: 'instructions, JSONL: {"prompt", "response"} or {"messages": [{role, content}]} per line', defaultText: 'a built-in set made from the default corpus' },
    { name: 'lora', type: 'int', min: 1, max: 4096, placeholder: 'RANK', help: 'train LoRA adapters of this rank on the blocks\' Linear layers instead of every weight' },
    { name: 'style', type: 'string', placeholder: 'GUIDE', help: 'a style guide (JSON: name, tone, rules): its system prompt leads every example, responses are rewritten to follow it, and its score is reported' },
    { name: 'steps', type: 'int', min: 1, help: 'optimizer steps', defaultText: '200' },
    { name: 'lr', type: 'number', above: 0, help: 'peak learning rate (cosine decay)', defaultText: '1e-3 (3e-3 with --lora)' },
    { name: 'out', type: 'string', placeholder: 'DIR', help: 'where the checkpoint, tokenizer, adapters and metrics.json go', defaultText: 'kiln-finetune' },
    { name: 'seed', type: 'int', min: 0, help: 'seed of the data order and the adapters', defaultText: '0' },
    backendOption,
    threadsOption,
  ],
};

/** Run `kiln finetune`; returns the exit status. */
export async function finetuneCommand(args: ParsedArgs, io: CommandIO): Promise<number> {
  if (args.ckpt === undefined) throw new UsageError('--ckpt is required (the output folder of kiln train, or a checkpoint file)');
  await resolveCheckpoint(String(args.ckpt)); // a bad --ckpt fails before the backend loads
  const backend = await selectBackend(args.backend === undefined ? undefined : String(args.backend), args.threads as number | undefined);
  const out = resolve(String(args.out ?? 'kiln-finetune'));
  const log = (s: string): void => void io.stderr.write(`${s}\n`);
  const steps = (args.steps as number | undefined) ?? 200;
  const every = Math.max(1, Math.floor(steps / 10));
  const onEvent = (e: FinetuneEvent): void => {
    if (e.type === 'data') log(`data: ${e.train} training and ${e.heldOut} held-out examples (${e.source})${e.skipped ? `; ${e.skipped} skipped: longer than the model's context` : ''}`);
    else if (e.type === 'eval') log(`held-out ${e.when}: exact match ${(100 * e.result.exactMatch).toFixed(1)}%, ROUGE-L ${e.result.rougeL.toFixed(3)}${e.style !== undefined ? `, style ${(100 * e.style).toFixed(1)}%` : ''}`);
    else if (e.step % every === 0 || e.step === 1) log(`step ${e.step}/${steps}: loss ${e.loss.toFixed(4)}, lr ${e.lr.toExponential(2)}`);
  };
  log(`kiln finetune: ${String(args.ckpt)} on ${describeBackend(backend)}${args.lora ? `, LoRA rank ${String(args.lora)}` : ''}`);
  const documents = args.data === undefined ? (await loadCorpus(undefined)).documents : undefined;
  const r = await finetune({
    ckpt: String(args.ckpt),
    out,
    backend,
    steps,
    ...(args.data !== undefined ? { data: String(args.data) } : { documents }),
    ...(args.lora !== undefined ? { lora: args.lora as number } : {}),
    ...(args.lr !== undefined ? { lr: args.lr as number } : {}),
    ...(args.seed !== undefined ? { seed: args.seed as number } : {}),
    ...(args.style !== undefined ? { style: String(args.style) } : {}),
    onEvent,
  });
  io.stdout.write(
    [
      `kiln finetune: ${r.trainExamples} examples, ${steps} steps in ${r.seconds.toFixed(1)}s; trained ${r.trainableParameters} of ${r.parameters} parameters`,
      `  held-out exact match  ${(100 * r.before.exactMatch).toFixed(1)}% → ${(100 * r.after.exactMatch).toFixed(1)}%`,
      `  held-out ROUGE-L      ${r.before.rougeL.toFixed(3)} → ${r.after.rougeL.toFixed(3)}`,
      ...(r.after.style !== undefined ? [`  held-out style score  ${(100 * r.before.style!).toFixed(1)}% → ${(100 * r.after.style).toFixed(1)}% (${r.styleRules!.map((x) => `${x.rule}: ${(100 * x.passRate).toFixed(0)}%`).join('; ')})`] : []),
      `  loss                  ${r.losses[0]!.toFixed(4)} → ${r.losses[r.losses.length - 1]!.toFixed(4)}`,
      `  wrote ${r.checkpoint}${r.adapters ? `, ${r.adapters}/` : ''}, tokenizer.json and metrics.json in ${out}`,
      '',
    ].join('\n'),
  );
  return 0;
}
