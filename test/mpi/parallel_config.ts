/**
 * The models and batches of the tensor- and pipeline-parallel equivalence checks, shared by the
 * ranks (test/mpi/parallel_check.mts) and the single-process reference (test/distributed_parallel.test.ts).
 */
/** A GPT whose 4 heads and 64 MLP units split over 2 ranks. */
export const TP_CONFIG = { vocabSize: 16, blockSize: 8, nLayer: 2, nHead: 4, nEmbd: 16, dropout: 0, bias: true, tiedHead: true };
/** A GPT of 3 blocks (2 on the first stage, 1 on the last), with grouped-query heads and an untied head. */
export const PP_CONFIG = { vocabSize: 16, blockSize: 8, nLayer: 3, nHead: 4, kvHeads: 2, nEmbd: 16, dropout: 0, bias: true, tiedHead: false };
/** The same with a tied head: its gradient is summed between the first and the last stage. */
export const PP_TIED_CONFIG = { ...PP_CONFIG, nLayer: 2, kvHeads: 4, tiedHead: true };
export const BATCH = 8;
export const STEPS = 3;
export const MICRO_BATCHES = 4;
export const LR = 1e-2;
/** Seeds: the model's initialisation, the batch. */
export const TP_SEED = 100;
export const PP_SEED = 200;
export const DATA_SEED = 5;
/** The parallel Linear checks: x [2, 3, IN] against Linear(IN, OUT) drawn from LINEAR_SEED. */
export const LINEAR = { in: 6, out: 8, seed: 7 };
