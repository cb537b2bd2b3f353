/**
 * Bad-input table: the optim exports (see sweep.ts). Optimizers are swept through their
 * constructor (parameters or groups, and every option) and through the methods that take user
 * input (`Optimizer.*` on an SGD or a stepped Adam); schedules through their factories and
 * `LRScheduler.*`; the per-parameter update functions with a whole, valid argument list.
 */
import {
  Adam,
  AdamW,
  GradScaler,
  LAMB,
  LRScheduler,
  SGD,
  autocastScope,
  constantLr,
  rand,
  tensor,
  zeros,
  type Tensor,
} from '../../src/index.js';
import { T, bool, choice, func, int, num, opts, type Bad, type Param, type Spec, type Table } from './sweep.js';

const OPTIONAL = { optional: true } as const;

const disposed = (): Tensor => {
  const t = rand([2]);
  t.dispose();
  return t;
};

/** What an optimizer's constructor takes: tensors, or parameter groups. */
function params(): Param {
  const refuse: Bad[] = [
    { value: 5, needle: '5' },
    { value: 'xyzzy', needle: 'xyzzy' },
    { value: null, needle: 'null' },
    { value: undefined, needle: 'undefined' },
    { value: {}, needle: 'object' },
    { value: () => rand([3]), needle: 'Tensor' },
    { value: [], needle: 'empty' },
    { value: [5], needle: '5' },
    { value: () => [rand([2]), null], needle: 'null' },
    { value: () => [disposed()], needle: 'disposed' },
    { value: () => [tensor([1, 2], { dtype: 'i32' })], needle: 'i32' },
    { value: () => [{ params: 5 }], needle: '5' },
    { value: () => [{ params: [rand([2])], bogusOption: 1 }], needle: 'bogusOption' },
    { value: () => [{ params: [rand([2])], lr: -1 }], needle: '-1' },
  ];
  return { kind: 'params', good: () => [rand([3])], refuse };
}

/** Adam's and LAMB's betas. */
function betas(o: { optional?: boolean } = {}): Param {
  const refuse: Bad[] = [
    { value: 0.9, needle: '0.9' },
    { value: 'xyzzy', needle: 'xyzzy' },
    { value: [0.9], needle: '[0.9]' },
    { value: [1, 0.9], needle: '1' },
    { value: [0.9, -0.1], needle: '-0.1' },
    { value: [NaN, 0.9], needle: 'NaN' },
    { value: null, needle: 'null' },
  ];
  if (!o.optional) refuse.push({ value: undefined, needle: 'undefined' });
  return { kind: 'betas', good: () => [0.9, 0.999], refuse, tolerate: o.optional ? [undefined] : [] };
}

const sgdKeys = (lr: Param): Record<string, Param> => ({
  lr,
  momentum: num({ min: 0, optional: true }),
  dampening: num(OPTIONAL),
  weightDecay: num({ min: 0, optional: true }),
  nesterov: bool(OPTIONAL),
  maximize: bool(OPTIONAL),
});
const adamKeys = (last: 'amsgrad' | 'biasCorrection'): Record<string, Param> => ({
  lr: num({ min: 0, optional: true }),
  betas: betas(OPTIONAL),
  eps: num({ min: 0, optional: true }),
  weightDecay: num({ min: 0, optional: true }),
  [last]: bool(OPTIONAL),
  maximize: bool(OPTIONAL),
});
/** A whole option set, as the update functions take it (every key required). */
const wholeOptions = (keys: Record<string, Param>, good: () => Record<string, unknown>): Param => {
  const required = Object.fromEntries(
    Object.entries(keys).map(([k, p]) => [k, { ...p, refuse: p.refuse.filter((b) => b.value !== undefined).concat(p.kind === 'number' || p.kind === 'boolean' ? [{ value: null, needle: 'null' }] : []) }]),
  );
  return opts(required, { good, optional: false });
};

/** A parameter's state, as the update functions take it. */
function paramState(minStep: number): Param {
  const refuse: Bad[] = [
    { value: 5, needle: '5' },
    { value: 'xyzzy', needle: 'xyzzy' },
    { value: null, needle: 'null' },
    { value: undefined, needle: 'undefined' },
    { value: { step: 1.5, tensors: {} }, needle: '1.5' },
    { value: { step: 'x', tensors: {} }, needle: 'x' },
    { value: { step: 1, tensors: 5 }, needle: '5' },
  ];
  if (minStep > 0) refuse.push({ value: { step: minStep - 1, tensors: {} }, needle: String(minStep - 1) });
  return { kind: 'state', good: () => ({ step: 1, tensors: {} }), refuse };
}

/** The callback that gives (or creates) a state tensor of a [4] parameter. */
function stateTensorFn(name: string): Param {
  const p = func(() => () => zeros([4]));
  return { ...p, kind: name, refuse: [...p.refuse, { value: () => () => 5, needle: '5' }, { value: () => () => zeros([3]), needle: '[3]' }] };
}

/** Parameters that have gradients, for clipping. */
function withGrads(): Param {
  const param = (): Tensor => {
    const p = rand([3]);
    p.grad = rand([3]);
    return p;
  };
  return {
    kind: 'params',
    good: () => [param(), param()],
    refuse: [
      { value: 5, needle: '5' },
      { value: 'xyzzy', needle: 'xyzzy' },
      { value: null, needle: 'null' },
      { value: undefined, needle: 'undefined' },
      { value: {}, needle: 'object' },
      { value: [5], needle: '5' },
      { value: () => [param(), null], needle: 'null' },
      { value: () => [disposed()], needle: 'disposed' },
    ],
  };
}

/** An SGD over one fresh tensor. */
const sgd = (): SGD => new SGD([rand([3])], { lr: 0.1 });

/** An Adam over one [3] parameter after one step (so it has state). */
function steppedAdam(): Adam {
  const p = rand([3]);
  const opt = new Adam([p]);
  p.grad = rand([3]);
  opt.step();
  return opt;
}

/** Free an optimizer's parameters and state. */
function release(o: { paramGroups: { params: Tensor[] }[]; disposeState(): void }): void {
  o.disposeState();
  for (const g of o.paramGroups) for (const p of g.params) p.dispose();
}

function then(run: () => unknown, cleanup: () => void): unknown {
  try {
    return run();
  } finally {
    cleanup();
  }
}

/** A spec of `Class.method` on a fresh instance from `make`, released after the call. */
function method<M>(make: () => M, call: (m: M, ...a: any[]) => unknown, params: Param[], prefix: string, cleanup: (m: M) => void): Spec {
  return { params: [{ kind: 'fixed', good: make, refuse: [] }, ...params], call: (m: M, ...a: unknown[]) => then(() => call(m, ...a), () => cleanup(m)), prefix };
}

const releaseScheduler = (s: LRScheduler): void => release(s.optimizer as unknown as SGD);
const scheduler = (): LRScheduler => new LRScheduler(sgd(), constantLr());

function adamStateDict(): Param {
  const sd = (): ReturnType<Adam['stateDict']> => steppedAdam().stateDict();
  return {
    kind: 'state dict',
    good: sd,
    refuse: [
      { value: 5, needle: '5' },
      { value: 'xyzzy', needle: 'xyzzy' },
      { value: null, needle: 'null' },
      { value: undefined, needle: 'undefined' },
      { value: [1], needle: '[1]' },
      { value: () => ({ ...sd(), optimizer: 'SGD' }), needle: 'SGD' },
      { value: () => ({ ...sd(), paramGroups: [{ params: [0], options: { lr: -2 } }] }), needle: '-2' },
      { value: () => ({ ...sd(), paramGroups: [{ params: [0], options: 5 }] }), needle: '5' },
      { value: () => ({ ...sd(), paramGroups: [5] }), needle: '5' },
      { value: () => ({ ...sd(), state: { 0: { step: -1, tensors: {} } } }), needle: '-1' },
      { value: () => ({ ...sd(), state: { 5: { step: 1, tensors: {} } } }), needle: '5' },
      { value: () => ({ ...sd(), state: { 0: { step: 1, tensors: { expAvg: disposed() } } } }), needle: 'expAvg' },
      { value: () => ({ ...sd(), state: { 0: { step: 1, tensors: { expAvg: rand([4]) } } } }), needle: '[4]' },
    ],
  };
}

function group(): Param {
  return {
    kind: 'group',
    good: () => ({ params: [rand([2])] }),
    refuse: [
      { value: 5, needle: '5' },
      { value: 'xyzzy', needle: 'xyzzy' },
      { value: null, needle: 'null' },
      { value: undefined, needle: 'undefined' },
      { value: [1], needle: '[1]' },
      { value: {}, needle: 'params' },
      { value: { params: 5 }, needle: '5' },
      { value: { params: [5] }, needle: '5' },
      { value: () => ({ params: [disposed()] }), needle: 'disposed' },
      { value: () => ({ params: [rand([2])], lr: -1 }), needle: '-1' },
      { value: () => ({ params: [rand([2])], bogusOption: 1 }), needle: 'bogusOption' },
    ],
  };
}

function schedule(o: { optional?: boolean } = {}): Param {
  const p = func(() => constantLr());
  if (!o.optional) return p;
  return { ...p, refuse: p.refuse.filter((b) => b.value !== undefined), tolerate: [undefined] };
}

const decay = (): Param => opts({ warmupSteps: int({ min: 0, optional: true }), totalSteps: int({ min: 0 }), minLr: num({ min: 0, optional: true }) }, { good: () => ({ warmupSteps: 2, totalSteps: 10 }), optional: false });

const ADAM_WHOLE = (): Record<string, unknown> => ({ lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: false, maximize: false });
const LAMB_WHOLE = (): Record<string, unknown> => ({ lr: 1e-3, betas: [0.9, 0.999], eps: 1e-6, weightDecay: 0, biasCorrection: true, maximize: false });
const SGD_WHOLE = (): Record<string, unknown> => ({ lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false, maximize: false });

export const OPTIM_TABLE: Table = {
  // optimizers
  Optimizer: { exempt: 'abstract base class (its constructor is protected); its methods are swept as Optimizer.* on an SGD or an Adam' },
  'Optimizer.addParamGroup': method(sgd, (o, g) => o.addParamGroup(g), [group()], 'SGD.addParamGroup', release),
  'Optimizer.loadStateDict': method(steppedAdam, (o, sd) => o.loadStateDict(sd), [adamStateDict()], 'Adam.loadStateDict', release),
  'Optimizer.stateOf': method(steppedAdam, (o, p) => o.stateOf(p), [T()], 'Adam.stateOf', release),
  SGD: { params: [params(), opts(sgdKeys(num({ min: 0 })), { good: () => ({ lr: 0.1 }), optional: false })], call: (p, o) => new SGD(p, o) },
  Adam: { params: [params(), opts(adamKeys('amsgrad'))], call: (p, o) => new Adam(p, o) },
  AdamW: { params: [params(), opts(adamKeys('amsgrad'))], call: (p, o) => new AdamW(p, o) },
  LAMB: { params: [params(), opts(adamKeys('biasCorrection'))], call: (p, o) => new LAMB(p, o) },
  stateDtype: { params: [T()] },
  byDtype: {
    params: [
      { kind: 'items', good: () => [rand([2]), rand([2])], refuse: [5, 'xyzzy', null, undefined, {}].map((v) => ({ value: v, needle: v === null ? 'null' : typeof v === 'object' ? 'object' : String(v) })) },
      { ...func(() => (t: Tensor) => t), refuse: [...func(() => (t: Tensor) => t).refuse, { value: () => () => 5, needle: '5' }] },
    ],
  },
  // per-parameter updates
  adamComposite: { params: [T(() => rand([4])), T(() => rand([4])), paramState(1), wholeOptions(adamKeys('amsgrad'), ADAM_WHOLE), bool({ good: true }), stateTensorFn('stateTensor')] },
  lambComposite: { params: [T(() => rand([4])), T(() => rand([4])), paramState(1), wholeOptions(adamKeys('biasCorrection'), LAMB_WHOLE), stateTensorFn('stateTensor')] },
  sgdUpdate: { params: [T(() => rand([4])), T(() => rand([4])), paramState(0), wholeOptions(sgdKeys(num({ min: 0 })), SGD_WHOLE), stateTensorFn('newState')] },
  // schedules
  LRScheduler: {
    params: [
      { kind: 'optimizer', good: sgd, refuse: [5, 'xyzzy', null, undefined, {}].map((v) => ({ value: v, needle: v === null ? 'null' : typeof v === 'object' ? 'object' : String(v) })) },
      schedule(),
      opts({
        baseLrs: {
          kind: 'rates',
          good: () => [0.1],
          refuse: [
            { value: 5, needle: '5' },
            { value: 'xyzzy', needle: 'xyzzy' },
            { value: [-1], needle: '-1' },
            { value: [NaN], needle: 'NaN' },
            { value: ['x'], needle: 'x' },
            { value: [0.1, 0.2], needle: '2 base rates' },
          ],
          tolerate: [undefined],
        },
      }),
    ],
    call: (o, s, x) => new LRScheduler(o, s, x),
  },
  'LRScheduler.lr': method(scheduler, (s, t, g) => s.lr(t, g), [int({ min: 0, good: 3 }), int({ min: 0, max: 0, good: 0, optional: true })], 'LRScheduler.lr', releaseScheduler),
  'LRScheduler.lrs': method(scheduler, (s, t) => s.lrs(t), [int({ min: 0, good: 3, optional: true })], 'LRScheduler.lrs', releaseScheduler),
  'LRScheduler.loadStateDict': method(
    scheduler,
    (s, sd) => s.loadStateDict(sd),
    [
      {
        kind: 'state dict',
        good: () => ({ step: 2, baseLrs: [0.1] }),
        refuse: [
          { value: 5, needle: '5' },
          { value: 'xyzzy', needle: 'xyzzy' },
          { value: null, needle: 'null' },
          { value: undefined, needle: 'undefined' },
          { value: { step: -1, baseLrs: [0.1] }, needle: '-1' },
          { value: { step: 1.5, baseLrs: [0.1] }, needle: '1.5' },
          { value: { step: 1, baseLrs: [0.1, 0.2] }, needle: '0.1,0.2' },
          { value: { step: 1, baseLrs: 'x' }, needle: 'x' },
          { value: { step: 1, baseLrs: [-1] }, needle: '-1' },
        ],
      },
    ],
    'LRScheduler.loadStateDict',
    releaseScheduler,
  ),
  constantLr: { exempt: 'takes no arguments' },
  linearWarmupLr: { params: [int({ min: 0, good: 5 }), schedule(OPTIONAL)] },
  cosineLr: { params: [decay()] },
  linearDecayLr: { params: [decay()] },
  stepLr: { params: [int({ min: 1, good: 3 }), num({ min: 0, good: 0.5, optional: true })] },
  inverseSqrtLr: { params: [int({ min: 0, good: 4, optional: true })] },
  // clipping
  clipGradNorm: {
    params: [withGrads(), num({ min: 0, infinity: true, good: 1 }), num({ min: 0, minExclusive: true, infinity: true, good: 2, optional: true }), opts({ errorIfNonfinite: bool(OPTIONAL) })],
  },
  clipGradValue: { params: [withGrads(), num({ min: 0, infinity: true, good: 0.5 })] },
  // mixed precision
  autocast: {
    params: [
      opts({ dtype: choice(['bf16', 'f16'], OPTIONAL), enabled: bool(OPTIONAL), cacheEnabled: bool(OPTIONAL) }, { good: () => ({ dtype: 'bf16' }), optional: false }),
      { kind: 'function', good: () => () => 1, refuse: [{ value: 5, needle: '5' }, { value: null, needle: 'null' }, { value: 'fn', needle: 'fn' }] },
    ],
  },
  autocastScope: {
    params: [opts({ dtype: choice(['bf16', 'f16'], OPTIONAL), enabled: bool(OPTIONAL), cacheEnabled: bool(OPTIONAL) }, { good: () => ({ dtype: 'f16' }), optional: true })],
    call: (o: never) => autocastScope(o).exit(),
  },
  autocastDtype: { exempt: 'takes no arguments' },
  GradScaler: {
    params: [
      opts(
        {
          initScale: num({ min: 0, minExclusive: true, optional: true }),
          growthFactor: num({ min: 1, minExclusive: true, optional: true }),
          backoffFactor: num({ min: 0, max: 1, minExclusive: true, maxExclusive: true, optional: true }),
          growthInterval: int({ min: 1, optional: true }),
          enabled: bool(OPTIONAL),
        },
        { good: () => ({}), optional: true },
      ),
    ],
    call: (o: never) => new GradScaler(o),
  },
  'GradScaler.scale': {
    params: [{ kind: 'scaler', good: () => new GradScaler(), refuse: [] }, { kind: 'loss', good: () => tensor(2), refuse: [{ value: 5, needle: '5' }, { value: null, needle: 'null' }, { value: 'loss', needle: 'loss' }] }],
    call: (s: GradScaler, l: Tensor) => s.scale(l),
  },
};
