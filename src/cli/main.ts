/**
 * The `kiln` command: `kiln train`, `kiln sample`, `kiln eval`, `kiln finetune`, `kiln reward`,
 * `kiln align`, `kiln bench`, `kiln audit`, `kiln label`, with `--help` for each. {@link main} never throws: a bad argument prints one line and returns 2, any other
 * error (a missing file, a corrupt checkpoint) one line and returns 1; `KILN_DEBUG=1` adds the
 * stack trace.
 * @module
 */
// the Node entry point: gradient rules, the cpu backend, file access
import '../index.js';
import { readFileSync } from 'node:fs';
import { backends } from '../backend/registry.js';
import { UsageError, formatHelp, parseArgs, type CommandSpec, type ParsedArgs } from './args.js';
import { benchCommand, benchSpec } from './bench.js';
import { evalCommand, evalSpec } from './eval.js';
import { finetuneCommand, finetuneSpec } from './finetune.js';
import { alignCommand, alignSpec, rewardCommand, rewardSpec } from './align.js';
import { auditCommand, auditSpec } from './audit.js';
import { labelCommand, labelSpec } from './label.js';
import { sampleCommand, sampleSpec } from './sample.js';
import { trainCommand, trainSpec, type CommandIO } from './train.js';

interface Command {
  spec: CommandSpec;
  run(args: ParsedArgs, io: CommandIO, argv: readonly string[]): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  train: { spec: trainSpec, run: trainCommand },
  sample: { spec: sampleSpec, run: sampleCommand },
  eval: { spec: evalSpec, run: evalCommand },
  finetune: { spec: finetuneSpec, run: finetuneCommand },
  reward: { spec: rewardSpec, run: rewardCommand },
  align: { spec: alignSpec, run: alignCommand },
  bench: { spec: benchSpec, run: (_a, _io, argv) => benchCommand(argv) },
  audit: { spec: auditSpec, run: auditCommand },
  label: { spec: labelSpec, run: labelCommand },
};

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function backendList(): string {
  try {
    return backends()
      .map((b) => `  ${b.name.padEnd(8)} ${b.available ? 'available' : `unavailable: ${b.reason}`}`)
      .join('\n');
  } catch (e) {
    return `  (cannot list backends: ${(e as Error).message})`;
  }
}

/** The text of `kiln --help`. */
export function mainHelp(): string {
  return [
    `kiln ${version()}: train language models in TypeScript`,
    '',
    'usage: kiln <command> [options]',
    '',
    'commands:',
    ...Object.values(COMMANDS).map((c) => `  ${c.spec.name.padEnd(8)} ${c.spec.summary}`),
    '',
    "Run 'kiln <command> --help' for a command's options. With no options, 'kiln train' trains the",
    'tiny configuration on the State of the Union addresses and writes ./kiln-out.',
    '',
    'backends:',
    backendList(),
  ].join('\n');
}

/** An error message on one line: whitespace runs (newlines included) become one space. */
export function oneLine(message: string): string {
  return message.replace(/\s+/g, ' ').trim();
}

/**
 * Run the `kiln` command line (`argv` without the node and script paths) and return the exit
 * status: 0 on success, 1 on an error, 2 on a usage error, 130 when training was interrupted.
 *
 * @example
 * process.exitCode = await main(process.argv.slice(2));
 */
export async function main(argv: readonly string[], io: CommandIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? rest[0] : undefined;
    if (topic !== undefined && COMMANDS[topic]) io.stdout.write(`${formatHelp(COMMANDS[topic].spec)}\n`);
    else io.stdout.write(`${mainHelp()}\n`);
    return 0;
  }
  if (name === '--version' || name === '-v') {
    io.stdout.write(`${version()}\n`);
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    io.stderr.write(`kiln: unknown command '${name}'; the commands are ${Object.keys(COMMANDS).join(', ')} (see 'kiln --help')\n`);
    return 2;
  }
  try {
    if (name === 'bench' && (rest[0] === '--help' || rest[0] === '-h')) {
      io.stdout.write(`${formatHelp(cmd.spec)}\n`);
      return 0;
    }
    const args = name === 'bench' ? ({ _: [...rest], help: false } as ParsedArgs) : parseArgs(cmd.spec, rest);
    if (args.help) {
      io.stdout.write(`${formatHelp(cmd.spec)}\n`);
      return 0;
    }
    return await cmd.run(args, io, rest);
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    let message = oneLine(err.message);
    // a library error named for this very command (`train: the loss diverged …`) reads `kiln train: the loss …`
    if (message.startsWith(`${name}: `)) message = message.slice(name.length + 2);
    if (/is not in this build/.test(message)) message += " (this native build lacks a kernel; try '--backend ref', or rebuild with 'npm run build:native')";
    if (err instanceof UsageError) message += ` (see 'kiln ${name} --help')`;
    io.stderr.write(`kiln ${name}: ${message}\n`);
    if (process.env.KILN_DEBUG === '1' && err.stack) io.stderr.write(`${err.stack}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}
