/**
 * Invalid inputs: every op throws an Error whose message starts with the op's (public) name and
 * a colon, and names the offending shapes, axes, indices or dtypes. Inputs are generated with
 * fast-check where there is a space of them (shapes that do not broadcast, out-of-range axes and
 * indices, ragged data, bad shapes).
 *
 * Every check also asserts that a failing op leaks nothing: memory() counts the same tensors and
 * bytes before and after the failed call (an op that allocates before it validates must free
 * what it made before throwing).
 */
import { beforeAll, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  Generator,
  RefBackend,
  Tensor,
  abs,
  add,
  arange,
  argmax,
  argmin,
  cast,
  ceil,
  chunk,
  clamp,
  clone,
  concat,
  cos,
  crossEntropy,
  div,
  dropout,
  embedding,
  eq,
  erf,
  exp,
  expand,
  eye,
  flatten,
  floor,
  full,
  fullLike,
  gather,
  ge,
  gelu,
  gt,
  indexSelect,
  isfinite,
  layerNorm,
  le,
  linear,
  linspace,
  log,
  logSoftmax,
  logicalAnd,
  logicalNot,
  logicalOr,
  logsumexp,
  lt,
  manualSeed,
  maskedFill,
  matmul,
  max,
  maximum,
  mean,
  memory,
  min,
  minimum,
  mul,
  narrow,
  ne,
  neg,
  norm,
  normal,
  oneHot,
  ones,
  onesLike,
  permute,
  pow,
  rand,
  randint,
  randn,
  registerBackend,
  relu,
  reshape,
  rmsNorm,
  round,
  rsqrt,
  scaledDotProductAttention,
  scatterAdd,
  sigmoid,
  sign,
  silu,
  sin,
  slice,
  softmax,
  split,
  sqrt,
  squeeze,
  stack,
  std,
  sub,
  sum,
  tanh,
  tensor,
  tidy,
  transpose,
  tril,
  triu,
  uniform,
  unsqueeze,
  variance,
  where,
  zeros,
  zerosLike,
  type DType,
  type NestedArray,
} from '../src/index.js';
import { FC, describeBackends, size, stores, storedDtypes, syncReadable } from './harness.js';

const fmt = (s: readonly number[]): string => `[${s.join(',')}]`;

/** Independent NumPy broadcasting check (the oracle for "does not broadcast"). */
function broadcasts(...shapes: number[][]): boolean {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  for (let i = 1; i <= rank; i++) {
    const dims = new Set(shapes.map((s) => s[s.length - i] ?? 1).filter((d) => d !== 1));
    if (dims.size > 1) return false;
  }
  return true;
}

/**
 * Run `fn`, which must throw an Error whose message starts with `${op}: ` and contains every
 * needle, without leaking tensors or bytes. Returns the message.
 */
function expectOpError(op: string, fn: () => unknown, ...needles: (string | RegExp)[]): string {
  const before = memory();
  let err: unknown = null;
  let result: unknown;
  try {
    result = fn();
  } catch (e) {
    err = e;
  }
  return judgeOpError(op, before, err, result, needles);
}

/**
 * {@link expectOpError} for a read (as `item()`), which may throw at the call or reject: `fn`
 * must fail with an Error whose message starts with `${op}: ` and contains every needle, without
 * leaking tensors or bytes. Returns the message.
 */
async function expectOpErrorAsync(op: string, fn: () => Promise<unknown>, ...needles: (string | RegExp)[]): Promise<string> {
  const before = memory();
  let err: unknown = null;
  let result: unknown;
  try {
    result = await fn();
  } catch (e) {
    err = e;
  }
  return judgeOpError(op, before, err, result, needles);
}

/** The checks of {@link expectOpError}, given what the call threw (or null) and returned. */
function judgeOpError(op: string, before: ReturnType<typeof memory>, err: unknown, result: unknown, needles: (string | RegExp)[]): string {
  if (result instanceof Tensor) result.dispose();
  const after = memory();
  if (err === null) return expect.fail(`${op}: expected an error, but the call returned ${String(result)}`);
  expect(err, `${op}: thrown value`).toBeInstanceOf(Error);
  const msg = (err as Error).message;
  // every problem at once, so one failure reports them all
  const problems: string[] = [];
  if (!msg.startsWith(`${op}: `)) problems.push(`the message should start with '${op}: ' (${(err as Error).name})`);
  for (const n of needles) if (typeof n === 'string' ? !msg.includes(n) : !n.test(msg)) problems.push(`it does not mention ${String(n)}`);
  // live + collected: immune to the garbage collector finalizing older garbage meanwhile
  const leaked = after.tensors + after.collected - (before.tensors + before.collected);
  const leakedBytes = after.bytes + after.collectedBytes - (before.bytes + before.collectedBytes);
  if (leaked !== 0 || leakedBytes !== 0) problems.push(`the failed call leaked ${leaked} tensors / ${leakedBytes} bytes`);
  if (problems.length) expect.fail(`${op}: got '${msg}': ${problems.join('; ')}`);
  return msg;
}

/**
 * Run `fn`, which must return (a kernel finds the bad value on the device), after which the next
 * read of its result must reject with an Error starting `${op}: ` and containing every needle;
 * the fault is reported once (a second read succeeds) and nothing leaks. Returns the message.
 */
async function expectFault(op: string, fn: () => Tensor, ...needles: (string | RegExp)[]): Promise<string> {
  const before = memory();
  const out = fn();
  let err: unknown = null;
  try {
    await out.data();
  } catch (e) {
    err = e;
  }
  await out.data(); // the fault was taken: reading again works
  return judgeOpError(op, before, err, out, needles);
}

async function expectOpRejects(op: string, fn: () => Promise<unknown>, ...needles: string[]): Promise<void> {
  let err: unknown = null;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(Error);
  const msg = (err as Error).message;
  expect(msg.startsWith(`${op}: `), `'${msg}' should start with '${op}: '`).toBe(true);
  for (const n of needles) expect(msg).toContain(n);
}

/** Two shapes that do not broadcast: one aligned axis holds different sizes, neither 1. */
const nonBroadcastPairArb: fc.Arbitrary<[number[], number[]]> = fc
  .record({
    base: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 4 }),
    pos: fc.nat(),
    pq: fc.tuple(fc.constantFrom(0, 2, 3, 4), fc.constantFrom(0, 2, 3, 4)).filter(([p, q]) => p !== q),
    ones: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
    dropA: fc.nat(3),
    dropB: fc.nat(3),
    swap: fc.boolean(),
  })
  .map(({ base, pos, pq, ones: o, dropA, dropB, swap }): [number[], number[]] => {
    const i = pos % base.length;
    const a = base.map((d, j) => (j === i ? pq[0] : o[j] ? 1 : d));
    const b = base.map((d, j) => (j === i ? pq[1] : d));
    const pair: [number[], number[]] = [a.slice(Math.min(dropA, i)), b.slice(Math.min(dropB, i))];
    return swap ? [pair[1], pair[0]] : pair;
  });

/** An axis outside [−R, R) for R = max(rank + extra, 1). */
const badAxis = (rank: number, extra = 0): fc.Arbitrary<number> => {
  const r = Math.max(rank + extra, 1);
  return fc.oneof(fc.integer({ min: r, max: r + 3 }), fc.integer({ min: -r - 4, max: -r - 1 }));
};

const ALL: DType[] = ['f32', 'f64', 'i32', 'bf16', 'f16', 'bool'];

describeBackends('errors', (backend) => {
  beforeAll(() => {
    // A second reference backend, to hold tensors on a different backend. Registered here (after
    // describeBackends enumerated the backends) with a low priority, so the default is unchanged.
    registerBackend({ name: 'ref2', priority: -1, create: () => new RefBackend('ref2') });
  });

  const T = (shape: number[], dtype: DType = 'f32'): Tensor => zeros(shape, { backend, dtype });
  const I = (data: number[], shape: number[] = [data.length]): Tensor => tensor(data, shape, { backend, dtype: 'i32' });
  const gone = (shape: number[] = [2, 3], dtype: DType = 'f32'): Tensor => {
    const t = T(shape, dtype);
    t.dispose();
    return t;
  };

  // ---- broadcasting ------------------------------------------------------------------------

  const BINARY: [string, (a: Tensor, b: Tensor) => Tensor, DType][] = [
    ['add', add, 'f32'],
    ['sub', sub, 'f32'],
    ['mul', mul, 'f32'],
    ['div', div, 'f32'],
    ['pow', pow, 'f32'],
    ['maximum', maximum, 'f32'],
    ['minimum', minimum, 'f32'],
    ['eq', eq, 'f32'],
    ['ne', ne, 'f32'],
    ['lt', lt, 'f32'],
    ['le', le, 'f32'],
    ['gt', gt, 'f32'],
    ['ge', ge, 'f32'],
    ['logicalAnd', logicalAnd, 'bool'],
    ['logicalOr', logicalOr, 'bool'],
  ];

  for (const [op, f, dtype] of BINARY)
    it(`${op}: shapes that do not broadcast are named`, () => {
      fc.assert(
        fc.property(nonBroadcastPairArb, ([sa, sb]) => {
          expect(broadcasts(sa, sb)).toBe(false);
          tidy(() => {
            const a = T(sa, dtype);
            const b = T(sb, dtype);
            expectOpError(op, () => f(a, b), fmt(sa), fmt(sb), /broadcast/);
          });
        }),
        FC,
      );
    });

  it('where: cond, a and b that do not broadcast are named (tensor and number operands)', () => {
    fc.assert(
      fc.property(nonBroadcastPairArb, fc.nat(2), ([sa, sb], which) => {
        tidy(() => {
          const shapes = which === 0 ? [sa, sb, []] : which === 1 ? [sa, [], sb] : [[], sa, sb];
          expect(broadcasts(shapes[0]!, shapes[1]!, shapes[2]!)).toBe(false);
          const [c, a, b] = [T(shapes[0]!, 'bool'), T(shapes[1]!), T(shapes[2]!)];
          expectOpError('where', () => where(c, a, b), fmt(sa), fmt(sb));
        });
      }),
      FC,
    );
  });

  it('where: a scalar operand beside shapes that do not broadcast leaks nothing', () => {
    fc.assert(
      fc.property(nonBroadcastPairArb, fc.boolean(), ([sa, sb], first) => {
        tidy(() => {
          const c = T(sa, 'bool');
          const x = T(sb);
          expectOpError('where', () => (first ? where(c, 1, x) : where(c, x, 1)), fmt(sa), fmt(sb));
        });
      }),
      FC,
    );
  });

  it('maskedFill and copy_: a mask or source that does not broadcast to the input is named', () => {
    fc.assert(
      fc.property(nonBroadcastPairArb, ([sa, sb]) => {
        tidy(() => {
          const [x, m] = [T(sa), T(sb, 'bool')];
          expectOpError('maskedFill', () => maskedFill(x, m, 0), fmt(sa), fmt(sb));
          const dst = T(sa);
          const src = T(sb);
          expectOpError('copy_', () => dst.copy_(src), fmt(sa), fmt(sb));
        });
      }),
      FC,
    );
  });

  it('clamp: bounds that do not broadcast are reported by clamp', () => {
    tidy(() => {
      const x = T([2, 3]);
      const b = T([4]);
      expectOpError('clamp', () => clamp(x, b), '[2,3]', '[4]');
      expectOpError('clamp', () => clamp(x, 0, b), '[2,3]', '[4]');
      expectOpError('clamp', () => clamp(x), /min|max/);
    });
  });

  // ---- matmul and linear -------------------------------------------------------------------

  it('matmul: mismatched inner dimensions name both shapes, as "[m,k] @ [k2,n]"', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
        fc.tuple(fc.nat(4), fc.nat(4), fc.nat(4), fc.nat(4)).filter(([, k1, k2]) => k1 !== k2),
        (batch, [m, k1, k2, n]) => {
          tidy(() => {
            const sa = [...batch, m, k1];
            const sb = [...batch, k2, n];
            const a = T(sa);
            const b = T(sb);
            const msg = expectOpError('matmul', () => matmul(a, b));
            expect(msg.startsWith(`matmul: inner dimensions differ: ${fmt(sa)} @ ${fmt(sb)}`), msg).toBe(true);
            const bt = T([...batch, n, k2]);
            expectOpError('matmul', () => matmul(a, bt, { transB: true }), /inner dimensions differ/, fmt(sa), fmt(bt.shape));
            expectOpError('matmul', () => a.matmul(b), /inner dimensions differ/);
          });
        },
      ),
      FC,
    );
    tidy(() => {
      const [a, b] = [T([2, 3]), T([4, 5])];
      const msg = expectOpError('matmul', () => matmul(a, b));
      expect(msg).toMatch(/^matmul: inner dimensions differ: \[2,3\] @ \[4,5\]/);
    });
  });

  it('matmul: 1-D operands with mismatched sizes name the shapes the caller passed', () => {
    tidy(() => {
      const v = T([3]);
      const m = T([4, 5]);
      expectOpError('matmul', () => matmul(v, m), /inner dimensions differ/, '[3]', '[4,5]');
      expectOpError('matmul', () => matmul(m, v), /inner dimensions differ/, '[4,5]', '[3]');
      const w = T([4]);
      expectOpError('matmul', () => matmul(v, w), /inner dimensions differ/, '[3]', '[4]');
    });
  });

  it('matmul: batch dims that do not broadcast, and 0-d operands', () => {
    fc.assert(
      fc.property(nonBroadcastPairArb, ([ba, bb]) => {
        tidy(() => {
          const a = T([...ba, 2, 3]);
          const b = T([...bb, 3, 2]);
          expectOpError('matmul', () => matmul(a, b), /batch/, fmt(a.shape), fmt(b.shape));
        });
      }),
      FC,
    );
    tidy(() => {
      const [s, m] = [T([]), T([3, 4])];
      expectOpError('matmul', () => matmul(s, m), '[]');
      expectOpError('matmul', () => matmul(m, s), '[]');
    });
  });

  it('linear: input, weight and bias shapes that do not fit are named', () => {
    tidy(() => {
      const [x, w42, w3, w43, b5] = [T([2, 3]), T([4, 2]), T([3]), T([4, 3]), T([5])];
      expectOpError('linear', () => linear(x, w42), '[2,3]', '[4,2]');
      expectOpError('linear', () => linear(x, w3), '[3]');
      expectOpError('linear', () => linear(x, w43, b5), '[5]');
    });
  });

  // ---- reshape -----------------------------------------------------------------------------

  it('reshape to a different number of elements names both shapes and sizes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 4 }),
        fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 4 }),
        (from, to) => {
          fc.pre(size(from) !== size(to));
          tidy(() => {
            const x = T(from);
            expectOpError('reshape', () => reshape(x, to), fmt(from), fmt(to), String(size(from)), String(size(to)));
            expectOpError('reshape', () => x.reshape(to), fmt(to));
          });
        },
      ),
      FC,
    );
  });

  it('reshape: -1 that cannot be inferred, two -1s, and invalid sizes', () => {
    tidy(() => {
      const x = T([2, 3]);
      expectOpError('reshape', () => reshape(x, [-1, 4]), '[-1,4]');
      expectOpError('reshape', () => reshape(x, [-1, -1]), '-1');
      const e = T([0, 2]);
      expectOpError('reshape', () => reshape(e, [-1, 0]), '[-1,0]');
      expectOpError('reshape', () => reshape(x, [-2, -3]), '-2');
      expectOpError('reshape', () => reshape(x, [1.5, 4]), '1.5');
    });
  });

  // ---- axes --------------------------------------------------------------------------------

  /**
   * [op, extra rank (1 where the axis may name a new position), setup(x) → call(axis)]. Ops that
   * need an axis to exist (slice, narrow, concat, split, chunk) refuse 0-d tensors outright, tested below.
   */
  const AXIS_OPS: [string, number, (x: Tensor) => (axis: number) => unknown][] = [
    ['sum', 0, (x) => (a) => sum(x, a)],
    ['mean', 0, (x) => (a) => mean(x, a)],
    ['max', 0, (x) => (a) => max(x, a)],
    ['min', 0, (x) => (a) => min(x, a)],
    ['argmax', 0, (x) => (a) => argmax(x, a)],
    ['argmin', 0, (x) => (a) => argmin(x, a)],
    ['logsumexp', 0, (x) => (a) => logsumexp(x, a)],
    ['variance', 0, (x) => (a) => variance(x, a)],
    ['std', 0, (x) => (a) => std(x, a)],
    ['norm', 0, (x) => (a) => norm(x, 2, a)],
    ['softmax', 0, (x) => (a) => softmax(x, a)],
    ['logSoftmax', 0, (x) => (a) => logSoftmax(x, a)],
    ['squeeze', 0, (x) => (a) => squeeze(x, a)],
    ['unsqueeze', 1, (x) => (a) => unsqueeze(x, a)],
    ['flatten', 0, (x) => (a) => flatten(x, a)],
    ['transpose', 0, (x) => (a) => transpose(x, a, 0)],
    ['slice', 0, (x) => (a) => slice(x, a, 0, 1)],
    ['narrow', 0, (x) => (a) => narrow(x, a, 0, 0)],
    ['concat', 0, (x) => (a) => concat([x, x], a)],
    ['stack', 1, (x) => (a) => stack([x, x], a)],
    ['split', 0, (x) => (a) => split(x, 1, a)],
    ['chunk', 0, (x) => (a) => chunk(x, 1, a)],
    ['indexSelect', 0, (x) => {
      const idx = I([0]);
      return (a) => indexSelect(x, a, idx);
    }],
    ['gather', 0, (x) => {
      const idx = T([...x.shape], 'i32');
      return (a) => gather(x, a, idx);
    }],
    ['scatterAdd', 0, (x) => {
      const idx = T([...x.shape], 'i32');
      return (a) => scatterAdd(x, a, idx, x);
    }],
  ];

  const NEEDS_AXIS = new Set(['slice', 'narrow', 'concat', 'split', 'chunk']);

  for (const [op, extra, setup] of AXIS_OPS)
    it(`${op}: an out-of-range axis is named with the rank`, () => {
      fc.assert(
        fc.property(
          fc
            .array(fc.integer({ min: 1, max: 3 }), { minLength: NEEDS_AXIS.has(op) ? 1 : 0, maxLength: 3 })
            .chain((shape) => fc.tuple(fc.constant(shape), badAxis(shape.length, extra))),
          ([shape, axis]) => {
            tidy(() => {
              const call = setup(T(shape));
              expectOpError(op, () => call(axis), String(axis), /rank/);
            });
          },
        ),
        FC,
      );
      tidy(() => {
        const call = setup(T([2, 2]));
        expectOpError(op, () => call(0.5), '0.5');
      });
    });

  it('transpose and permute: every dim is checked', () => {
    tidy(() => {
      const x = T([2, 3]);
      expectOpError('transpose', () => transpose(x, 0, 2), '2');
      expectOpError('transpose', () => transpose(x, -3, 0), '-3');
      const v = T([3]);
      expectOpError('transpose', () => transpose(v), '[3]');
      expectOpError('permute', () => permute(x, [0, 2]), '2');
      expectOpError('permute', () => permute(x, [0, 0]), 'repeat');
      expectOpError('permute', () => permute(x, [0]), '[2,3]');
      expectOpError('sum', () => sum(x, [0, -2]), 'repeat');
      expectOpError('flatten', () => flatten(x, 1, 0), /startDim|after/);
    });
  });

  // PyTorch refuses these on 0-d tensors ("cannot be applied to a 0-dim tensor"); they must not
  // return garbage.
  for (const [op, call] of [
    ['slice', (x: Tensor) => slice(x, 0, 0, 1)],
    ['narrow', (x: Tensor) => narrow(x, 0, 0, 1)],
    ['concat', (x: Tensor) => concat([x, x], 0)],
    ['split', (x: Tensor) => split(x, 1, 0)],
    ['chunk', (x: Tensor) => chunk(x, 1, 0)],
  ] as [string, (x: Tensor) => unknown][])
    it(`${op}: a 0-d tensor has no axis to ${op} along`, () => {
      tidy(() => {
        const x = tensor(7, { backend });
        expectOpError(op, () => call(x), /0-d|0-dim|\[\]/);
      });
    });

  // On a 0-d tensor PyTorch treats axis 0 as the tensor itself (index_select, gather and
  // scatter_add work there); refusing is also acceptable, returning garbage is not.
  for (const [op, call, want] of [
    ['indexSelect', (x: Tensor) => indexSelect(x, 0, I([0])), [7]],
    ['gather', (x: Tensor) => gather(x, 0, tensor(0, { backend, dtype: 'i32' })), [7]],
    ['scatterAdd', (x: Tensor) => scatterAdd(x, 0, tensor(0, { backend, dtype: 'i32' }), tensor(2, { backend })), [9]],
  ] as [string, (x: Tensor) => Tensor, number[]][])
    it(`${op} on a 0-d tensor either throws or uses its one element (never garbage)`, async () => {
      const x = tensor(7, { backend });
      let out: Tensor | null = null;
      try {
        out = tidy(() => call(x));
      } catch (e) {
        expect((e as Error).message.startsWith(`${op}: `), (e as Error).message).toBe(true);
      }
      try {
        if (out) expect(Array.from(await out.data())).toEqual(want);
      } finally {
        out?.dispose();
        x.dispose();
      }
    });

  // ---- indices -----------------------------------------------------------------------------

  /** Index values in [0, limit) with one entry replaced by an out-of-range value. */
  const corruptIndices = (n: number, limit: number): fc.Arbitrary<{ ids: number[]; bad: number }> =>
    fc
      .tuple(
        fc.array(fc.nat(), { minLength: n, maxLength: n }),
        fc.nat(Math.max(n - 1, 0)),
        fc.oneof(fc.integer({ min: limit, max: limit + 5 }), fc.integer({ min: -6, max: -1 })),
      )
      .map(([raw, at, bad]) => {
        const ids = raw.map((v) => (limit > 0 ? v % limit : bad));
        ids[at] = bad;
        return { ids, bad };
      });

  it('indexSelect: an index outside [0, n) is a fault named at the next read', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .tuple(fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 3 }), fc.nat(), fc.integer({ min: 1, max: 4 }))
          .chain(([shape, ax, n]) => {
            const axis = ax % shape.length;
            return fc.tuple(fc.constant(shape), fc.constant(axis), corruptIndices(n, shape[axis]!));
          }),
        async ([shape, axis, { ids, bad }]) => {
          const [x, idx] = [T(shape), I(ids)];
          await expectFault('indexSelect', () => indexSelect(x, axis, idx), `index ${bad} is out of range`);
          [x, idx].forEach((t) => t.dispose());
        },
      ),
      FC,
    );
  });

  it('gather and scatterAdd: an index outside [0, n) is a fault named at the next read', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .tuple(fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 3 }), fc.nat(), fc.integer({ min: 1, max: 3 }))
          .chain(([shape, ax, m]) => {
            const axis = ax % shape.length;
            const ishape = shape.map((d, i) => (i === axis ? m : d));
            return fc.tuple(fc.constant(shape), fc.constant(axis), fc.constant(ishape), corruptIndices(size(ishape), shape[axis]!));
          }),
        async ([shape, axis, ishape, { ids, bad }]) => {
          const [x, idx, src] = [T(shape), I(ids, ishape), T(ishape)];
          await expectFault('gather', () => gather(x, axis, idx), `index ${bad} is out of range`);
          await expectFault('scatterAdd', () => scatterAdd(x, axis, idx, src), `index ${bad} is out of range`);
          [x, idx, src].forEach((t) => t.dispose());
        },
      ),
      FC,
    );
  });

  it('embedding: an id outside [0, vocab) is a fault named by embedding at the next read', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }))
          .chain(([vocab, dim, idShape]) => fc.tuple(fc.constant(vocab), fc.constant(dim), fc.constant(idShape), corruptIndices(size(idShape), vocab))),
        async ([vocab, dim, idShape, { ids, bad }]) => {
          const [w, idx] = [T([vocab, dim]), I(ids, idShape)];
          await expectFault('embedding', () => embedding(idx, w), `index ${bad} is out of range [0, ${vocab})`);
          [w, idx].forEach((t) => t.dispose());
        },
      ),
      FC,
    );
  });

  it('oneHot: a class outside [0, numClasses) is a fault named at the next read', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .tuple(fc.integer({ min: 1, max: 5 }), fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }))
          .chain(([c, shape]) => fc.tuple(fc.constant(c), fc.constant(shape), corruptIndices(size(shape), c))),
        async ([classes, shape, { ids, bad }]) => {
          const idx = I(ids, shape);
          await expectFault('oneHot', () => oneHot(idx, classes), `index ${bad} is out of range [0, ${classes})`);
          idx.dispose();
        },
      ),
      FC,
    );
  });

  it('crossEntropy: a target outside [0, C) that is not ignoreIndex is a fault named at the next read', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .tuple(fc.integer({ min: 1, max: 5 }), fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }))
          .chain(([c, shape]) => fc.tuple(fc.constant(c), fc.constant(shape), corruptIndices(size(shape), c))),
        async ([classes, shape, { ids, bad }]) => {
          const [logits, targets, ignored] = [T([...shape, classes]), I(ids, shape), I(ids.map((v) => (v === bad ? -100 : v)), shape)];
          await expectFault('crossEntropy', () => crossEntropy(logits, targets), `target ${bad} is out of range [0, ${classes})`);
          // the same value is fine when it is the ignoreIndex
          for (const ok of [crossEntropy(logits, ignored), crossEntropy(logits, targets, { ignoreIndex: bad, reduction: 'none' })]) {
            await ok.data();
            ok.dispose();
          }
          [logits, targets, ignored].forEach((t) => t.dispose());
        },
      ),
      FC,
    );
  });

  // ---- dtypes ------------------------------------------------------------------------------

  it('index arguments must be i32 (the message names the dtype it got)', () => {
    for (const dtype of storedDtypes(backend, ALL).filter((d) => d !== 'i32'))
      tidy(() => {
        const x = T([3, 2]);
        const idx1 = T([2], dtype);
        const idx2 = T([3, 2], dtype);
        expectOpError('indexSelect', () => indexSelect(x, 0, idx1), 'i32', dtype);
        expectOpError('gather', () => gather(x, 0, idx2), 'i32', dtype);
        expectOpError('scatterAdd', () => scatterAdd(x, 0, idx2, x), 'i32', dtype);
        expectOpError('oneHot', () => oneHot(idx1, 3), 'i32', dtype);
        expectOpError('embedding', () => embedding(idx1, x), 'i32', dtype);
        const t3 = T([3], dtype);
        expectOpError('crossEntropy', () => crossEntropy(x, t3), 'i32', dtype);
      });
  });

  it('masks and conditions must be bool', () => {
    for (const dtype of storedDtypes(backend, ALL).filter((d) => d !== 'bool'))
      tidy(() => {
        const x = T([2, 3]);
        const m = T([2, 3], dtype);
        expectOpError('where', () => where(m, x, x), 'bool', dtype);
        expectOpError('maskedFill', () => maskedFill(x, m, 0), 'bool', dtype);
      });
  });

  /** [op, setup(x) → call] for ops that need floating inputs; x is an i32 or bool [2,3] tensor. */
  const FLOAT_ONLY: [string, (x: Tensor, dtype: DType) => () => unknown][] = [
    ['softmax', (x) => () => softmax(x)],
    ['logSoftmax', (x) => () => logSoftmax(x)],
    ['layerNorm', (x) => () => layerNorm(x, [3])],
    ['rmsNorm', (x) => () => rmsNorm(x, [3])],
    ['variance', (x) => () => variance(x)],
    ['std', (x) => () => std(x)],
    ['norm', (x) => () => norm(x)],
    ['dropout', (x) => () => dropout(x, 0.5)],
    ['matmul', (x) => () => matmul(x, x, { transB: true })],
    ['linear', (x) => () => linear(x, x)],
    ['crossEntropy', (x) => {
      const t = I([0, 0]);
      return () => crossEntropy(x, t);
    }],
    ['scaledDotProductAttention', (x) => () => scaledDotProductAttention(x, x, x)],
    ['requiresGrad', (x) => () => {
      x.requiresGrad = true;
    }],
    ['requiresGrad', (x) => () => x.requiresGrad_()],
    ['tensor', (_x, dtype) => () => tensor([1, 2], { backend, dtype, requiresGrad: true })],
    ['zeros', (_x, dtype) => () => zeros([2], { backend, dtype, requiresGrad: true })],
    ['full', (_x, dtype) => () => full([2], 1, { backend, dtype, requiresGrad: true })],
    ['arange', (_x, dtype) => () => arange(3, undefined, 1, { backend, dtype, requiresGrad: true })],
  ];

  for (const [op, setup] of FLOAT_ONLY)
    it(`${op}: integer and bool tensors are refused where floats are required, naming the dtype`, () => {
      for (const dtype of ['i32', 'bool'] as DType[])
        tidy(() => {
          const call = setup(T([2, 3], dtype), dtype);
          expectOpError(op, call, dtype);
        });
    });

  // a float dtype other than f32 for the mismatches: f64, or f16 on a backend that cannot store f64 (WebGPU)
  const otherFloat: DType = stores(backend, 'f64') ? 'f64' : 'f16';
  const WRONG_DTYPE: [string, () => () => unknown, ...string[]][] = [
    ['randint', () => () => randint(0, 3, [2], { backend, requiresGrad: true }), 'i32'],
    ['rand', () => () => rand([2], { backend, dtype: 'i32' }), 'i32'],
    ['randn', () => () => randn([2], { backend, dtype: 'bool' }), 'bool'],
    ['normal', () => () => normal([2], 0, 1, { backend, dtype: 'i32' }), 'i32'],
    ['uniform', () => () => uniform([2], 0, 1, { backend, dtype: 'bool' }), 'bool'],
    ['neg', () => { const b = T([2], 'bool'); return () => neg(b); }, 'bool'],
    ['exp', () => { const b = T([2], 'bool'); return () => exp(b); }, 'bool'],
    ['abs', () => { const b = T([2], 'bool'); return () => abs(b); }, 'bool'],
    ['sqrt', () => { const b = T([2], 'bool'); return () => sqrt(b); }, 'bool'],
    ['max', () => { const b = T([2], 'bool'); return () => max(b); }, 'bool'],
    ['argmax', () => { const b = T([2], 'bool'); return () => argmax(b); }, 'bool'],
    ['scaledDotProductAttention', () => {
      const f = T([2, 2]);
      const m = T([2, 2], 'i32');
      return () => scaledDotProductAttention(f, f, f, { attnMask: m });
    }, 'i32'],
    ['concat', () => { const [x, y] = [T([2]), T([2], otherFloat)]; return () => concat([x, y]); }, 'f32', otherFloat],
    ['stack', () => { const [x, y] = [T([2]), T([2], otherFloat)]; return () => stack([x, y]); }, 'f32', otherFloat],
    ['scatterAdd', () => { const [x, i, s1] = [T([2]), I([0]), T([1], otherFloat)]; return () => scatterAdd(x, 0, i, s1); }, otherFloat],
    ['layerNorm', () => { const [x, w] = [T([2, 3]), T([3], otherFloat)]; return () => layerNorm(x, [3], w); }, otherFloat],
    ['scaledDotProductAttention', () => { const [x, y] = [T([2, 3]), T([2, 3], otherFloat)]; return () => scaledDotProductAttention(x, y, x); }, otherFloat],
    ['linear', () => { const [x, w, b] = [T([2, 3]), T([4, 3]), T([4], otherFloat)]; return () => linear(x, w, b); }, otherFloat],
  ];

  for (const [op, setup, ...needles] of WRONG_DTYPE)
    it(`${op}: a wrong or mismatched dtype is named (${needles.join(', ')})`, () => {
      tidy(() => {
        const call = setup();
        expectOpError(op, call, ...needles);
      });
    });

  // ---- disposed tensors --------------------------------------------------------------------

  interface Ctx {
    d: Tensor; // disposed f32 [2,3]
    a: Tensor; // live f32 [2,3]
    d3: Tensor; // disposed f32 [3]
    d1: Tensor; // disposed f32 [1]
    db: Tensor; // disposed bool [2,3]
    b: Tensor; // live bool [2,3]
    di: Tensor; // disposed i32 [2]
    i: Tensor; // live i32 [2] (zeros)
    di23: Tensor; // disposed i32 [2,3]
    i23: Tensor; // live i32 [2,3] (zeros)
    dg: Tensor; // disposed 0-d tensor that required grad
  }
  const ctx = (): Ctx => {
    const dg = zeros([], { backend, requiresGrad: true });
    dg.dispose();
    return {
      d: gone(),
      a: T([2, 3]),
      d3: gone([3]),
      d1: gone([1]),
      db: gone([2, 3], 'bool'),
      b: T([2, 3], 'bool'),
      di: gone([2], 'i32'),
      i: T([2], 'i32'),
      di23: gone([2, 3], 'i32'),
      i23: T([2, 3], 'i32'),
      dg,
    };
  };

  const UNARY: [string, (t: Tensor) => Tensor][] = [
    ['neg', neg],
    ['abs', abs],
    ['sign', sign],
    ['exp', exp],
    ['log', log],
    ['sqrt', sqrt],
    ['rsqrt', rsqrt],
    ['sin', sin],
    ['cos', cos],
    ['tanh', tanh],
    ['sigmoid', sigmoid],
    ['relu', relu],
    ['silu', silu],
    ['erf', erf],
    ['floor', floor],
    ['ceil', ceil],
    ['round', round],
    ['isfinite', isfinite],
    ['clone', clone],
  ];

  const DISPOSED: [string, ...((c: Ctx) => unknown)[]][] = [
    ...BINARY.filter(([, , dt]) => dt === 'f32').map(([op, f]): [string, ...((c: Ctx) => unknown)[]] => [op, (c) => f(c.d, c.a), (c) => f(c.a, c.d)]),
    ['add', (c) => add(c.d, 1), (c) => c.d.add(1)],
    ['logicalAnd', (c) => logicalAnd(c.db, c.b), (c) => logicalAnd(c.b, c.db)],
    ['logicalOr', (c) => logicalOr(c.db, c.b)],
    ['logicalNot', (c) => logicalNot(c.db)],
    ...UNARY.map(([op, f]): [string, (c: Ctx) => unknown] => [op, (c) => f(c.d)]),
    ['gelu', (c) => gelu(c.d), (c) => gelu(c.d, { approximate: 'tanh' })],
    ['cast', (c) => cast(c.d, 'f64'), (c) => c.d.cast('f16')],
    ['where', (c) => where(c.db, c.a, 0), (c) => where(c.b, c.d, 0), (c) => where(c.b, c.a, c.d)],
    ['clamp', (c) => clamp(c.d, 0, 1), (c) => clamp(c.a, c.d)],
    ['sum', (c) => sum(c.d)],
    ['mean', (c) => mean(c.d)],
    ['max', (c) => max(c.d)],
    ['min', (c) => min(c.d)],
    ['argmax', (c) => argmax(c.d)],
    ['argmin', (c) => argmin(c.d)],
    ['logsumexp', (c) => logsumexp(c.d)],
    ['variance', (c) => c.d.var()],
    ['std', (c) => c.d.std(), (c) => std(c.d)],
    ['norm', (c) => norm(c.d)],
    ['reshape', (c) => reshape(c.d, [6])],
    ['flatten', (c) => flatten(c.d)],
    ['squeeze', (c) => squeeze(c.d)],
    ['unsqueeze', (c) => unsqueeze(c.d, 0)],
    ['permute', (c) => permute(c.d, [1, 0])],
    ['transpose', (c) => transpose(c.d)],
    ['expand', (c) => expand(c.d, [2, 2, 3])],
    ['slice', (c) => slice(c.d, 0, 0, 1)],
    ['narrow', (c) => narrow(c.d, 0, 0, 1)],
    ['concat', (c) => concat([c.a, c.d])],
    ['stack', (c) => stack([c.a, c.d])],
    ['split', (c) => split(c.d, 1)],
    ['chunk', (c) => chunk(c.d, 2)],
    ['indexSelect', (c) => indexSelect(c.d, 0, c.i), (c) => indexSelect(c.a, 0, c.di)],
    ['gather', (c) => gather(c.d, 0, c.i23), (c) => gather(c.a, 0, c.di23)],
    ['scatterAdd', (c) => scatterAdd(c.d, 0, c.i23, c.a), (c) => scatterAdd(c.a, 0, c.di23, c.a), (c) => scatterAdd(c.a, 0, c.i23, c.d)],
    ['oneHot', (c) => oneHot(c.di, 3)],
    ['maskedFill', (c) => maskedFill(c.d, c.b, 0), (c) => maskedFill(c.a, c.db, 0)],
    ['triu', (c) => triu(c.d)],
    ['tril', (c) => tril(c.d)],
    ['matmul', (c) => matmul(c.d, c.a, { transB: true }), (c) => matmul(c.a, c.d, { transB: true })],
    ['linear', (c) => linear(c.d, c.a), (c) => linear(c.a, c.d)],
    ['softmax', (c) => softmax(c.d)],
    ['logSoftmax', (c) => logSoftmax(c.d)],
    ['crossEntropy', (c) => crossEntropy(c.d, c.i), (c) => crossEntropy(c.a, c.di)],
    ['layerNorm', (c) => layerNorm(c.d, [3]), (c) => layerNorm(c.a, [3], c.d3)],
    ['rmsNorm', (c) => rmsNorm(c.d, [3])],
    ['dropout', (c) => dropout(c.d, 0.5)],
    ['embedding', (c) => embedding(c.di, c.a), (c) => embedding(c.i, c.d)],
    [
      'scaledDotProductAttention',
      (c) => scaledDotProductAttention(c.d, c.a, c.a),
      (c) => scaledDotProductAttention(c.a, c.a, c.d),
      (c) => scaledDotProductAttention(c.a, c.a, c.a, { attnMask: c.db }),
    ],
    ['dataSync', (c) => c.d.dataSync()],
    ['arraySync', (c) => c.d.arraySync()],
    ['to', (c) => c.d.to('ref2')],
    ['copy_', (c) => c.d.copy_(c.a), (c) => c.a.copy_(c.d), (c) => c.d.copy_(1)],
    ['backward', (c) => c.dg.backward()],
    ['detach', (c) => c.d.detach()],
    ['zerosLike', (c) => zerosLike(c.d)],
    ['onesLike', (c) => onesLike(c.d)],
    ['fullLike', (c) => fullLike(c.d, 2)],
  ];

  for (const [op, ...calls] of DISPOSED)
    it(`${op}: a disposed tensor is refused ('disposed' in the message)`, () => {
      tidy(() => {
        const c = ctx();
        for (const call of calls) expectOpError(op, () => call(c), 'disposed');
      });
    });

  // reads that are (or will be) asynchronous: refused at the call or by rejecting
  const DISPOSED_READS: [string, ...((c: Ctx) => Promise<unknown>)[]][] = [['item', async (c) => await c.d1.item()]];

  for (const [op, ...calls] of DISPOSED_READS)
    it(`${op}: a disposed tensor is refused ('disposed' in the message)`, async () => {
      const c = ctx();
      try {
        for (const call of calls) await expectOpErrorAsync(op, () => call(c), 'disposed');
      } finally {
        for (const t of Object.values(c)) t.dispose();
      }
    });

  it('data and array: a disposed tensor rejects', async () => {
    const d = gone();
    await expectOpRejects('data', () => d.data(), 'disposed');
    await expectOpRejects('array', () => d.array(), 'disposed');
  });

  // ---- different backends ------------------------------------------------------------------

  interface Other {
    a: Tensor; // f32 [2,3] here
    o: Tensor; // f32 [2,3] on ref2
    b: Tensor; // bool [2,3] here
    ob: Tensor; // bool [2,3] on ref2
    i: Tensor; // i32 [2] here
    oi: Tensor; // i32 [2] on ref2
    o3: Tensor; // f32 [3] on ref2
    oi23: Tensor; // i32 [2,3] on ref2
    i23: Tensor; // i32 [2,3] here
    o2: Tensor; // f32 [2] on ref2
  }
  const other = (): Other => ({
    a: T([2, 3]),
    o: zeros([2, 3], { backend: 'ref2' }),
    b: T([2, 3], 'bool'),
    ob: zeros([2, 3], { backend: 'ref2', dtype: 'bool' }),
    i: T([2], 'i32'),
    oi: zeros([2], { backend: 'ref2', dtype: 'i32' }),
    o3: zeros([3], { backend: 'ref2' }),
    oi23: zeros([2, 3], { backend: 'ref2', dtype: 'i32' }),
    i23: T([2, 3], 'i32'),
    o2: zeros([2], { backend: 'ref2' }),
  });

  const MIXED: [string, ...((c: Other) => unknown)[]][] = [
    ...BINARY.filter(([, , dt]) => dt === 'f32').map(([op, f]): [string, ...((c: Other) => unknown)[]] => [op, (c) => f(c.a, c.o), (c) => f(c.o, c.a)]),
    ['logicalAnd', (c) => logicalAnd(c.b, c.ob)],
    ['logicalOr', (c) => logicalOr(c.ob, c.b)],
    ['where', (c) => where(c.ob, c.a, c.a), (c) => where(c.b, c.o, c.a), (c) => where(c.b, c.a, c.o)],
    ['clamp', (c) => clamp(c.a, c.o), (c) => clamp(c.a, null, c.o)],
    ['matmul', (c) => matmul(c.a, c.o, { transB: true })],
    ['linear', (c) => linear(c.a, c.o), (c) => linear(c.a, c.a, c.o2)],
    ['concat', (c) => concat([c.a, c.o])],
    ['stack', (c) => stack([c.a, c.o])],
    ['indexSelect', (c) => indexSelect(c.a, 0, c.oi)],
    ['gather', (c) => gather(c.a, 0, c.oi23)],
    ['scatterAdd', (c) => scatterAdd(c.a, 0, c.oi23, c.a), (c) => scatterAdd(c.a, 0, c.i23, c.o)],
    ['maskedFill', (c) => maskedFill(c.a, c.ob, 0)],
    ['crossEntropy', (c) => crossEntropy(c.a, c.oi)],
    ['layerNorm', (c) => layerNorm(c.a, [3], c.o3)],
    ['rmsNorm', (c) => rmsNorm(c.a, [3], c.o3)],
    ['embedding', (c) => embedding(c.i, c.o), (c) => embedding(c.oi, c.a)],
    ['scaledDotProductAttention', (c) => scaledDotProductAttention(c.a, c.o, c.a), (c) => scaledDotProductAttention(c.a, c.a, c.a, { attnMask: c.ob })],
  ];

  for (const [op, ...calls] of MIXED)
    it(`${op}: tensors on different backends are refused, naming both`, () => {
      tidy(() => {
        const c = other();
        for (const call of calls) expectOpError(op, () => call(c), `'${backend}'`, "'ref2'");
      });
    });

  it('copy_ takes its source from another backend (as torch copy_ across devices)', async () => {
    const [a, src] = tidy((): [Tensor, Tensor] => {
      const c = other();
      const src = c.o.add(5);
      c.a.copy_(src);
      expect(c.a.backend.name).toBe(backend);
      return [c.a, src];
    });
    try {
      expect(Array.from(await a.data())).toEqual(Array.from(await src.data()));
    } finally {
      a.dispose();
      src.dispose();
    }
  });

  it('after to() (toAsync from a backend without synchronous reads), the same op works', async () => {
    const c = other();
    const out = tidy(() => add(c.a, c.o.to(backend)));
    const moved = syncReadable(backend) ? c.a.to('ref2') : await c.a.toAsync('ref2');
    const there = add(moved, c.o);
    try {
      expect(there.backend.name).toBe('ref2');
      expect(Array.from(await out.data())).toEqual([0, 0, 0, 0, 0, 0]);
      if (!syncReadable(backend)) expect(() => c.a.to('ref2')).toThrow(/^to: backend '.*' cannot read synchronously; use await toAsync\(name\)/);
    } finally {
      for (const t of [out, moved, there, c.a, c.o]) t.dispose();
    }
  });

  // ---- creation ----------------------------------------------------------------------------

  it('tensor: ragged nested arrays are refused', () => {
    const nest = (shape: number[], v = 0): NestedArray =>
      shape.length === 0 ? v : Array.from({ length: shape[0]! }, (_, i) => nest(shape.slice(1), v * 10 + i));
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 2, max: 3 }), { minLength: 1, maxLength: 3 }),
        fc.array(fc.nat(), { minLength: 3, maxLength: 3 }),
        fc.constantFrom('grow', 'shrink', 'deepen', 'flatten'),
        (shape, path, how) => {
          const data = nest(shape) as NestedArray[];
          // walk to a random array at a random depth; mutate one of its elements
          const depth = path[0]! % shape.length;
          let parent = data;
          for (let d = 0; d < depth; d++) parent = parent[path[1]! % parent.length] as NestedArray[];
          const j = path[2]! % parent.length;
          const el = parent[j]!;
          if (how === 'grow' && Array.isArray(el)) el.push(el[0]!);
          else if (how === 'shrink' && Array.isArray(el)) el.pop();
          else if (how === 'flatten' && Array.isArray(el)) parent[j] = 0;
          else if (how === 'grow' || how === 'shrink') {
            // a leaf level: lengthen or shorten this array instead (it has at least one sibling)
            if (depth === 0) return; // the outermost array has no siblings to disagree with
            if (how === 'grow') parent.push(0);
            else parent.pop();
          } else parent[j] = [el];
          expectOpError('tensor', () => tensor(data, { backend }), /ragged|non-numeric/);
        },
      ),
      FC,
    );
  });

  it('tensor: data that does not fit the shape, untyped typed arrays, non-numbers and mixtures', () => {
    expectOpError('tensor', () => tensor([1, 2, 3], [2, 2], { backend }), '[2,2]', '3');
    expectOpError('tensor', () => tensor(new Uint8Array(3), { backend }), 'Uint8Array');
    expectOpError('tensor', () => tensor(null as unknown as number, { backend }), 'null');
    expectOpError('tensor', () => tensor(['a'] as unknown as number[], { backend }));
    expectOpError('tensor', () => tensor({} as unknown as number, { backend }));
    expectOpError('tensor', () => tensor([true, 1] as unknown as number[], { backend }), /boolean/);
  });

  const badDim = fc.oneof(fc.integer({ min: -5, max: -1 }), fc.constantFrom(1.5, NaN, Infinity, -0.5));

  const SHAPED: [string, (shape: number[]) => unknown][] = [
    ['zeros', (s) => zeros(s, { backend })],
    ['ones', (s) => ones(s, { backend })],
    ['full', (s) => full(s, 2, { backend })],
    ['rand', (s) => rand(s, { backend })],
    ['randn', (s) => randn(s, { backend })],
    ['randint', (s) => randint(0, 4, s, { backend })],
    ['normal', (s) => normal(s, 0, 1, { backend })],
    ['uniform', (s) => uniform(s, 0, 1, { backend })],
    ['tensor', (s) => tensor([], s, { backend })],
  ];

  for (const [op, make] of SHAPED)
    it(`${op}: negative or non-integer dims are refused`, () => {
      fc.assert(
        fc.property(fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 }), fc.nat(3), badDim, (shape, at, bad) => {
          const s = [...shape];
          s.splice(at % (s.length + 1), 0, bad);
          expectOpError(op, () => make(s), /shape/);
        }),
        FC,
      );
      // (tensor's second argument is a shape only when it is an array; anything else is options)
      if (op !== 'tensor') expectOpError(op, () => make(5 as unknown as number[]), /shape/);
    });

  it('eye: negative or non-integer sizes are refused', () => {
    expectOpError('eye', () => eye(-1, undefined, { backend }), '-1');
    expectOpError('eye', () => eye(2, -3, { backend }), '-3');
    expectOpError('eye', () => eye(1.5, undefined, { backend }), '1.5');
  });

  const DTYPED: [string, (opts: { backend: string; dtype: DType }) => unknown][] = [
    ['tensor', (o) => tensor([1], o)],
    ['zeros', (o) => zeros([2], o)],
    ['ones', (o) => ones([2], o)],
    ['full', (o) => full([2], 1, o)],
    ['rand', (o) => rand([2], o)],
    ['randn', (o) => randn([2], o)],
    ['randint', (o) => randint(0, 3, [2], o)],
    ['normal', (o) => normal([2], 0, 1, o)],
    ['uniform', (o) => uniform([2], 0, 1, o)],
    ['arange', (o) => arange(3, undefined, 1, o)],
    ['linspace', (o) => linspace(0, 1, 3, o)],
    ['eye', (o) => eye(2, undefined, o)],
  ];

  for (const [op, make] of DTYPED)
    it(`${op}: an unknown dtype or backend is named`, () => {
      expectOpError(op, () => make({ backend, dtype: 'f8' as DType }), "'f8'");
      expectOpError(op, () => make({ backend: 'nope', dtype: 'f32' }), "'nope'");
    });

  const LIKE_DTYPE: [string, (x: Tensor) => unknown, string][] = [
    ['zerosLike', (x) => zerosLike(x, { dtype: 'f8' as DType }), "'f8'"],
    ['onesLike', (x) => onesLike(x, { dtype: 'f8' as DType }), "'f8'"],
    ['fullLike', (x) => fullLike(x, 1, { dtype: 'f8' as DType }), "'f8'"],
    ['zerosLike', (x) => zerosLike(x, { backend: 'nope' }), "'nope'"],
    ['cast', (x) => cast(x, 'f8' as DType), 'f8'],
    ['cast', (x) => x.cast('f8' as DType), "'f8'"],
  ];

  for (const [op, call, needle] of LIKE_DTYPE)
    it(`${op}: an unknown dtype or backend is named (${needle})`, () => {
      tidy(() => {
        const x = T([2]);
        expectOpError(op, () => call(x), needle);
      });
    });

  it('oneHot: an unknown output dtype is named', () => {
    tidy(() => {
      const i0 = I([0]);
      expectOpError('oneHot', () => oneHot(i0, 2, 'f8' as 'f32'), 'f8');
    });
  });

  it('to: an unknown backend is named by to', () => {
    tidy(() => {
      const x = T([2]);
      expectOpError('to', () => x.to('nope'), "'nope'");
    });
  });

  it('ranges and random arguments: bad steps, counts, bounds and seeds', () => {
    expectOpError('arange', () => arange(0, 1, 0, { backend }), 'step');
    expectOpError('arange', () => arange(0, NaN, 1, { backend }), 'NaN');
    expectOpError('arange', () => arange(Infinity, undefined, 1, { backend }), 'Infinity');
    expectOpError('linspace', () => linspace(0, 1, -1, { backend }), '-1');
    expectOpError('linspace', () => linspace(0, 1, 2.5, { backend }), '2.5');
    expectOpError('randint', () => randint(3, 3, [2], { backend }), '3');
    expectOpError('randint', () => randint(0, 2.5, [2], { backend }), '2.5');
    expectOpError('randint', () => randint(0, 2 ** 31 + 1, [2], { backend }));
    expectOpError('manualSeed', () => manualSeed(-1), '-1');
    expectOpError('manualSeed', () => manualSeed(0.5), '0.5');
    expectOpError('Generator', () => new Generator(2 ** 60), String(2 ** 60));
    expectOpError('Generator.setState', () => new Generator(0).setState({ seed: 0, offset: -2 }), '-2');
  });

  // ---- other arguments ---------------------------------------------------------------------

  const MISC: [string, () => () => unknown, ...(string | RegExp)[]][] = [
    ['backward', () => { const x = zeros([2], { backend, requiresGrad: true }); const y = x.mul(2); return () => y.backward(); }, '[2]'],
    ['backward', () => { const x = T([]); return () => x.backward(); }, /grad/],
    ['backward', () => { const x = zeros([2], { backend, requiresGrad: true }); const y = x.mul(2); const g = T([3]); return () => y.backward(g); }, '[3]', '[2]'],
    ['backward', () => { const x = zeros([2], { backend, requiresGrad: true }); const y = x.mul(2).sum(); y.backward(); return () => y.backward(); }, /retainGraph/],
    ['copy_', () => { const x = zeros([2], { backend, requiresGrad: true }); const s = T([2]); return () => x.copy_(s); }, /noGrad|leaf/],
    ['requiresGrad', () => { const x = zeros([2], { backend, requiresGrad: true }); const y = x.mul(2); return () => { y.requiresGrad = false; }; }, /leaf|detach/],
    ['expand', () => { const x = T([2, 3]); return () => expand(x, [4, 3]); }, '[2,3]', '[4,3]'],
    ['expand', () => { const x = T([2, 3]); return () => expand(x, [3]); }, '[2,3]'],
    ['narrow', () => { const x = T([2, 3]); return () => narrow(x, 1, 2, 2); }, '[2,3]'],
    ['narrow', () => { const x = T([2, 3]); return () => narrow(x, 1, 0, -1); }, '-1'],
    ['slice', () => { const x = T([2, 3]); return () => slice(x, 1, 0, 3, 0); }, 'step'],
    ['split', () => { const x = T([5]); return () => split(x, [2, 2]); }, '[2,2]', '5'],
    ['split', () => { const x = T([5]); return () => split(x, 0); }, '0'],
    ['chunk', () => { const x = T([5]); return () => chunk(x, 0); }, '0'],
    ['oneHot', () => { const x = I([0]); return () => oneHot(x, 0); }, '0'],
    ['indexSelect', () => { const x = T([3]); const i = I([0], [1, 1]); return () => indexSelect(x, 0, i); }, '[1,1]'],
    ['gather', () => { const x = T([3, 2]); const i = I([0], [1, 1]); return () => gather(x, 0, i); }, '[1,1]', '[3,2]'],
    ['scatterAdd', () => { const x = T([3, 2]); const i = I([0, 0], [1, 2]); const s = T([2, 2]); return () => scatterAdd(x, 0, i, s); }, '[2,2]'],
    ['crossEntropy', () => { const x = T([2, 3]); const t = I([0, 0, 0]); return () => crossEntropy(x, t); }, '[2,3]', '[3]'],
    ['crossEntropy', () => { const x = T([2, 3]); const t = I([0, 0]); return () => crossEntropy(x, t, { labelSmoothing: 1.5 }); }, '1.5'],
    ['crossEntropy', () => { const x = T([2, 3]); const t = I([0, 0]); return () => crossEntropy(x, t, { reduction: 'avg' as 'mean' }); }, 'avg'],
    ['layerNorm', () => { const x = T([2, 3]); return () => layerNorm(x, [2]); }, '[2]', '[2,3]'],
    ['layerNorm', () => { const x = T([2, 3]); const w = T([2]); return () => layerNorm(x, [3], w); }, '[2]'],
    ['rmsNorm', () => { const x = T([2, 3]); return () => rmsNorm(x, [4]); }, '[4]'],
    ['dropout', () => { const x = T([2]); return () => dropout(x, 1.5); }, '1.5'],
    ['dropout', () => { const x = T([2]); return () => dropout(x, -0.1); }, '-0.1'],
    ['gelu', () => { const x = T([2]); return () => gelu(x, { approximate: 'exact' as 'none' }); }, 'exact'],
    ['max', () => { const x = T([2, 0]); return () => max(x, 1); }, '[2,0]'],
    ['min', () => { const x = T([0]); return () => min(x); }, '[0]'],
    ['argmax', () => { const x = T([0, 2]); return () => argmax(x); }, '[0,2]'],
    ['argmin', () => { const x = T([2, 0]); return () => argmin(x, 1); }, '[2,0]'],
    ['norm', () => { const x = T([2]); return () => norm(x, 0); }, '0'],
    ['tril', () => { const x = T([3]); return () => tril(x); }, '[3]'],
    ['triu', () => { const x = T([3, 3]); return () => triu(x, 0.5); }, '0.5'],
    ['concat', () => () => concat([]), /empty/],
    ['concat', () => { const a = T([2, 3]); const b = T([3, 2]); return () => concat([a, b], 0); }, '[2,3]', '[3,2]'],
    ['concat', () => { const a = T([2, 3]); const b = T([2]); return () => concat([a, b], 0); }, '[2,3]', '[2]'],
    ['stack', () => () => stack([]), /empty/],
    ['stack', () => { const a = T([2, 3]); const b = T([2, 2]); return () => stack([a, b]); }, '[2,3]', '[2,2]'],
    ['embedding', () => { const i = I([0]); const w = T([3]); return () => embedding(i, w); }, '[3]'],
    ['scaledDotProductAttention', () => { const q = T([2, 3]); const k = T([2, 4]); return () => scaledDotProductAttention(q, k, q); }, '[2,3]', '[2,4]'],
    ['scaledDotProductAttention', () => { const q = T([3]); return () => scaledDotProductAttention(q, q, q); }, '[3]'],
    ['scaledDotProductAttention', () => { const q = T([2, 3]); const m = T([3, 3], 'bool'); return () => scaledDotProductAttention(q, q, q, { attnMask: m }); }, '[3,3]'],
    ['add', () => () => add(1 as unknown as Tensor, 2), /number/],
    ['add', () => { const x = T([2]); return () => add(x, 'a' as unknown as number); }, "'a'"],
    ['sum', () => () => sum({} as Tensor), /Tensor/],
  ];

  for (const [op, setup, ...needles] of MISC)
    it(`${op}: bad arguments are named (${needles.map(String).join(', ') || 'message'})`, () => {
      tidy(() => {
        const call = setup();
        expectOpError(op, call, ...needles);
      });
    });

  /** [op, setup → (the tensor it made, a read that must fail), needles]: reads may throw or reject. */
  const MISC_READS: [string, () => [Tensor, () => Promise<unknown>], ...(string | RegExp)[]][] = [
    ['item', () => { const x = T([2, 3]); return [x, async () => await x.item()]; }, '[2,3]', '6'],
    ['item', () => { const x = T([0]); return [x, async () => await x.item()]; }, '[0]'],
  ];

  for (const [op, setup, ...needles] of MISC_READS)
    it(`${op}: bad arguments are named (${needles.map(String).join(', ') || 'message'})`, async () => {
      const [x, call] = setup();
      try {
        await expectOpErrorAsync(op, call, ...needles);
      } finally {
        x.dispose();
      }
    });
});
