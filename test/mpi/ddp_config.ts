/** The model and batch of the data-parallel equivalence check (shared by the ranks and the single-process reference). */
export const DDP_CONFIG = { vocabSize: 16, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 16, dropout: 0, bias: true, tiedHead: true };
export const DDP_BATCH = 8;
export const DDP_STEPS = 5;
