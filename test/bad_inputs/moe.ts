/**
 * Bad-input table: the mixture-of-experts layer (see sweep.ts). `MoE` is swept as a constructor
 * (its size, its routing and expert options) and through its methods on a fresh instance that is
 * disposed after the call; the `moe` option of a GPT config and of a Block config is swept under
 * the model's name (its errors start with `GPT: ` and `Block: `). Everything is tiny (width 8,
 * 4 experts, one layer) so the table runs in seconds on every backend.
 */
import { Block, GPT, rand, tensor, type Tensor } from '../../src/index.js';
import { MoE } from '../../src/nn/moe.js';
import { backendName, bool, choice, construct, floatDtype, generator, int, method, num, opts, type Param, T, type Table } from './sweep.js';

const OPTIONAL = { optional: true } as const;
const E = 4;

/** The routing keys every form of the MoE config has (with `experts` experts). */
const routingKeys = (experts: number): Record<string, Param> => ({
  experts: int({ min: 1 }),
  topK: int({ min: 1, max: experts, optional: true }),
  capacityFactor: num({ min: 0, minExclusive: true, optional: true }),
  evalCapacityFactor: num({ min: 0, minExclusive: true, optional: true }),
  noisyGating: bool(OPTIONAL),
  renormalize: bool(OPTIONAL),
  routerStd: num({ min: 0, optional: true }),
});

/** The `every` of a GPT's moe config: 1 or 2. */
function every(): Param {
  return {
    kind: 'every',
    good: () => undefined,
    refuse: [
      { value: 3, needle: '3' },
      { value: 0, needle: '0' },
      { value: 1.5, needle: '1.5' },
      { value: 'x', needle: 'x' },
      { value: null, needle: 'null' },
    ],
    tolerate: [undefined],
  };
}

/** A tensor that is not `[..., 8]` floating: the wrong width, integer ids. */
function tokens(): Param {
  const p = T(() => rand([2, 3, 8]));
  return {
    ...p,
    refuse: [
      ...p.refuse,
      { value: () => rand([2, 5]), needle: '[2, 5]' },
      { value: () => tensor(Array.from({ length: 8 }, (_, i) => i), [1, 8], { dtype: 'i32' }), needle: 'i32' },
    ],
  };
}

const TINY = { vocabSize: 8, blockSize: 4, nLayer: 1, nHead: 2, nEmbd: 8 };
const small = (): MoE => new MoE(8, { experts: E, hidden: 8 });

export const MOE_TABLE: Table = {
  MoE: {
    params: [
      int({ min: 1, good: 8 }),
      opts(
        {
          ...routingKeys(E),
          hidden: int({ min: 1, optional: true }),
          bias: bool(OPTIONAL),
          activation: choice(['gelu_tanh', 'gelu'], OPTIONAL),
          dropout: num({ min: 0, max: 1, optional: true }),
          std: num({ min: 0, optional: true }),
          projStd: num({ min: 0, optional: true }),
          dtype: floatDtype(),
          backend: backendName(),
          generator: generator(),
        },
        { good: () => ({ experts: E, hidden: 8 }), optional: false },
      ),
    ],
    call: construct((n, o) => new MoE(n, o)),
  },
  'MoE.forward': method(small, (m, x: Tensor) => m.forward(x), [tokens()], 'MoE.forward'),
  'MoE.capacity': method(small, (m, n: number) => m.capacity(n), [int({ min: 0, good: 10 })], 'MoE.capacity'),
  // the moe option of the models: checked by the model, named under config.moe / moe
  'GPT.config.moe': {
    params: [opts({ ...routingKeys(2), auxLossWeight: num({ min: 0, optional: true }), every: every(), hidden: int({ min: 1, optional: true }) }, { good: () => ({ experts: 2 }), optional: false })],
    call: construct((moe) => new GPT({ ...TINY, moe })),
    prefix: 'GPT',
  },
  'Block.config.moe': {
    params: [opts(routingKeys(2), { good: () => ({ experts: 2 }), optional: false })],
    call: construct((moe) => new Block({ nEmbd: 8, nHead: 2, moe })),
    prefix: 'Block',
  },
};
