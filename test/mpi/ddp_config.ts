/** The model and batch of the data-parallel equivalence checks (shared by the ranks and the single-process reference). */
import { AdamW, crossEntropy, tidy, type GPT, type Tensor } from '../../src/index.js';

export const DDP_CONFIG = { vocabSize: 16, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 16, dropout: 0, bias: true, tiedHead: true };
export const DDP_BATCH = 8;
export const DDP_STEPS = 5;

/** AdamW over two groups (weight decay on matrices only), as GPT training sets it up. */
export function groupedAdamW(model: GPT): AdamW {
  const params = model.parameters();
  return new AdamW(
    [
      { params: params.filter((p) => p.rank >= 2), weightDecay: 0.1 },
      { params: params.filter((p) => p.rank < 2), weightDecay: 0 },
    ],
    { lr: 1e-2 },
  );
}

/** One process's reference: DDP_STEPS steps of `opt` on the whole batch. */
export async function trainWhole(model: GPT, opt: { zeroGrad(): void; step(): void }, idx: Tensor, tgt: Tensor): Promise<void> {
  for (let s = 0; s < DDP_STEPS; s++) {
    const l = tidy(() => {
      const loss = crossEntropy(model.forward(idx, null).logits, tgt);
      opt.zeroGrad();
      loss.backward();
      opt.step();
      return loss;
    });
    await l.item();
    l.dispose();
  }
}
