/**
 * Run by test/distributed.test.ts under `mpirun -np 2`: rank 0 waits in an allReduce that rank 1
 * never joins, because rank 1 (argv[2]) returns early ('exits'), kills itself ('killed') or
 * throws ('throws'). The job must end, within KILN_MPI_TIMEOUT where nothing else ends it, with a
 * message that says what happened.
 */
import { communicator, tensor } from '../../src/index.js';

const mode = process.argv[2];
const comm = communicator();
await comm.barrier();
if (comm.rank === 1) {
  if (mode === 'killed') process.kill(process.pid, 'SIGKILL');
  if (mode === 'throws') throw new Error('rank 1 failed on purpose');
  // 'exits': a clean exit without the collective
} else {
  await comm.allReduce(tensor([1, 2, 3], [3]));
  console.log('rank 0: the allReduce returned (it should not have)');
}
