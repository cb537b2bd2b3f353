/**
 * One attention problem, forward and backward, for the tests that compare a backend's attention
 * kernels with ref (test/crossbackend_kernels.test.ts, test/webgpu_attention.test.ts).
 */
import * as k from '../src/index.js';
import type { Tensor } from '../src/index.js';
import { randnFromRef } from './harness.js';

/** An attention problem in one of the three layouts, with its seed. */
export interface AttnCase {
  layout: 'bhtd' | 'bthd' | 'packed';
  b: number;
  h: number;
  /** kv heads (grouped-query attention; omitted: h) */
  hkv?: number;
  tq: number;
  tk: number;
  d: number;
  dv: number;
  causal: boolean;
  offset: number;
  /** sliding window (with causal only); null or omitted for none */
  window?: number | null;
  mask: 'none' | 'bool' | 'float';
  dropout: number;
  seed: number;
}

/**
 * Run `c` on `backend`: the output, the gradients of the inputs for a random output weight, and
 * the inputs (a gradient lives as long as its tensor). Inputs, mask and weights are drawn on ref
 * and copied, so every backend gets the same problem; dropout draws from the same seed.
 */
export function runAttention(c: AttnCase, backend: string): Tensor[] {
  return k.tidy(() => {
    const gen = new k.Generator(c.seed);
    const o = { backend, generator: gen, requiresGrad: true } as const;
    let attnMask: Tensor | null = null;
    if (c.mask !== 'none') {
      const m = randnFromRef([c.b, 1, c.tq, c.tk], { backend, generator: gen }); // broadcast over heads
      attnMask = c.mask === 'bool' ? m.gt(-0.8) : m.mul(2);
    }
    const opts = { isCausal: c.causal, causalOffset: c.offset, window: c.window ?? null, attnMask, dropoutP: c.dropout, generator: new k.Generator(c.seed + 1) };
    const hkv = c.hkv ?? c.h;
    let inputs: Tensor[];
    let out: Tensor;
    if (c.layout === 'packed') {
      inputs = [randnFromRef([c.b, c.tq, (c.h + 2 * hkv) * c.d], o)];
      out = k.packedAttention(inputs[0]!, c.h, { ...opts, kvHeads: hkv });
    } else {
      const shape = (t: number, h: number, w: number): number[] => (c.layout === 'bthd' ? [c.b, t, h, w] : [c.b, h, t, w]);
      inputs = [randnFromRef(shape(c.tq, c.h, c.d), o), randnFromRef(shape(c.tk, hkv, c.d), o), randnFromRef(shape(c.tk, hkv, c.dv), o)];
      out = k.scaledDotProductAttention(inputs[0]!, inputs[1]!, inputs[2]!, { ...opts, layout: c.layout, enableGqa: true });
    }
    const w = randnFromRef(out.shape, { backend, generator: gen });
    out.mul(w).sum().backward();
    return [out, ...inputs.map((x) => x.grad!), ...inputs];
  });
}
