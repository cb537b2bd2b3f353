/**
 * Creating tensors and reading them back: tensor() from nested arrays, flat data with a shape,
 * typed arrays and scalars; constants (zeros, ones, full and the *Like forms); ranges (arange,
 * linspace, eye); the read functions (data, dataSync, array, arraySync, item); toString; and
 * moving tensors between backends with to().
 */
import { beforeAll, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  RefBackend,
  Tensor,
  arange,
  eye,
  full,
  fullLike,
  linspace,
  memory,
  ones,
  onesLike,
  registerBackend,
  tensor,
  tidy,
  zeros,
  zerosLike,
  type DType,
  type NestedArray,
} from '../src/index.js';
import { FC, describeBackends, expectClose, floatDtype, shapeArb, size, stores, storedDtypes, values, syncReadable, tidyRead } from './harness.js';

const ALL: DType[] = ['f32', 'f64', 'i32', 'bf16', 'f16', 'bool'];



/** Nested arrays of `shape` holding `flat` row-major (the specification of the layout). */
function nest(flat: readonly NestedArray[], shape: readonly number[]): NestedArray {
  if (shape.length === 0) return flat[0]!;
  const inner = size(shape.slice(1));
  return Array.from({ length: shape[0]! }, (_, i) => nest(flat.slice(i * inner, (i + 1) * inner), shape.slice(1)));
}

/** The shape nested arrays can express: dims after the first 0 are lost ([[], []] is [2, 0]). */
function expressible(shape: readonly number[]): number[] {
  const z = shape.indexOf(0);
  return z < 0 ? [...shape] : shape.slice(0, z + 1);
}

/** A value every dtype stores exactly after its own conversion: small integers and halves. */
const exactish = fc.integer({ min: -64, max: 64 }).map((k) => k / 2);

/** Conversion of an "exactish" value into dtype (i32 truncates toward zero, bool is x ≠ 0). */
function convert(dtype: DType, v: number): number {
  if (dtype === 'i32') return Math.trunc(v) | 0;
  if (dtype === 'bool') return v !== 0 ? 1 : 0;
  return v;
}

const shapeAndValues = (maxRank = 4, maxDim = 4): fc.Arbitrary<{ shape: number[]; data: number[] }> =>
  shapeArb(maxRank, maxDim).chain((shape) =>
    fc
      .array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: size(shape), maxLength: size(shape) })
      .map((data) => ({ shape, data })),
  );

describeBackends('creation', (backend) => {
  // every dtype this backend stores (WebGPU has no f64: its f64 cases are skipped, saying so)
  const dtypes = storedDtypes(backend, ALL);
  const hasF64 = stores(backend, 'f64');
  beforeAll(() => {
    // A second reference backend under another name, to copy to (priority below ref: never the default).
    registerBackend({ name: 'ref2', priority: -1, create: () => new RefBackend('ref2') });
  });

  // ---- tensor() ----------------------------------------------------------------------------

  it('tensor(nested numbers) takes the nested shape, row-major order and f32 rounding', async () => {
    await fc.assert(
      fc.asyncProperty(shapeAndValues(), async ({ shape, data }) => {
        const want = expressible(shape);
        const flat = data.slice(0, size(want));
        await tidyRead(
          () => {
            const t = tensor(nest(flat, want), { backend });
            expect(t.shape).toEqual(want);
            expect(t.dtype).toBe('f32');
            expect(t.size).toBe(size(want));
            expect(t.rank).toBe(want.length);
            expect(t.backend.name).toBe(backend);
            return t;
          },
          async (t) => {
            expect(await values(t)).toEqual(flat.map(Math.fround));
            expect(await t.array()).toEqual(nest(flat.map(Math.fround), want));
          },
        );
      }),
      FC,
    );
  });

  it('tensor(flat, shape) lays out flat data row-major in any dtype', async () => {
    await fc.assert(
      fc.asyncProperty(
        shapeArb(4, 4).chain((shape) => fc.tuple(fc.constant(shape), fc.array(exactish, { minLength: size(shape), maxLength: size(shape) }))),
        fc.constantFrom(...dtypes),
        async ([shape, data], dtype) => {
          await tidyRead(
            () => {
              const t = tensor(data, shape, { backend, dtype });
              expect(t.shape).toEqual(shape);
              expect(t.dtype).toBe(dtype);
              return t;
            },
            async (t) => {
              const want = data.map((v) => convert(dtype, v));
              expect(await values(t)).toEqual(want);
              const nested = nest(
                want.map((v) => (dtype === 'bool' ? v === 1 : v)),
                shape,
              );
              expect(await t.array()).toEqual(nested);
            },
          );
        },
      ),
      FC,
    );
  });

  it('tensor(nested booleans) is bool and reads back as booleans', async () => {
    await fc.assert(
      fc.asyncProperty(
        shapeArb(3, 4).chain((shape) => fc.tuple(fc.constant(shape), fc.array(fc.boolean(), { minLength: size(shape), maxLength: size(shape) }))),
        async ([shape, data]) => {
          const want = expressible(shape);
          const flat = data.slice(0, size(want));
          await tidyRead(
            () => {
              const t = tensor(nest(flat, want), { backend });
              // an empty nested array has no elements to say it is boolean: f32
              if (size(want) > 0 || want.length === 0) expect(t.dtype).toBe('bool');
              expect(t.shape).toEqual(want);
              return t;
            },
            async (t) => {
              expect(await values(t)).toEqual(flat.map((b) => (b ? 1 : 0)));
              if (t.dtype === 'bool') expect(await t.array()).toEqual(nest(flat, want));
            },
          );
        },
      ),
      FC,
    );
  });

  it('tensor(scalar) is 0-d: numbers f32 (or the given dtype), booleans bool', async () => {
    await tidyRead(
      () => {
        const a = tensor(3.25, { backend });
        expect(a.shape).toEqual([]);
        expect(a.rank).toBe(0);
        expect(a.size).toBe(1);
        expect(a.dtype).toBe('f32');
        const b = tensor(true, { backend });
        expect(b.dtype).toBe('bool');
        expect(b.shape).toEqual([]);
        const c = tensor(-7.9, { backend, dtype: 'i32' });
        expect(c.dtype).toBe('i32');
        return {
          a,
          f32: tensor(0.1, { backend }),
          f64: hasF64 ? tensor(0.1, { backend, dtype: 'f64' }) : null,
          b,
          no: tensor(false, { backend }),
          c,
          // a scalar with a shape of one element
          one: tensor(5, [1, 1], { backend }),
        };
      },
      async ({ a, f32, f64, b, no, c, one }) => {
        expect(await a.item()).toBe(3.25);
        expect(await a.array()).toBe(3.25);
        expect(await f32.item()).toBe(Math.fround(0.1));
        if (f64) expect(await f64.item()).toBe(0.1);
        expect(await b.array()).toBe(true);
        expect(await b.item()).toBe(1);
        expect(await no.array()).toBe(false);
        expect(await c.item()).toBe(-7);
        expect(await one.array()).toEqual([[5]]);
      },
    );
  });

  it('typed arrays give their dtype: Float32Array f32, Float64Array f64, Int32Array i32; others need a dtype', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: -1000, max: 1000 }), { minLength: 0, maxLength: 12 }), async (ints) => {
        const f64src = Float64Array.from(ints.map((v) => v / 3));
        await tidyRead(
          () => {
            const f32 = tensor(Float32Array.from(ints.map((v) => v / 8)), { backend });
            expect(f32.dtype).toBe('f32');
            expect(f32.shape).toEqual([ints.length]);
            // a backend without f64 refuses a Float64Array rather than narrowing it silently
            if (!hasF64) expect(() => tensor(f64src, { backend })).toThrow(/^tensor: backend '.*' cannot store f64 tensors/);
            const f64 = hasF64 ? tensor(f64src, { backend }) : null;
            if (f64) expect(f64.dtype).toBe('f64');
            const i32 = tensor(Int32Array.from(ints), { backend });
            expect(i32.dtype).toBe('i32');
            const u8 = tensor(Uint8Array.from(ints.map((v) => Math.abs(v) % 2)), { backend, dtype: 'bool' });
            expect(u8.dtype).toBe('bool');
            const u16 = tensor(Uint16Array.from(ints.map(Math.abs)), { backend, dtype: 'f32' });
            // an explicit dtype converts, and a shape reshapes
            const asI32 = tensor(Float64Array.from(ints.map((v) => v / 3)), { backend, dtype: 'i32' });
            if (ints.length % 2 === 0) expect(tensor(Int32Array.from(ints), [2, ints.length / 2], { backend }).shape).toEqual([2, ints.length / 2]);
            return { f32, f64, i32, u8, u16, asI32 };
          },
          async ({ f32, f64, i32, u8, u16, asI32 }) => {
            expect(await values(f32)).toEqual(ints.map((v) => v / 8));
            if (f64) expect(await values(f64)).toEqual(Array.from(f64src));
            expect(await values(i32)).toEqual(ints);
            expect(await values(u8)).toEqual(ints.map((v) => Math.abs(v) % 2));
            expect(await values(u16)).toEqual(ints.map(Math.abs));
            expect(await values(asI32)).toEqual(ints.map((v) => Math.trunc(v / 3) | 0));
          },
        );
      }),
      FC,
    );
  });

  it('tensor() copies its input: later changes to the source array are not seen', async () => {
    await tidyRead(
      () => {
        const src = new Float32Array([1, 2, 3]);
        const t = tensor(src, { backend });
        src[0] = 100;
        const nested = [
          [1, 2],
          [3, 4],
        ];
        const u = tensor(nested, { backend });
        nested[0]![0] = 100;
        return { t, u };
      },
      async ({ t, u }) => {
        expect(await values(t)).toEqual([1, 2, 3]);
        expect(await values(u)).toEqual([1, 2, 3, 4]);
      },
    );
  });

  it('requiresGrad in the options makes a leaf that requires grad', () => {
    tidy(() => {
      for (const t of [
        tensor([1, 2], { backend, requiresGrad: true }),
        zeros([2], { backend, requiresGrad: true }),
        ones([2], { backend, dtype: floatDtype(backend), requiresGrad: true }),
        full([2], 3, { backend, requiresGrad: true }),
      ]) {
        expect(t.requiresGrad).toBe(true);
        expect(t.isLeaf).toBe(true);
        expect(t.grad).toBe(null);
      }
      expect(zeros([2], { backend }).requiresGrad).toBe(false);
    });
  });

  // ---- constants ---------------------------------------------------------------------------

  it('zeros, ones and full fill every element, in every dtype', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb(4, 4), fc.constantFrom(...dtypes), exactish, async (shape, dtype, v) => {
        await tidyRead(
          (): [Tensor, number][] => [
            [zeros(shape, { backend, dtype }), 0],
            [ones(shape, { backend, dtype }), 1],
            [full(shape, v, { backend, dtype }), convert(dtype, v)],
          ],
          async (cases) => {
            for (const [t, want] of cases) {
              expect(t.shape).toEqual(shape);
              expect(t.dtype).toBe(dtype);
              expect(await values(t)).toEqual(new Array(size(shape)).fill(want));
            }
          },
        );
      }),
      FC,
    );
  });

  it('zeros/ones/full default to f32; full rounds its value to the dtype', async () => {
    await tidyRead(
      () => {
        expect(zeros([2], { backend }).dtype).toBe('f32');
        expect(ones([], { backend }).dtype).toBe('f32');
        expect(full([2], 0.1, { backend }).dtype).toBe('f32');
        return [
          full([2], 0.1, { backend }),
          full([1], 0.1, { backend, dtype: floatDtype(backend) }),
          full([1], 2049, { backend, dtype: 'f16' }),
          full([1], 2051, { backend, dtype: 'f16' }),
          full([1], 1e6, { backend, dtype: 'f16' }),
          full([2], -Infinity, { backend }),
          full([1], NaN, { backend }),
        ];
      },
      async ([f32, f64, tie, up, big, ninf, nan]) => {
        expect(await values(f32!)).toEqual([Math.fround(0.1), Math.fround(0.1)]);
        expect(await values(f64!)).toEqual([hasF64 ? 0.1 : Math.fround(0.1)]);
        expect(await values(tie!)).toEqual([2048]); // tie → even
        expect(await values(up!)).toEqual([2052]);
        expect(await values(big!)).toEqual([Infinity]);
        expect(await values(ninf!)).toEqual([-Infinity, -Infinity]);
        expect((await values(nan!))[0]).toBeNaN();
      },
    );
  });

  it('zerosLike, onesLike and fullLike copy shape, dtype and backend; options override', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb(4, 4), fc.constantFrom(...dtypes), fc.constantFrom(...dtypes), exactish, async (shape, dtype, other, v) => {
        await tidyRead(
          () => {
            const t = full(shape, 1, { backend, dtype });
            const likes = [
              [zerosLike(t), 0],
              [onesLike(t), 1],
              [fullLike(t, v), convert(dtype, v)],
            ] as [Tensor, number][];
            for (const [like] of likes) {
              expect(like).not.toBe(t);
              expect(like.shape).toEqual(shape);
              expect(like.dtype).toBe(dtype);
              expect(like.backend.name).toBe(backend);
            }
            const o = fullLike(t, v, { dtype: other });
            expect(o.dtype).toBe(other);
            return { t, likes, o };
          },
          async ({ t, likes, o }) => {
            for (const [like, want] of likes) expect(await values(like)).toEqual(new Array(size(shape)).fill(want));
            expect(await values(o)).toEqual(new Array(size(shape)).fill(convert(other, v)));
            expect(await values(t)).toEqual(new Array(size(shape)).fill(1)); // the original is untouched
          },
        );
      }),
      FC,
    );
  });

  // ---- ranges ------------------------------------------------------------------------------

  it('arange with 1, 2 and 3 integer arguments counts as Python range does, in i32', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: -20, max: 20 }),
        fc.integer({ min: -20, max: 20 }),
        fc.integer({ min: -6, max: 6 }).filter((s) => s !== 0),
        async (a, b, step) => {
          const range = (start: number, end: number, st: number): number[] => {
            const out: number[] = [];
            for (let x = start; st > 0 ? x < end : x > end; x += st) out.push(x);
            return out;
          };
          await tidyRead(
            () => {
              const one = arange(a, undefined, 1, { backend });
              expect(one.dtype).toBe('i32');
              const two = arange(a, b, 1, { backend });
              expect(two.dtype).toBe('i32');
              const three = arange(a, b, step, { backend });
              expect(three.shape).toEqual([range(a, b, step).length]);
              const fdt = floatDtype(backend);
              expect(arange(a, b, step, { backend, dtype: fdt }).dtype).toBe(fdt);
              return { one, two, three };
            },
            async ({ one, two, three }) => {
              expect(await values(one)).toEqual(range(0, a, 1));
              expect(await values(two)).toEqual(range(a, b, 1));
              expect(await values(three)).toEqual(range(a, b, step));
            },
          );
        },
      ),
      FC,
    );
    await tidyRead(
      () => [arange(5, undefined, 1, { backend }), arange(0, undefined, 1, { backend }), arange(5, 0, -2, { backend })],
      async ([five, none, down]) => {
        expect(await values(five!)).toEqual([0, 1, 2, 3, 4]);
        expect(await values(none!)).toEqual([]);
        expect(await values(down!)).toEqual([5, 3, 1]);
      },
    );
  });

  it('arange with a fractional argument is f32 with ⌈(end − start)/step⌉ values start + i·step', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.double({ min: -10, max: 10, noNaN: true }),
        fc.double({ min: -10, max: 10, noNaN: true }),
        fc.double({ min: 0.05, max: 4, noNaN: true }),
        fc.boolean(),
        async (start, end, mag, neg) => {
          const step = neg ? -mag : mag;
          fc.pre(![start, end, step].every(Number.isInteger));
          const n = Math.max(0, Math.ceil((end - start) / step));
          await tidyRead(
            () => {
              const t = arange(start, end, step, { backend });
              expect(t.dtype).toBe('f32');
              expect(t.shape).toEqual([n]);
              return t;
            },
            async (t) => expect(await values(t)).toEqual(Array.from({ length: n }, (_, i) => Math.fround(start + i * step))),
          );
        },
      ),
      FC,
    );
    await tidyRead(
      () => {
        expect(arange(0, 1, 0.1, { backend }).shape).toEqual([10]);
        expect(arange(0.5, undefined, 1, { backend }).dtype).toBe('f32');
        return [arange(0, 1, 0.25, { backend }), arange(2.5, undefined, 1, { backend })];
      },
      async ([quarters, upTo]) => {
        expect(await values(quarters!)).toEqual([0, 0.25, 0.5, 0.75]);
        expect(await values(upTo!)).toEqual([0, 1, 2]);
      },
    );
  });

  it('linspace has exact endpoints, even spacing, and handles steps 0 and 1', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.double({ min: -100, max: 100, noNaN: true }),
        fc.double({ min: -100, max: 100, noNaN: true }),
        fc.integer({ min: 0, max: 20 }),
        fc.constantFrom<DType>(...storedDtypes(backend, ['f32', 'f64'] as const)),
        async (start, end, steps, dtype) => {
          await tidyRead(
            () => {
              const t = linspace(start, end, steps, { backend, dtype });
              expect(t.shape).toEqual([steps]);
              expect(t.dtype).toBe(dtype);
              return t;
            },
            async (t) => {
              const v = await values(t);
              const r = dtype === 'f32' ? Math.fround : (x: number): number => x;
              // exact endpoints (the sign of a zero is not specified: + 0 folds −0 into 0)
              if (steps >= 1) expect(v[0]! + 0).toBe(r(start) + 0);
              if (steps >= 2) expect(v[steps - 1]! + 0).toBe(r(end) + 0);
              const want = Array.from({ length: steps }, (_, i) => (steps === 1 ? start : start + ((end - start) * i) / (steps - 1)));
              expectClose(v, want, dtype === 'f32' ? { rtol: 1e-6, atol: 1e-4 } : { rtol: 1e-12, atol: 1e-12 });
            },
          );
        },
      ),
      FC,
    );
    await tidyRead(
      () => [linspace(0, 1, 5, { backend }), linspace(3, 7, 1, { backend }), linspace(3, 7, 0, { backend }), linspace(1, -1, 3, { backend })],
      async ([five, one, none, down]) => {
        expect(await values(five!)).toEqual([0, 0.25, 0.5, 0.75, 1]);
        expect(await values(one!)).toEqual([3]);
        expect(await values(none!)).toEqual([]);
        expect(await values(down!)).toEqual([1, 0, -1]);
      },
    );
  });

  it('eye(n) and eye(n, m) are ones on the main diagonal', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(5), fc.option(fc.nat(5), { nil: undefined }), fc.constantFrom(...dtypes), async (n, m, dtype) => {
        const cols = m ?? n;
        await tidyRead(
          () => {
            const t = eye(n, m, { backend, dtype });
            expect(t.shape).toEqual([n, cols]);
            expect(t.dtype).toBe(dtype);
            return t;
          },
          async (t) => {
            const want: number[] = [];
            for (let i = 0; i < n; i++) for (let j = 0; j < cols; j++) want.push(i === j ? 1 : 0);
            expect(await values(t)).toEqual(want);
          },
        );
      }),
      FC,
    );
    tidy(() => expect(eye(2, undefined, { backend }).dtype).toBe('f32'));
  });

  // ---- reading -----------------------------------------------------------------------------

  // dataSync() and arraySync() are what this test is about: only backends that read synchronously have them
  it('data() and array() resolve to what dataSync() and arraySync() return (which a backend without synchronous reads refuses, naming the async call)', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb(4, 3), fc.constantFrom(...dtypes), async (shape, dtype) => {
        const t = tensor(
          Array.from({ length: size(shape) }, (_, i) => (i % 5) - 2),
          shape,
          { backend, dtype },
        );
        try {
          const d = await t.data();
          expect(Array.from(d)).toEqual(await values(t));
          // halves widen to Float32Array, other dtypes read back in their own array type
          const kind = { f32: Float32Array, f16: Float32Array, bf16: Float32Array, f64: Float64Array, i32: Int32Array, bool: Uint8Array }[dtype];
          expect(d).toBeInstanceOf(kind);
          if (syncReadable(backend)) {
            expect(t.dataSync()).toBeInstanceOf(kind);
            expect(await t.array()).toEqual(t.arraySync());
          } else {
            expect(() => t.dataSync()).toThrow(new RegExp(`^dataSync: backend '${backend}' cannot read synchronously; use await data\\(\\)`));
            expect(() => t.arraySync()).toThrow(/^arraySync: backend '.*' cannot read synchronously; use await array\(\)/);
            if (t.size === 1) expect(() => t.itemSync()).toThrow(/^itemSync: backend '.*' cannot read synchronously; use await item\(\)/);
          }
        } finally {
          t.dispose();
        }
      }),
      { numRuns: 30 },
    );
  });

  it('item() reads the one element of any one-element tensor', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(4), fc.constantFrom(...dtypes), exactish, async (rank, dtype, v) => {
        await tidyRead(
          () => full(new Array(rank).fill(1), v, { backend, dtype }),
          async (t) => expect(await t.item()).toBe(convert(dtype, v)),
        );
      }),
      FC,
    );
  });

  it('toString names the shape, dtype, backend and requiresGrad', () => {
    tidy(() => {
      expect(zeros([2, 3], { backend }).toString()).toBe(`Tensor([2,3], f32, ${backend})`);
      expect(zeros([], { backend, dtype: 'i32' }).toString()).toBe(`Tensor([], i32, ${backend})`);
      expect(zeros([0, 4], { backend, dtype: 'bf16', requiresGrad: true }).toString()).toBe(`Tensor([0,4], bf16, ${backend}, requiresGrad)`);
      expect(String(ones([1], { backend, dtype: 'bool' }))).toBe(`Tensor([1], bool, ${backend})`);
    });
  });

  // ---- moving between backends -------------------------------------------------------------

  it("to() the tensor's own backend returns the tensor itself", async () => {
    const t = tensor([1, 2, 3], { backend });
    expect(t.to(backend)).toBe(t);
    expect(await t.toAsync(backend)).toBe(t);
    t.dispose();
  });

  // to() reads the source synchronously (a backend without synchronous reads refuses it: use toAsync)
  it('to() (toAsync from a backend without synchronous reads) copies values, shape and dtype into independent storage', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb(3, 4), fc.constantFrom(...dtypes), async (shape, dtype) => {
        const data = Array.from({ length: size(shape) }, (_, i) => ((i * 7) % 11) / 2 - 2);
        const t = tensor(data, shape, { backend, dtype });
        const want = await values(t);
        const before = memory().backends.ref2?.tensors ?? 0;
        if (!syncReadable(backend)) expect(() => t.to('ref2')).toThrow(/^to: backend '.*' cannot read synchronously; use await toAsync\(name\)/);
        const c = syncReadable(backend) ? t.to('ref2') : await t.toAsync('ref2');
        const d = await t.toAsync('ref2');
        try {
          expect(c).not.toBe(t);
          expect(c.backend.name).toBe('ref2');
          expect(c.shape).toEqual(shape);
          expect(c.dtype).toBe(dtype);
          expect(memory().backends.ref2!.tensors).toBe(before + 2);
          t.dispose(); // the copies do not share the original's storage
          expect(await values(c)).toEqual(want);
          expect(await values(d)).toEqual(want);
          expect(c.to('ref2')).toBe(c);
          expect(await c.toAsync('ref2')).toBe(c);
          // and back again
          const back = c.to(backend);
          expect(back.backend.name).toBe(backend);
          expect(await values(back)).toEqual(want);
          back.dispose();
        } finally {
          t.dispose();
          c.dispose();
          d.dispose();
        }
      }),
      { numRuns: 30 },
    );
  });
});
