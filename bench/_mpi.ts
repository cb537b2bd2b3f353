/**
 * The MPI launcher shared by the multi-process benches (ddp, scaling): mpirun's flags, the argv
 * of a bench file re-run as a worker, and running a command to read back the JSON line a worker
 * prints. Kept apart from the benches because they run their worker at module load when given
 * `--worker`, so one cannot import another. Not a bench itself (the leading `_`).
 * @module
 */
import { spawnSync } from 'node:child_process';

/**
 * mpirun's flags: run as root in containers, more ranks than cores allowed, no pinning (the
 * cores are shared), shared memory between the processes.
 */
export const MPIRUN_FLAGS: readonly string[] = ['--allow-run-as-root', '--oversubscribe', '--bind-to', 'none', '--mca', 'btl', 'self,vader'];

/** The first line of `mpirun --version`, or null when there is no mpirun. */
export function mpirunVersion(): string | null {
  const r = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? (r.stdout.split('\n')[0] ?? '') : null;
}

/** How the benches launch `np` ranks, for the report: `mpirun <flags> -np <np>`. */
export function mpirunCommand(np: number): string {
  return `mpirun ${MPIRUN_FLAGS.join(' ')} -np ${np}`;
}

/** The argv that re-runs the bench file `file` (under tsx) as a worker: `node --import tsx file --worker ...args`. */
export function workerArgv(file: string, args: readonly (string | number)[]): string[] {
  return [process.execPath, '--import', 'tsx', file, '--worker', ...args.map(String)];
}

/**
 * Run `cmd args` with one kiln thread per process (`KILN_NUM_THREADS=1`, overridable by `env`)
 * and return its stdout; a failure throws with `bench` (the bench's name), the command and the
 * end of its output.
 */
export function runChecked(bench: string, cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, KILN_NUM_THREADS: '1', ...env }, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`bench ${bench}: ${cmd} ${args.join(' ')} failed (${r.status}): ${(r.stderr || r.stdout || String(r.error ?? '')).slice(-2000)}`);
  return r.stdout;
}

/** {@link runChecked} of `argv` on `np` ranks under mpirun with {@link MPIRUN_FLAGS}. */
export function runMpi(bench: string, np: number, argv: readonly string[], env: NodeJS.ProcessEnv = {}): string {
  return runChecked(bench, 'mpirun', [...MPIRUN_FLAGS, '-np', String(np), ...argv], env);
}

/** The last line of a worker's output that starts with `{`, parsed (a worker's result). */
export function lastJson<T = Record<string, number>>(bench: string, out: string): T {
  const line = out.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  if (!line) throw new Error(`bench ${bench}: a worker printed no result:\n${out.slice(-2000)}`);
  return JSON.parse(line) as T;
}
