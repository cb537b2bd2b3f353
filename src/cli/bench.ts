/**
 * `kiln bench`: run the benchmarks in the repository's `bench/` folder (`bench/index.ts` with
 * tsx, in a child process with the terminal passed through). The benches are part of the source
 * repository, not of the published package.
 * @module
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { UsageError, shown, type CommandSpec } from './args.js';

/** The declaration of `kiln bench` (its arguments go to the bench unparsed). */
export const benchSpec: CommandSpec = {
  name: 'bench',
  summary: "run kiln's benchmarks (kernels and a GPT training step against peers)",
  usage: ['bench                 list the benches', 'bench NAME [ARGS...]  run one (e.g. kiln bench gpt --steps 20)'],
  options: [],
  positional: true,
  notes: ["The benches live in the source repository's bench/ folder and run with tsx (a development dependency)."],
};

/** The repository root: two folders above this file (src/cli or dist/cli). */
const root = fileURLToPath(new URL('../../', import.meta.url));

/** The benches in `dir`, as bench/index.ts finds them: every `.ts` file but index, util and names starting with `_`. */
function benchNames(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => f.slice(0, -3))
    .filter((n) => n !== 'index' && n !== 'util' && !n.startsWith('_'))
    .sort();
}

/** Run `kiln bench ARGS...`: spawns `tsx bench/index.ts ARGS...` and returns its exit status. */
export async function benchCommand(argv: readonly string[]): Promise<number> {
  const index = `${root}bench/index.ts`;
  if (!existsSync(index)) throw new Error(`the benches are not here (${index} is missing): they ship with the source repository, not the package`);
  const name = argv[0];
  if (name !== undefined && !['--help', '-h', 'list'].includes(name)) {
    const names = benchNames(`${root}bench`);
    if (!names.includes(name)) throw new UsageError(`unknown bench '${shown(name)}'; available: ${names.join(', ')}`);
  }
  let tsxCli: string;
  try {
    tsxCli = createRequire(import.meta.url).resolve('tsx/cli');
  } catch {
    throw new Error('the benches need tsx (npm install in the kiln repository installs it)');
  }
  const child = spawn(process.execPath, [tsxCli, index, ...argv], { cwd: root, stdio: 'inherit' });
  const forward = (sig: NodeJS.Signals): void => void child.kill(sig);
  process.on('SIGINT', forward);
  try {
    return await new Promise<number>((res, rej) => {
      child.on('error', (e) => rej(new Error(`cannot start the benches: ${e.message}`)));
      child.on('exit', (code, signal) => res(code ?? (signal === 'SIGINT' ? 130 : 1)));
    });
  } finally {
    process.off('SIGINT', forward);
  }
}
