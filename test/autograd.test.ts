/**
 * Autograd semantics: leaves and graph nodes, accumulation into `.grad`, explicit upstream
 * gradients, retainGraph, zeroGrad, detach, noGrad/enableGrad, retainGrad, fan-out, dtype
 * rules, in-place copies on leaves, and that forward + backward inside `tidy` leaks nothing.
 *
 * Oracles are plain loops over the inputs (d(Σ w·x²)/dx = 2·w·x and the like), on random shapes.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  bf16Bits,
  bf16Value,
  crossEntropy,
  enableGrad,
  f16Bits,
  f16Value,
  isGradEnabled,
  layerNorm,
  matmul,
  memory,
  mul,
  add,
  embedding,
  SGD,
  noGrad,
  softmax,
  sum,
  tensor,
  Tensor,
  tidy,
  type DType,
} from '../src/index.js';
import { describeBackends, expectClose, FC, floatDtype, floatsArb, shapeArb, size, stored, tol, values, scoped } from './harness.js';

/** A shape (size-0 and size-1 dims included) with values as `round` stores them (f64 by default: unrounded). */
const caseArb = (maxRank = 4, maxDim = 4, round: (v: number) => number = (v) => v): fc.Arbitrary<{ shape: number[]; x: number[]; w: number[] }> =>
  shapeArb(maxRank, maxDim).chain((shape) =>
    fc.record({
      shape: fc.constant(shape),
      x: floatsArb(size(shape), 5).map((a) => a.map(round)),
      w: floatsArb(size(shape), 5).map((a) => a.map(round)),
    }),
  );

const RUNS = { numRuns: Math.max(10, Math.round(FC.numRuns / 2)) };


describeBackends('autograd', (backend) => {
  // the semantics are checked in f64 where the backend stores it, else in f32 (WebGPU)
  const fdt = floatDtype(backend);
  const asStored = stored(fdt);
  const float = (data: readonly number[], shape: readonly number[], requiresGrad = false): Tensor =>
    tensor(Float64Array.from(data), shape, { backend, dtype: fdt, requiresGrad });
  const cases = (maxRank?: number, maxDim?: number): ReturnType<typeof caseArb> => caseArb(maxRank, maxDim, asStored);
  const live = (): number => memory().backends[backend]?.tensors ?? 0;
  const { rtol, atol } = tol(fdt);

  describe('leaves and graph nodes', () => {
    it('leaves requiring grad are leaves; op outputs carry a gradFn naming the op and its inputs', () => {
      fc.assert(
        fc.property(cases(), ({ shape, x }) =>
          tidy(() => {
            const leaf = float(x, shape, true);
            expect(leaf.requiresGrad).toBe(true);
            expect(leaf.isLeaf).toBe(true);
            expect(leaf.gradFn).toBeNull();
            expect(leaf.grad).toBeNull();

            const c = float(x, shape);
            expect(c.requiresGrad).toBe(false);
            expect(c.isLeaf).toBe(true);

            const y = mul(leaf, c);
            expect(y.requiresGrad).toBe(true);
            expect(y.isLeaf).toBe(false);
            expect(y.gradFn).not.toBeNull();
            expect(y.gradFn!.op).toBe('mul');
            expect(y.gradFn!.inputs).toContain(leaf);
            expect(y.gradFn!.output).toBe(y);

            // an op over tensors that need no grad records nothing
            const z = mul(c, c);
            expect(z.requiresGrad).toBe(false);
            expect(z.isLeaf).toBe(true);
            expect(z.gradFn).toBeNull();

            // requiresGrad_ turns a plain tensor into a leaf that requires grad
            expect(c.requiresGrad_()).toBe(c);
            expect(c.requiresGrad).toBe(true);
            expect(c.isLeaf).toBe(true);
            c.requiresGrad = false;
            expect(c.requiresGrad).toBe(false);

            // a non-leaf cannot stop requiring grad
            expect(() => {
              y.requiresGrad = false;
            }).toThrow(/non-leaf/);
          }),
        ),
        RUNS,
      );
    });

    it('requiresGrad on an integer or bool tensor throws', () => {
      tidy(() => {
        for (const dtype of ['i32', 'bool'] as DType[]) {
          expect(() => tensor([1, 0, 1], { backend, dtype, requiresGrad: true })).toThrow(/floating/);
          const t = tensor([1, 0, 1], { backend, dtype });
          expect(() => {
            t.requiresGrad = true;
          }).toThrow(/floating/);
          expect(() => t.requiresGrad_()).toThrow(/floating/);
          expect(t.requiresGrad).toBe(false);
        }
      });
    });

    it('backward on a tensor that does not require grad throws', () => {
      fc.assert(
        fc.property(cases(), ({ shape, x }) =>
          tidy(() => {
            const c = float(x, shape);
            expect(() => sum(c).backward()).toThrow(/does not require grad/);
            expect(() => c.backward(float(x, shape))).toThrow(/does not require grad/);
          }),
        ),
        RUNS,
      );
    });
  });

  describe('backward', () => {
    it('a tensor used twice (x·x) gets the summed gradient 2x', async () => {
      await fc.assert(
        fc.asyncProperty(cases(), async ({ shape, x }) =>
          scoped(async (step) => {
            const leaf = step(() => {
              const leaf = float(x, shape, true);
              sum(mul(leaf, leaf)).backward();
              return leaf;
            });
            expectClose(await values(leaf.grad!), x.map((v) => 2 * v), { rtol, atol }, 'd Σx²/dx');
            // fan-out through separate branches too: Σ(x·w) + Σ(x·x) + Σ x
            const other = step(() => {
              const other = float(x, shape, true);
              const w = float(x.map((v) => v + 1), shape);
              sum(mul(other, w)).add(sum(mul(other, other))).add(sum(other)).backward();
              return other;
            });
            expectClose(await values(other.grad!), x.map((v) => v + 1 + 2 * v + 1), { rtol, atol }, 'fan-out');
          }),
        ),
        RUNS,
      );
    });

    it('backward(grad) takes an explicit upstream gradient for a non-scalar output; without it, it throws', async () => {
      await fc.assert(
        fc.asyncProperty(cases(), async ({ shape, x, w }) =>
          scoped(async (step) => {
            const leaf = step(() => {
              const leaf = float(x, shape, true);
              const y = mul(leaf, leaf);
              if (size(shape) !== 1) expect(() => y.backward()).toThrow(/pass grad/);
              // a wrong-shaped upstream gradient is refused
              expect(() => y.backward(float([...x, 0], [x.length + 1]), { retainGraph: true })).toThrow(/does not match/);
              y.backward(float(w, shape));
              return leaf;
            });
            expectClose(await values(leaf.grad!), x.map((v, i) => 2 * v * w[i]!), { rtol, atol }, 'd(x²)·g');
          }),
        ),
        RUNS,
      );
    });

    it('.grad never aliases the upstream gradient (leaf.backward(g), or through retainGrad), and a retained root gets ones', async () => {
      await fc.assert(
        fc.asyncProperty(cases(), async ({ shape, x, w }) =>
          scoped(async (step) => {
            const { leaf, mid, y } = step(() => {
              const leaf = float(x, shape, true);
              const g = float(w, shape);
              leaf.backward(g);
              const mid = float(x, shape, true);
              const y = mul(mid, 1).retainGrad();
              y.backward(g);
              noGrad(() => g.copy_(7));
              return { leaf, g, mid, y };
            });
            expect(await values(leaf.grad!)).toEqual(w);
            expect(await values(y.grad!)).toEqual(w);
            expect(await values(mid.grad!)).toEqual(w);

            const root = step(() => {
              const root = sum(mul(leaf, leaf)).retainGrad();
              root.backward();
              return root;
            });
            expect(await values(root.grad!)).toEqual([1]);
          }),
        ),
        RUNS,
      );
    });

    it('a one-element output of any rank needs no explicit gradient (implied 1)', async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 0, max: 3 }), floatsArb(1, 5).map((a) => a.map(asStored)), async (rank, [v]) =>
          scoped(async (step) => {
            const leaf = step(() => {
              const leaf = float([v!], Array(rank).fill(1), true);
              mul(leaf, leaf).backward();
              return leaf;
            });
            expectClose(await values(leaf.grad!), [2 * v!], { rtol, atol });
          }),
        ),
        RUNS,
      );
    });

    it('gradients accumulate into .grad across backward calls (retainGraph, or a fresh forward)', async () => {
      await fc.assert(
        fc.asyncProperty(cases(), async ({ shape, x, w }) =>
          scoped(async (step) => {
            const once = x.map((v, i) => 2 * v * w[i]!);
            // the graph lives only inside one tidy, so .grad after the first backward is read
            // from a copy taken there (the second backward replaces .grad)
            const { a, first, b } = step(() => {
              const wt = float(w, shape);
              // the same graph twice, kept with retainGraph
              const a = float(x, shape, true);
              const la = sum(mul(mul(a, a), wt));
              la.backward(undefined, { retainGraph: true });
              const first = a.grad!.clone();
              la.backward();
              // two fresh forwards
              const b = float(x, shape, true);
              for (let k = 0; k < 3; k++) sum(mul(mul(b, b), wt)).backward();
              return { a, first, b };
            });
            expectClose(await values(first), once, { rtol, atol }, 'first backward');
            expectClose(await values(a.grad!), once.map((g) => 2 * g), { rtol, atol }, 'accumulated (retainGraph)');
            expectClose(await values(b.grad!), once.map((g) => 3 * g), { rtol, atol }, 'accumulated (fresh forwards)');
          }),
        ),
        RUNS,
      );
    });

    it('backward twice through one graph without retainGraph throws a clear Error; with retainGraph it works', async () => {
      await fc.assert(
        fc.asyncProperty(cases(), async ({ shape, x, w }) =>
          scoped(async (step) => {
            const leaf = step(() => {
              const leaf = float(x, shape, true);
              const loss = sum(mul(mul(leaf, leaf), float(w, shape)));
              loss.backward();
              let err: unknown = null;
              try {
                loss.backward();
              } catch (e) {
                err = e;
              }
              expect(err).toBeInstanceOf(Error);
              expect((err as Error).message).toMatch(/retainGraph/);
              return leaf;
            });
            // the failed call left the first gradient alone
            expectClose(await values(leaf.grad!), x.map((v, i) => 2 * v * w[i]!), { rtol, atol });

            const l2 = step(() => {
              const l2 = float(x, shape, true);
              const loss2 = sum(mul(mul(l2, l2), float(w, shape)));
              for (let k = 0; k < 3; k++) loss2.backward(undefined, { retainGraph: true });
              loss2.backward(); // the last may free the graph
              return l2;
            });
            expectClose(await values(l2.grad!), x.map((v, i) => 8 * v * w[i]!), { rtol, atol });
          }),
        ),
        RUNS,
      );
    });

    it('zeroGrad drops the gradient, and the next backward starts afresh', async () => {
      await fc.assert(
        fc.asyncProperty(cases(), async ({ shape, x, w }) =>
          scoped(async (step) => {
            const leaf = step(() => {
              const leaf = float(x, shape, true);
              const wt = float(w, shape);
              sum(mul(leaf, wt)).backward();
              expect(leaf.grad).not.toBeNull();
              leaf.zeroGrad();
              expect(leaf.grad).toBeNull();
              leaf.zeroGrad(); // twice is harmless
              sum(mul(leaf, wt)).backward();
              return leaf;
            });
            expectClose(await values(leaf.grad!), w, { rtol, atol }, 'after zeroGrad');
          }),
        ),
        RUNS,
      );
    });
  });

  describe('cutting and controlling the graph', () => {
    it('detach cuts the graph (x·detach(x) has gradient x, not 2x) and shares the values', async () => {
      await fc.assert(
        fc.asyncProperty(cases(), async ({ shape, x }) =>
          scoped(async (step) => {
            const { leaf, d } = step(() => {
              const leaf = float(x, shape, true);
              const d = leaf.detach();
              expect(d.requiresGrad).toBe(false);
              expect(d.isLeaf).toBe(true);
              expect(d.gradFn).toBeNull();
              return { leaf, d };
            });
            expect(await values(d)).toEqual(x);
            step(() => {
              sum(mul(leaf, d)).backward();
            });
            expectClose(await values(leaf.grad!), x, { rtol, atol }, 'd Σ x·detach(x) / dx');
            step(() => {
              // detaching a non-leaf cuts everything above it
              const y = mul(leaf, leaf);
              const dy = y.detach();
              expect(dy.requiresGrad).toBe(false);
              expect(() => sum(dy).backward()).toThrow(/does not require grad/);
            });
          }),
        ),
        RUNS,
      );
    });

    it('noGrad records nothing; enableGrad inside noGrad records again; the mode is restored, also after a throw', async () => {
      await fc.assert(
        fc.asyncProperty(cases(), async ({ shape, x }) =>
          scoped(async (step) => {
            const { leaf, plain } = step(() => {
              const leaf = float(x, shape, true);
              expect(isGradEnabled()).toBe(true);
              const [plain, inner] = noGrad(() => {
                expect(isGradEnabled()).toBe(false);
                const p = mul(leaf, leaf);
                const q = enableGrad(() => {
                  expect(isGradEnabled()).toBe(true);
                  return mul(leaf, leaf);
                });
                expect(isGradEnabled()).toBe(false);
                return [p, q];
              });
              expect(isGradEnabled()).toBe(true);
              expect(plain!.requiresGrad).toBe(false);
              expect(plain!.gradFn).toBeNull();
              expect(inner!.requiresGrad).toBe(true);
              expect(inner!.gradFn?.op).toBe('mul');
              // the graph of `inner` lives only in this tidy: backward here, read after it
              sum(inner!).backward();
              return { leaf, plain: plain! };
            });
            expect(await values(plain)).toEqual(x.map((v) => asStored(v * v)));
            expectClose(await values(leaf.grad!), x.map((v) => 2 * v), { rtol, atol }, 'through enableGrad');

            expect(() =>
              noGrad(() => {
                throw new Error('boom');
              }),
            ).toThrow('boom');
            expect(isGradEnabled()).toBe(true);
            expect(() =>
              noGrad(() =>
                enableGrad(() => {
                  throw new Error('boom');
                }),
              ),
            ).toThrow('boom');
            expect(isGradEnabled()).toBe(true);
          }),
        ),
        RUNS,
      );
    });

    it('retainGrad keeps an intermediate gradient; other intermediates keep none', async () => {
      await fc.assert(
        fc.asyncProperty(cases(), async ({ shape, x, w }) =>
          scoped(async (step) => {
            const { leaf, h } = step(() => {
              const leaf = float(x, shape, true);
              const h = mul(leaf, 3).retainGrad(); // h = 3x
              const other = mul(leaf, 2); // not retained
              const loss = sum(mul(mul(h, h), float(w, shape))).add(sum(other)); // Σ w·h² + Σ 2x
              loss.backward();
              expect(other.grad).toBeNull();
              expect(loss.grad).toBeNull();
              expect(h.grad).not.toBeNull();
              expect(h.grad!.dtype).toBe(fdt);
              return { leaf, h };
            });
            expectClose(await values(h.grad!), x.map((v, i) => 2 * w[i]! * 3 * v), { rtol, atol }, 'dL/dh = 2wh');
            expectClose(await values(leaf.grad!), x.map((v, i) => 18 * w[i]! * v + 2), { rtol, atol }, 'dL/dx = 18wx + 2');
          }),
        ),
        RUNS,
      );
    });
  });

  describe('dtypes and in-place', () => {
    for (const [dtype, round] of [
      ['bf16', (v: number) => bf16Value(bf16Bits(v))],
      ['f16', (v: number) => f16Value(f16Bits(v))],
      ['f32', Math.fround],
    ] as const)
      it(`gradients of ${dtype} leaves come back in ${dtype}`, async () => {
        await fc.assert(
          fc.asyncProperty(caseArb(3), async ({ shape, x, w }) =>
            scoped(async (step) => {
              const leaf = step(() => {
                const leaf = tensor(x, shape, { backend, dtype, requiresGrad: true });
                const wt = tensor(w, shape, { backend, dtype });
                sum(mul(mul(leaf, leaf), wt)).backward();
                expect(leaf.grad!.dtype).toBe(dtype);
                return leaf;
              });
              // oracle: 2·x·w from the stored (rounded) inputs, within the dtype's tolerance
              const xr = x.map(round);
              const wr = w.map(round);
              const { rtol: r, atol: a } = tol(dtype);
              expectClose(await values(leaf.grad!), xr.map((v, i) => 2 * v * wr[i]!), { rtol: 2 * r, atol: 2 * a }, `${dtype} grad`);
              // a wider leaf (f64, or f32 where f64 is not stored) mixed into the op promotes it: each leaf's grad keeps its own dtype
              const big = step(() => {
                const big = float(w, shape, true);
                sum(mul(leaf, big)).backward();
                expect(leaf.grad!.dtype).toBe(dtype);
                expect(big.grad!.dtype).toBe(fdt);
                return big;
              });
              expectClose(await values(big.grad!), xr, { rtol, atol }, `${fdt} grad of the mixed product`);
            }),
          ),
          { numRuns: Math.max(5, Math.round(RUNS.numRuns / 2)) },
        );
      });

    it('copy_ into a leaf that requires grad throws outside noGrad and works inside', async () => {
      await fc.assert(
        fc.asyncProperty(cases(), async ({ shape, x, w }) =>
          scoped(async (step) => {
            const { leaf, src } = step(() => {
              const leaf = float(x, shape, true);
              const src = float(w, shape);
              expect(() => leaf.copy_(src)).toThrow(/noGrad/);
              expect(() => leaf.copy_(1.5)).toThrow(/noGrad/);
              return { leaf, src };
            });
            expect(await values(leaf)).toEqual(x);
            step(() => noGrad(() => leaf.copy_(src)));
            expect(await values(leaf)).toEqual(w);
            expect(leaf.requiresGrad).toBe(true);
            expect(leaf.isLeaf).toBe(true);
            // the updated values are used by the next forward/backward
            step(() => {
              sum(mul(leaf, leaf)).backward();
            });
            expectClose(await values(leaf.grad!), w.map((v) => 2 * v), { rtol, atol });
            // a leaf that does not require grad may be written anywhere
            const plain = step(() => {
              const plain = float(x, shape);
              plain.copy_(src);
              return plain;
            });
            expect(await values(plain)).toEqual(w);
          }),
        ),
        RUNS,
      );
    });
  });

  describe('memory', () => {
    it('after tidy(() => { forward; backward }) the live tensors are the baseline plus the grads kept on the leaves', () => {
      const arb = fc
        .tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.boolean())
        .chain(([n, d, c, retain]) =>
          fc.record({
            n: fc.constant(n),
            d: fc.constant(d),
            c: fc.constant(c),
            retain: fc.constant(retain),
            x: floatsArb(n * d, 3),
            w: floatsArb(d * c, 3),
            g: floatsArb(d, 3),
            targets: fc.array(fc.integer({ min: 0, max: c - 1 }), { minLength: n, maxLength: n }),
          }),
        );
      fc.assert(
        fc.property(arb, ({ n, d, c, retain, x, w, g, targets }) => {
          const before = live();
          const xs = float(x, [n, d], true);
          const ws = float(w, [d, c], true);
          const gamma = float(g, [d], true);
          const constant = float(g, [d]); // a leaf that needs no grad gets none
          const leaves = [xs, ws, gamma, constant];
          const baseline = live();
          expect(baseline - before).toBe(leaves.length);

          const step = (): void =>
            tidy(() => {
              const h = layerNorm(mul(xs, constant), [d], gamma);
              const logits = matmul(softmax(h), ws);
              const t = tensor(Int32Array.from(targets), [n], { backend, dtype: 'i32' });
              const loss = crossEntropy(logits, t, { reduction: 'sum' }).add(sum(mul(h, h)));
              loss.backward(undefined, { retainGraph: retain });
            });

          step();
          const withGrads = leaves.filter((l) => l.grad !== null).length;
          expect(withGrads).toBe(3);
          expect(constant.grad).toBeNull();
          expect(live()).toBe(baseline + withGrads);
          // a second step accumulates into the same grads: no more tensors
          step();
          expect(live()).toBe(baseline + withGrads);
          // a forward alone leaves nothing either
          tidy(() => {
            mul(xs, xs);
          });
          expect(live()).toBe(baseline + withGrads);

          for (const l of leaves) l.zeroGrad();
          expect(live()).toBe(baseline);
          step();
          for (const l of leaves) l.dispose(); // disposing a leaf frees its grad too
          expect(live()).toBe(before);
        }),
        RUNS,
      );
    });
  });
});

describeBackends('autograd: tensors changed in place after the forward', (backend) => {
  it('backward refuses to use an operand, an output or an index changed in place, naming the op; unread ones are fine', async () => {
    const f32 = { backend, requiresGrad: true } as const;
    // mul reads both operands
    const a = tensor([1, 2], f32);
    const b = tensor([3, 4], { backend });
    const y = mul(a, b).sum();
    b.copy_(tensor([5, 6], { backend }));
    expect(() => y.backward()).toThrow(/^backward: 'mul' needs its input 1 \[2\] f32 as it was in the forward, but it was modified in place since \(version 0 → 1\); clone it/);
    // add reads neither: changing an operand afterwards is fine (as PyTorch)
    const c = tensor([1, 2], { backend });
    const z = add(a, c).sum();
    c.copy_(tensor([7, 7], { backend }));
    z.backward();
    expect(await values(a.grad!)).toEqual([1, 1]);
    // softmax reads its output; a view of it changed in place counts (views share the counter)
    const s = softmax(tensor([1, 2, 3], f32));
    const view = s.reshape([3, 1]);
    view.copy_(tensor([[0], [0], [1]], { backend }));
    expect(() => s.sum().backward()).toThrow(/^backward: 'softmax' needs its output \[3\] f32 as it was in the forward/);
    // embedding reads its ids
    const w = tensor([[1, 2], [3, 4]], f32);
    const ids = tensor([1, 0], { backend, dtype: 'i32' });
    const e = embedding(ids, w).sum();
    ids.copy_(tensor([0, 0], { backend, dtype: 'i32' }));
    expect(() => e.backward()).toThrow(/^backward: 'indexSelect' needs its index \[2\] i32/);
    for (const t of [a, b, y, c, z, s, view, w, ids, e]) t.dispose();
  });

  it('an optimizer step between forward and backward changes the parameters in place, and backward says so', () => {
    const p = tensor([1, 2], { backend, requiresGrad: true });
    const x = tensor([3, 4], { backend });
    const y = mul(p, x).sum();
    y.backward(undefined, { retainGraph: true });
    const opt = new SGD([p], { lr: 0.1 });
    opt.step();
    expect(() => y.backward()).toThrow(/^backward: 'mul' needs its input 0 \[2\] f32 as it was in the forward, but it was modified in place since/);
    for (const t of [p, x, y]) t.dispose();
  });
});
