/**
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011), the
 * counter-based generator every backend uses, so that a seed gives the same numbers on every
 * backend and a resumed run continues exactly where it stopped.
 *
 * Element i of a random fill at generator offset `offset` takes word `i mod 4` of
 * `philox(key = seed, counter = offset + ⌊i/4⌋)`. The mapping of words to values:
 * - uniform in [low, high): `low + (high − low)·u` with `u = (w >>> 8)·2⁻²⁴` (24 bits, exact in f32);
 * - normal: Box–Muller on the pair of words (0,1) or (2,3) of the same counter:
 *   `r = √(−2·ln(1 − u₀))`, `z₀ = r·cos(2π·u₁)`, `z₁ = r·sin(2π·u₁)`;
 * - randint in [low, high): `low + ⌊w·(high − low)/2³²⌋` (the high word of the exact 64-bit product; span ≤ 2³¹).
 * A fill of n elements advances the generator's offset by ⌈n/4⌉.
 * @module
 */
import { checkChoice, checkNumber, show } from '../tensor/validate.js';

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

// High 32 bits of the 64-bit product of two u32, from 16-bit halves (exact in doubles).
function mulhi(a: number, b: number): number {
  const aH = a >>> 16;
  const aL = a & 0xffff;
  const bH = b >>> 16;
  const bL = b & 0xffff;
  const lo = aL * bL;
  const mid1 = aH * bL;
  const mid2 = aL * bH;
  const carry = ((lo >>> 16) + (mid1 & 0xffff) + (mid2 & 0xffff)) >>> 16;
  return (aH * bH + (mid1 >>> 16) + (mid2 >>> 16) + carry) >>> 0;
}

/**
 * Ten rounds of Philox4x32 on counter (c0..c3) with key (k0, k1); writes four u32 words into `out`.
 */
export function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number, out: Uint32Array): void {
  [c0, c1, c2, c3, k0, k1].forEach((w, i) => checkNumber('philox4x32', ['c0', 'c1', 'c2', 'c3', 'k0', 'k1'][i]!, w, { integer: true, min: 0, max: 0xffffffff }));
  if (!(out instanceof Uint32Array) || out.length < 4) throw new Error(`philox4x32: out must be a Uint32Array of at least 4 words, got ${show(out)}`);
  philox(c0, c1, c2, c3, k0, k1, out);
}

// philox4x32 without the argument checks, for the loops below
function philox(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number, out: Uint32Array): void {
  for (let r = 0; r < 10; r++) {
    const hi0 = mulhi(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/** Split a seed (a non-negative integer below 2⁵³) into the two key words. */
export function seedKey(seed: number): [number, number] {
  return [seed >>> 0, Math.floor(seed / 4294967296) >>> 0];
}

const TWO_POW_M24 = 2 ** -24;

/**
 * Fill `out` (any numeric array) with `n` values of `dist` from (seed, offset), exactly as the
 * module documentation specifies. The reference implementation of {@link Backend.random}.
 */
export function philoxFill(
  out: { [i: number]: number; length: number },
  dist:
    | { kind: 'uniform'; low: number; high: number }
    | { kind: 'normal'; mean: number; std: number }
    | { kind: 'randint'; low: number; high: number },
  seed: number,
  offset: number,
): void {
  const op = 'philoxFill';
  if (out === null || typeof out !== 'object' || typeof out.length !== 'number') throw new Error(`${op}: out must be an array, got ${show(out)}`);
  if (dist === null || typeof dist !== 'object' || Array.isArray(dist)) throw new Error(`${op}: dist must be { kind, … }, got ${show(dist)}`);
  checkChoice(op, 'dist.kind', dist.kind, ['uniform', 'normal', 'randint'] as const);
  for (const [k, v] of Object.entries(dist)) if (k !== 'kind') checkNumber(op, `dist.${k}`, v);
  checkNumber(op, 'seed', seed, { integer: true, min: 0 });
  checkNumber(op, 'offset', offset, { integer: true, min: 0 });
  const [k0, k1] = seedKey(seed);
  const w = new Uint32Array(4);
  const n = out.length;
  for (let base = 0, ctr = offset; base < n; base += 4, ctr++) {
    // 128-bit counter: low word and the next one carry the offset (below 2⁵³).
    philox(ctr >>> 0, Math.floor(ctr / 4294967296) >>> 0, 0, 0, k0, k1, w);
    const end = Math.min(4, n - base);
    if (dist.kind === 'uniform') {
      const span = dist.high - dist.low;
      for (let j = 0; j < end; j++) out[base + j] = dist.low + span * ((w[j]! >>> 8) * TWO_POW_M24);
    } else if (dist.kind === 'randint') {
      const span = dist.high - dist.low;
      for (let j = 0; j < end; j++) out[base + j] = dist.low + mulhi(w[j]!, span);
    } else {
      for (let p = 0; p < end; p += 2) {
        const u0 = (w[p]! >>> 8) * TWO_POW_M24;
        const u1 = (w[p + 1]! >>> 8) * TWO_POW_M24;
        const r = Math.sqrt(-2 * Math.log(1 - u0));
        const t = 2 * Math.PI * u1;
        out[base + p] = dist.mean + dist.std * r * Math.cos(t);
        if (p + 1 < end) out[base + p + 1] = dist.mean + dist.std * r * Math.sin(t);
      }
    }
  }
}

/**
 * The Philox word of element `e` of a stream at (seed, offset): word `e mod 4` of the block at
 * counter `offset + ⌊e/4⌋`. Kernels that draw per element (attention dropout) use it; the last
 * block is cached, so walking e in order costs one Philox evaluation per four elements.
 */
export class PhiloxWords {
  private readonly k0: number;
  private readonly k1: number;
  private block = -1;
  private readonly w = new Uint32Array(4);

  constructor(
    seed: number,
    private readonly offset: number,
  ) {
    checkNumber('PhiloxWords', 'seed', seed, { integer: true, min: 0 });
    checkNumber('PhiloxWords', 'offset', offset, { integer: true, min: 0 });
    [this.k0, this.k1] = seedKey(seed);
  }

  word(e: number): number {
    const block = Math.floor(e / 4);
    if (block !== this.block) {
      const ctr = this.offset + block;
      philox(ctr >>> 0, Math.floor(ctr / 4294967296) >>> 0, 0, 0, this.k0, this.k1, this.w);
      this.block = block;
    }
    return this.w[e % 4]!;
  }
}

/**
 * The integer threshold of dropout with probability `p`: an element is kept where its Philox word
 * is ≥ ⌈p·2³²⌉ (so P(keep) = 1 − p up to 2⁻³², and every backend decides alike, with integers).
 */
export function dropoutThreshold(p: number): number {
  checkNumber('dropoutThreshold', 'p', p, { min: 0, max: 1 });
  if (!(p > 0)) return 0;
  return Math.min(4294967296, Math.ceil(p * 4294967296));
}
