/**
 * How the MPI tests start their ranks: why MPI cannot run here (or null), and `mpirun -np 2` of
 * a script under tsx on one machine (shared memory, no binding, one kiln thread per rank).
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { findMpiAddon } from '../../src/index.js';

/** Why the MPI tests cannot run on this machine, or null when they can. */
export function mpiMissing(): string | null {
  if (spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).status !== 0) return 'mpirun was not found (apt-get install openmpi-bin libopenmpi-dev)';
  const addon = findMpiAddon();
  return 'unavailable' in addon ? addon.unavailable : null;
}

/** The flags of `mpirun` before `-np N` (as root in a container, ranks may outnumber cores). */
export const MPIRUN_FLAGS = ['--allow-run-as-root', '--oversubscribe', '--bind-to', 'none', '--mca', 'btl', 'self,vader'];

/** Run `script args…` as 2 ranks. */
export function mpirun2(script: string, args: string[], env: NodeJS.ProcessEnv = {}, timeout = 180_000): SpawnSyncReturns<string> {
  return spawnSync('mpirun', [...MPIRUN_FLAGS, '-np', '2', process.execPath, '--import', 'tsx', script, ...args], {
    encoding: 'utf8',
    env: { ...process.env, KILN_NUM_THREADS: '1', ...env },
    timeout,
  });
}
