/**
 * Seeded, counter-based random numbers. A {@link Generator} is a seed and an offset into the
 * Philox stream (see `backend/philox.ts`); every backend produces the same numbers from the
 * same state, and the state is two numbers that a checkpoint can save.
 * @module
 */
import type { Backend } from '../backend/backend.js';
import { philoxFill } from '../backend/philox.js';

/** A distribution to sample (see src/backend/philox.ts for how Philox words map to values). */
export type RandomDist =
  | { kind: 'uniform'; low: number; high: number }
  | { kind: 'normal'; mean: number; std: number }
  | { kind: 'randint'; low: number; high: number };
import type { DType } from '../backend/dtype.js';
import { sizeOf } from './shape.js';
import { Tensor } from './tensor.js';
import { checkChoice, checkNumber, show } from './validate.js';

/** The state of a {@link Generator}: its seed and how many Philox counters it has used. */
export interface GeneratorState {
  seed: number;
  offset: number;
}

// One map per watchGenerators call in progress: each generator drawn from, with its state before the first draw.
const watchers: Map<Generator, GeneratorState>[] = [];

function drawing(g: Generator): void {
  for (const w of watchers) if (!w.has(g)) w.set(g, g.getState());
}

/**
 * @internal Run `fn` and return, with its result, the state each generator `fn` drew from had
 * before its first draw: restoring those states replays `fn`'s random numbers exactly
 * (checkpointing recomputes a forward with the same dropout masks this way).
 */
export function watchGenerators<T>(fn: () => T): { result: T; states: Map<Generator, GeneratorState> } {
  const states = new Map<Generator, GeneratorState>();
  watchers.push(states);
  try {
    return { result: fn(), states };
  } finally {
    watchers.splice(watchers.lastIndexOf(states), 1);
  }
}

/** A stream of random numbers (like `torch.Generator`). */
export class Generator {
  private _seed: number;
  private _offset = 0;

  constructor(seed = 0) {
    this._seed = checkSeed('Generator', seed);
  }

  /** Restart the stream from `seed`. */
  manualSeed(seed: number): this {
    this._seed = checkSeed(this === defaultGenerator ? 'manualSeed' : 'Generator.manualSeed', seed);
    this._offset = 0;
    return this;
  }

  get seed(): number {
    return this._seed;
  }

  /** Save the position in the stream. */
  getState(): GeneratorState {
    return { seed: this._seed, offset: this._offset };
  }

  /** Return to a saved position. */
  setState(state: GeneratorState): void {
    if (state === null || typeof state !== 'object') throw new Error(`Generator.setState: state must be { seed, offset }, got ${show(state)}`);
    checkNumber('Generator.setState', 'offset', state.offset, { integer: true, min: 0 });
    this._seed = checkSeed('Generator.setState', state.seed);
    this._offset = state.offset;
  }

  /**
   * @internal Reserve `n` elements' worth of the stream (⌈n/4⌉ counters) for a kernel that draws
   * itself (attention dropout); returns the seed and the first counter.
   */
  reserve(n: number): { seed: number; offset: number } {
    drawing(this);
    const at = { seed: this._seed, offset: this._offset };
    this._offset += Math.ceil(n / 4);
    return at;
  }

  /**
   * `n` values of `dist` on the host, exactly the values a tensor draw of n elements would hold
   * (in f64), advancing the stream alike. For host-side choices (batch starts, search draws) that
   * must reproduce but need no device and no sync.
   */
  draw(n: number, dist: RandomDist): Float64Array {
    checkNumber('Generator.draw', 'n', n, { integer: true, min: 0 });
    checkChoice('Generator.draw', 'dist.kind', dist?.kind, ['uniform', 'normal', 'randint'] as const);
    drawing(this);
    const out = new Float64Array(n);
    philoxFill(out, dist, this._seed, this._offset);
    this._offset += Math.ceil(n / 4);
    return out;
  }

  /** @internal Fill a new tensor from the stream and advance it. */
  sample(backend: Backend, shape: readonly number[], dtype: DType, dist: RandomDist, op = 'random'): Tensor {
    drawing(this);
    const out = Tensor._empty(backend, shape, dtype, op);
    const n = sizeOf(shape);
    if (n > 0) {
      const [p0, p1] = dist.kind === 'normal' ? [dist.mean, dist.std] : [dist.low, dist.high];
      backend.random({ out: out._storage('random'), dist: dist.kind, p0, p1, seed: this._seed, offset: this._offset });
    }
    this._offset += Math.ceil(n / 4);
    return out;
  }

  /** @internal */
  uniform(backend: Backend, shape: readonly number[], dtype: DType, low: number, high: number): Tensor {
    return this.sample(backend, shape, dtype, { kind: 'uniform', low, high });
  }
}

function checkSeed(op: string, seed: number): number {
  return checkNumber(op, 'seed', seed, { integer: true, min: 0 });
}

/** The generator used when none is passed. */
export const defaultGenerator = new Generator(0);

/** Reseed the default generator (like `torch.manual_seed`). */
export function manualSeed(seed: number): void {
  defaultGenerator.manualSeed(seed);
}
