/**
 * The generated bad-input suite: every public export has a table entry that says what each of
 * its parameters is (a tensor, an integer in a range, an option bag, …) and how to make a valid
 * call. The sweep makes that valid call, then replaces one argument at a time by values of the
 * wrong kind (fixed ones, then random ones from fast-check) and asserts, on every backend:
 *
 * - a value that must be refused is an `Error` (thrown, or a rejected promise) whose message
 *   starts with the public name (`linspace: `, `Adam: `, `BPETokenizer.encode: `) and names the
 *   bad value (`NaN`, `-1`, `"x"`, `disposed`, the option's key);
 * - a value that may pass (`undefined` for an optional argument) either works or fails the same
 *   way, never with a raw TypeError from inside the library;
 * - nothing crashes the process (the native backend validates before native code runs) and
 *   nothing hangs (the test's timeout).
 *
 * A kind is a {@link Param}; tables are lists of {@link Spec}s keyed by export name, and
 * `coverage.test.ts` checks that every export has one.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Tensor, rand, setBackend, tensor, type DType } from '../../src/index.js';
import { describeBackends, disposeAll } from '../harness.js';

/** A value to pass: a thunk makes a fresh one per call (tensors). */
export type Value = unknown | (() => unknown);

/** A value that must be refused, and a string the error must contain (how it names the value). */
export interface Bad {
  value: Value;
  /** What the message must contain (any one of a list). */
  needle: string | string[];
}

/** One parameter: how to make a valid value, which values it must refuse, which it may take. */
export interface Param {
  kind: string;
  good: () => unknown;
  refuse: Bad[];
  tolerate?: unknown[];
  /** Random refused values (numbers out of range, non-integers). */
  random?: fc.Arbitrary<Bad>;
}

/** One way to call an export. */
export interface Spec {
  params: Param[];
  /** The call (default: the export itself with the arguments). */
  call?: (...args: any[]) => unknown;
  /** What error messages start with, before ': ' (default: the export's name). */
  prefix?: string | string[];
  /** A label when an export has several specs. */
  label?: string;
}

/** An export the sweep does not call, and why (a constant, no arguments to get wrong). */
export interface Exempt {
  exempt: string;
}

export type Table = Record<string, Spec | Spec[] | Exempt>;

// ---- how bad values are named ----------------------------------------------------------------

/** The string an error must contain to name `v`. */
export function needleOf(v: unknown): string | string[] {
  if (typeof v === 'string') return v === '' ? "''" : v;
  if (v === null || v === undefined || typeof v !== 'object') return String(v);
  if (v instanceof Tensor) return v.disposed ? 'disposed' : v.dtype;
  return [Array.isArray(v) ? 'array' : 'object', JSON.stringify(v)];
}

const bad = (value: Value, needle?: string | string[]): Bad => ({ value, needle: needle ?? needleOf(value) });
const plain = (values: unknown[]): Bad[] => values.map((v) => bad(v));

function disposedTensor(): Tensor {
  const t = rand([2]);
  t.dispose();
  return t;
}

// ---- kinds ---------------------------------------------------------------------------------

interface Optional {
  optional?: boolean;
}

const NOT_A_NUMBER = ['seven', true, {}, [1]];

/** A tensor (`rand([2, 3])` unless `make` says otherwise). */
export function T(make: () => Tensor = () => rand([2, 3]), o: Optional = {}): Param {
  const refuse = plain([5, 'xyzzy', {}]);
  refuse.push(bad([1, 2], ['array', '[1,2]', 'got 1']), bad(disposedTensor, 'disposed'));
  if (!o.optional) refuse.push(bad(undefined), bad(null));
  return { kind: 'tensor', good: make, refuse, tolerate: o.optional ? [undefined, null] : [] };
}

/** An i32 tensor of ids in [0, n). */
export function ids(shape: number[] = [2, 3], n = 4): Param {
  const size = shape.reduce((a, b) => a * b, 1);
  return T(() => tensor(Array.from({ length: size }, (_, i) => i % n), shape, { dtype: 'i32' }));
}

/** A tensor or a number (the operand of a binary op). */
export function operand(make: () => Tensor | number = () => rand([2, 3])): Param {
  const refuse = plain(['xyzzy', {}, [1, 2], undefined, null, true]);
  refuse.push(bad(disposedTensor, 'disposed'));
  return { kind: 'operand', good: make, refuse };
}

/** A list of tensors. */
export function Ts(make: () => Tensor[] = () => [rand([2, 3]), rand([2, 3])]): Param {
  return {
    kind: 'tensors',
    good: make,
    refuse: [...plain([undefined, null, 5, 'xyzzy']), bad(() => [rand([2, 3]), null], 'null'), bad(() => [disposedTensor()], 'disposed')],
  };
}

export interface NumberKind extends Optional {
  integer?: boolean;
  min?: number;
  max?: number;
  minExclusive?: boolean;
  maxExclusive?: boolean;
  infinity?: boolean;
  /** A valid value (default: min, or 1). */
  good?: number;
  /** null is a valid value (an axis meaning "all"). */
  nullable?: boolean;
}

/** A number (an integer with `integer`) in a range. */
export function num(k: NumberKind = {}): Param {
  const refuse: unknown[] = [NaN, ...NOT_A_NUMBER];
  if (!k.infinity) refuse.push(Infinity);
  refuse.push(-Infinity);
  if (k.integer) refuse.push((k.min ?? 0) + 0.5);
  if (k.min !== undefined) refuse.push(k.minExclusive ? k.min : k.integer ? k.min - 1 : k.min - 0.5);
  if (k.max !== undefined) refuse.push(k.maxExclusive ? k.max : k.integer ? k.max + 1 : k.max + 0.5);
  if (!k.optional) refuse.push(undefined);
  if (!k.optional && !k.nullable) refuse.push(null);
  const good = k.good ?? (k.min !== undefined ? (k.minExclusive ? k.min + 1 : k.min) : 1);
  const outside: fc.Arbitrary<number>[] = [];
  const { min, max } = k;
  if (min !== undefined) outside.push(fc.double({ max: min, noNaN: true, noDefaultInfinity: true }).filter((v) => (k.minExclusive ? v <= min : v < min)));
  if (max !== undefined) outside.push(fc.double({ min: max, noNaN: true, noDefaultInfinity: true }).filter((v) => (k.maxExclusive ? v >= max : v > max)));
  if (k.integer) outside.push(fc.double({ min: -1e6, max: 1e6, noNaN: true }).filter((x) => !Number.isInteger(x)));
  return {
    kind: k.integer ? 'integer' : 'number',
    good: () => good,
    refuse: plain(refuse),
    tolerate: k.optional ? [undefined] : [],
    random: outside.length ? fc.oneof(...outside).map((v) => bad(v)) : undefined,
  };
}

/** A value for a tensor's element: any number (NaN and ±∞ are values too), not another type. */
export function scalar(good = 1, o: Optional & { nullable?: boolean } = {}): Param {
  const refuse: unknown[] = ['seven', {}, [1]];
  if (!o.optional) refuse.push(undefined);
  if (!o.optional && !o.nullable) refuse.push(null);
  return { kind: 'scalar', good: () => good, refuse: plain(refuse), tolerate: [NaN, Infinity, -Infinity, ...(o.optional ? [undefined] : []), ...(o.nullable ? [null] : [])] };
}

export const int = (k: Omit<NumberKind, 'integer'> = {}): Param => num({ ...k, integer: true });

/** An axis of a rank-`rank` tensor (negative counts from the end). */
export function axis(rank = 2, k: Optional & { nullable?: boolean } = {}): Param {
  return int({ min: -rank, max: rank - 1, good: rank - 1, ...k });
}

/** true or false. */
export function bool(o: Optional & { good?: boolean } = {}): Param {
  return { kind: 'boolean', good: () => o.good ?? true, refuse: plain(['yes', 1, {}, ...(o.optional ? [] : [undefined])]), tolerate: o.optional ? [undefined] : [] };
}

/** A string (a path, a text); `good` makes one. */
export function str(good: () => string = () => 'hello', o: Optional = {}): Param {
  return { kind: 'string', good, refuse: plain([5, {}, [1], ...(o.optional ? [] : [undefined, null])]), tolerate: o.optional ? [undefined] : [] };
}

/** One of `choices`. */
export function choice(choices: readonly string[], o: Optional = {}): Param {
  return { kind: 'choice', good: () => choices[0], refuse: plain(['bogus', 5, {}, ...(o.optional ? [] : [undefined, null])]), tolerate: o.optional ? [undefined] : [] };
}

export const DTYPE_NAMES: readonly DType[] = ['f32', 'f64', 'bf16', 'f16', 'i32', 'bool'];
export const dtype = (o: Optional = {}): Param => choice(DTYPE_NAMES, o);

/** A shape; `[2, 3]` unless `good` says otherwise. Huge shapes must say they cannot be allocated. */
export function shape(good: number[] = [2, 3], o: { allocates?: boolean } = {}): Param {
  const refuse = plain(['xyzzy', 5, null, undefined, {}]);
  refuse.push(bad([-1], '-1'), bad([0.5], '0.5'), bad([NaN], 'NaN'), bad([Infinity], 'Infinity'), bad(['2'], '2'));
  if (o.allocates !== false) refuse.push(bad([2 ** 31, 2 ** 31], 'cannot allocate'));
  return { kind: 'shape', good: () => [...good], refuse };
}

/** A value of one class (a cache, a module, a tokenizer); `good` makes one, or passes nothing. */
export function instance(kind: string, good: () => unknown, o: Optional = {}): Param {
  const refuse: Bad[] = [5, 'xyzzy', {}].map((v) => ({ value: v, needle: typeof v === 'object' ? 'object' : String(v) }));
  if (!o.optional) refuse.push({ value: null, needle: 'null' }, { value: undefined, needle: 'undefined' });
  return { kind, good, refuse, tolerate: o.optional ? [undefined, null] : [] };
}

/** A constructor call whose instance is disposed at once (the sweep only asks whether it was made). */
export function construct(make: (...a: any[]) => { dispose(): void }): (...a: any[]) => void {
  return (...a) => {
    make(...a).dispose();
  };
}

/** A function argument. */
export function func(good: () => (...args: any[]) => unknown): Param {
  return { kind: 'function', good, refuse: plain([5, 'xyzzy', {}, null, undefined]) };
}

/** An argument the sweep passes as given, with nothing to refuse (an instance, a fixed value). */
export function fixed(good: () => unknown): Param {
  return { kind: 'fixed', good, refuse: [] };
}

/** A Generator (optional). */
export function generator(): Param {
  return { kind: 'generator', good: () => undefined, refuse: plain([5, 'xyzzy', {}]), tolerate: [undefined] };
}

/** A parameter dtype (optional): the floating ones; `i32` and `bool` are refused. */
export function floatDtype(): Param {
  const p = choice(['f32', 'f64', 'bf16', 'f16'], { optional: true });
  return { ...p, refuse: [...p.refuse, { value: 'i32', needle: 'i32' }, { value: 'bool', needle: 'bool' }] };
}

/** A backend's name (optional: absent is the default backend). */
export function backendName(): Param {
  return { kind: 'backend', good: () => undefined, refuse: [{ value: 'bogus', needle: 'bogus' }, { value: 5, needle: '5' }, { value: {}, needle: 'object' }], tolerate: [undefined] };
}

/**
 * A method swept on a fresh instance: `make()` is passed as the first argument, `call(m, ...)`
 * runs the method, and `cleanup(m)` (default `m.dispose()`) runs after it returns, throws, or
 * its promise settles.
 */
export function method<M>(
  make: () => M,
  call: (m: M, ...a: any[]) => unknown,
  params: Param[],
  prefix?: string,
  cleanup: (m: M) => void = (m) => (m as { dispose(): void }).dispose(),
): Spec {
  return {
    params: [fixed(make), ...params],
    call: (m: M, ...a: unknown[]) => {
      let r: unknown;
      try {
        r = call(m, ...a);
      } catch (e) {
        cleanup(m);
        throw e;
      }
      if (r instanceof Promise) return r.finally(() => cleanup(m));
      cleanup(m);
      return r;
    },
    ...(prefix === undefined ? {} : { prefix }),
  };
}

export interface OptionsKind extends Optional {
  /** Valid option values to pass (default: none). */
  good?: () => Record<string, unknown>;
  /** Unknown keys are refused (the default: a misspelt option is an error, not ignored). */
  strict?: boolean;
}

/** An options object; each key's refused values are swept, named by key. */
export function opts(keys: Record<string, Param>, k: OptionsKind = {}): Param {
  const base = k.good ?? (() => ({}));
  const refuse: Bad[] = plain(['xyzzy', 5, [1]]);
  if (k.strict !== false) refuse.push(bad(() => ({ ...base(), bogusOption: 1 }), 'bogusOption'));
  for (const [key, p] of Object.entries(keys)) {
    for (const b of p.refuse) {
      if (b.value === undefined) continue; // an absent option takes its default
      refuse.push({ value: () => ({ ...base(), [key]: typeof b.value === 'function' ? (b.value as () => unknown)() : b.value }), needle: b.needle });
    }
  }
  return { kind: 'options', good: base, refuse, tolerate: k.optional === false ? [] : [undefined, {}] };
}

// ---- running a spec ------------------------------------------------------------------------

const make = (v: Value): unknown => (typeof v === 'function' && !(v instanceof Tensor) ? (v as () => unknown)() : v);

/** Call, and return the error (thrown or rejected), or null when it worked. */
async function attempt(call: () => unknown): Promise<unknown> {
  let result: unknown;
  try {
    result = call();
    if (result instanceof Promise) result = await result;
  } catch (e) {
    return e ?? new Error('threw a nullish value');
  } finally {
    disposeAll(result);
  }
  return null;
}

function prefixes(name: string, spec: Spec): string[] {
  const p = spec.prefix ?? name;
  return Array.isArray(p) ? p : [p];
}

function describeArg(v: unknown): string {
  if (v instanceof Tensor) return v.disposed ? 'a disposed tensor' : `a tensor [${v.shape.join(',')}] ${v.dtype}`;
  if (typeof v === 'number' || v === undefined) return String(v);
  try {
    // tensors and typed arrays summarised (a tensor reaches its backend, whose buffers can be
    // megabytes: a webgpu uniform arena), and the whole cut to a readable length
    const text =
      JSON.stringify(v, (_k, x: unknown) =>
        x instanceof Tensor ? describeArg(x) : ArrayBuffer.isView(x) ? `${x.constructor.name}(${(x as unknown as ArrayLike<number>).length ?? x.byteLength})` : x,
      ) ?? String(v);
    return text.length > 400 ? `${text.slice(0, 400)}…` : text;
  } catch {
    return String(v);
  }
}

function checkError(name: string, spec: Spec, err: unknown, where: string, needle: string | string[] | null): string | null {
  if (!(err instanceof Error)) return `${where}: threw a non-Error: ${String(err)}`;
  const ok = prefixes(name, spec).some((p) => err.message.startsWith(`${p}: `));
  if (!ok) return `${where}: the message does not start with ${prefixes(name, spec).map((p) => `'${p}: '`).join(' or ')}: ${err.constructor.name}: ${err.message}`;
  const needles = needle === null ? [] : Array.isArray(needle) ? needle : [needle];
  if (needles.length && !needles.some((n) => err.message.includes(n))) return `${where}: the message does not name the bad value (${needles.map((n) => JSON.stringify(n)).join(' or ')}): ${err.message}`;
  return null;
}

/** How many bad calls the sweep made (printed at the end of the suite). */
export const counts = { refused: 0, tolerated: 0, random: 0 };

/**
 * Sweep one spec: the valid call works; every refused value in every position is refused as the
 * module doc says; tolerated values work or fail well; then `runs` random refused values.
 */
export async function sweep(name: string, fn: unknown, spec: Spec, runs: number): Promise<void> {
  const call = spec.call ?? (fn as (...a: unknown[]) => unknown);
  const goods = (): unknown[] => spec.params.map((p) => p.good());
  const tag = spec.label ? `${name} (${spec.label})` : name;
  const run = async (i: number, value: unknown): Promise<unknown> => {
    const args = goods();
    const old = args[i];
    args[i] = value;
    disposeAll(old);
    try {
      return await attempt(() => call(...args));
    } finally {
      disposeAll(args);
    }
  };
  {
    const args = goods();
    const err = await attempt(() => call(...args));
    disposeAll(args);
    if (err) throw new Error(`${tag}: the valid call failed (the table is wrong, or the export is): ${err instanceof Error ? err.message : String(err)}`);
  }
  const failures: string[] = [];
  for (let i = 0; i < spec.params.length; i++) {
    const p = spec.params[i]!;
    for (const b of p.refuse) {
      const value = make(b.value);
      const where = `${tag}, argument ${i} (${p.kind}) = ${describeArg(value)}`;
      const err = await run(i, value);
      const failure = err === null ? `${where}: was accepted` : checkError(name, spec, err, where, b.needle);
      if (failure) failures.push(failure);
      counts.refused++;
    }
    for (const v of p.tolerate ?? []) {
      const err = await run(i, v);
      const failure = err ? checkError(name, spec, err, `${tag}, argument ${i} (${p.kind}) = ${describeArg(v)}`, null) : null;
      if (failure) failures.push(failure);
      counts.tolerated++;
    }
  }
  if (failures.length) throw new Error(`${failures.length} bad calls went wrong:\n${failures.join('\n')}`);
  const random = spec.params.flatMap((p, i) => (p.random ? [p.random.map((b) => [i, b] as const)] : []));
  if (random.length === 0) return;
  await fc.assert(
    fc.asyncProperty(fc.oneof(...random), async ([i, b]) => {
      const value = make(b.value);
      const where = `${tag}, argument ${i} (${spec.params[i]!.kind}) = ${describeArg(value)}`;
      const err = await run(i, value);
      const failure = err === null ? `${where}: was accepted` : checkError(name, spec, err, where, b.needle);
      if (failure) throw new Error(failure);
      counts.random++;
    }),
    { numRuns: runs },
  );
}

/** The specs of a table entry (none for an exemption). */
export function specsOf(entry: Spec | Spec[] | Exempt): Spec[] {
  if ('exempt' in entry) return [];
  return Array.isArray(entry) ? entry : [entry];
}

/** Run a table: one test per export, on every backend, and print how many bad calls were made. */
export function runTable(title: string, table: Table, exports: Record<string, unknown>, runs = 20): void {
  describeBackends(`bad inputs: ${title}`, (backend) => {
    beforeAll(() => setBackend(backend));
    it('the table has entries', () => expect(Object.keys(table).length).toBeGreaterThan(0));
    afterAll(() => {
      setBackend(null);
      console.log(`[bad inputs] ${title} on ${backend}: ${counts.refused} refused, ${counts.tolerated} tolerated, ${counts.random} random refused calls so far`);
    });
    for (const [name, entry] of Object.entries(table)) {
      const specs = specsOf(entry);
      if (specs.length === 0) continue;
      it(name, async () => {
        for (const spec of specs) await sweep(name, exports[name], spec, runs);
      });
    }
  });
}
