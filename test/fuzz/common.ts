/**
 * What every fuzz module shares: the shape of a fuzz target, the contract every parser must keep
 * (succeed, or throw a plain `Error` whose message starts with the API's prefix; no leaked
 * tensors; no absurd allocation; no hang), JSON text with what `JSON.stringify` cannot write
 * (duplicate keys, nesting deeper than its stack), safetensors bytes written independently of
 * kiln's writer, and the corruptions applied to bytes.
 *
 * A fuzz module exports `fuzzers`: each is an arbitrary of inputs and a `check` that runs the
 * parser on one input and throws a {@link FuzzFailure} when the contract is broken. `run.ts`
 * runs them for many cases in child processes (a watchdog catches hangs and crashes);
 * `test/fuzz.test.ts` runs a short pass of the same ones in CI.
 * @module
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { backends, backendSync, memory } from '../../src/index.js';
import type { Backend } from '../../src/backend/backend.js';
import { itemSize, type DType } from '../../src/backend/dtype.js';

/** One fuzz target: inputs, and the contract checked on each. */
export interface Fuzzer<T> {
  /** The parser family (`safetensors`, `checkpoint`, …): the runner's report groups by it. */
  parser: string;
  /** What this target feeds (`loadSafetensors: corrupted files`). */
  name: string;
  arb: fc.Arbitrary<T>;
  /** Run the parser on `input`; throw a {@link FuzzFailure} when the contract is broken. */
  check(input: T): void | Promise<void>;
  /** Whether `check` is asynchronous (file reads): the property is built with `fc.asyncProperty`. */
  async?: boolean;
}

/** `f` with its input type erased, to list fuzzers of different inputs together. */
export const erase = <T>(f: Fuzzer<T>): Fuzzer<unknown> => f as unknown as Fuzzer<unknown>;

/** A broken contract (what the fuzzer reports), as opposed to an error the parser threw. */
export class FuzzFailure extends Error {
  override name = 'FuzzFailure';
}

/** Longest time one case may take before it counts as a hang (ms). */
export const CASE_LIMIT_MS = Number(process.env.KILN_FUZZ_CASE_MS ?? 5000);

/** Build the fast-check property of `f`, calling `onCase` before each case (the runner's progress). */
export function propertyOf<T>(f: Fuzzer<T>, onCase: () => void = () => {}): fc.IRawProperty<[T], boolean> {
  const timed = (start: number): void => {
    const ms = performance.now() - start;
    if (ms > CASE_LIMIT_MS) throw new FuzzFailure(`the case took ${ms.toFixed(0)} ms (limit ${CASE_LIMIT_MS} ms)`);
  };
  if (f.async)
    return fc.asyncProperty(f.arb, async (input) => {
      onCase();
      const start = performance.now();
      await f.check(input);
      timed(start);
    }) as unknown as fc.IRawProperty<[T], boolean>;
  return fc.property(f.arb, (input) => {
    onCase();
    const start = performance.now();
    f.check(input) as void;
    timed(start);
  });
}

// ---- the contract ------------------------------------------------------------------------------

/** Live tensors, counting those the collector released (which `tensors` alone would hide). */
export function liveTensors(): number {
  const m = memory();
  return m.tensors + m.collected;
}

const MAX_MESSAGE = 10_000;

/**
 * Check that `e`, thrown by a parser, is a plain `Error` (not a TypeError, RangeError or
 * SyntaxError escaping from deep inside) with a message that starts with one of `prefixes`
 * and stays short.
 */
export function checkError(e: unknown, prefixes: readonly string[]): Error {
  if (e instanceof FuzzFailure) throw e;
  if (!(e instanceof Error)) throw new FuzzFailure(`threw a non-Error: ${preview(e)}`);
  if (Object.getPrototypeOf(e) !== Error.prototype)
    throw new FuzzFailure(`threw a ${e.constructor.name} instead of an Error naming the API: ${e.message.slice(0, 300)}\n${e.stack ?? ''}`);
  if (!prefixes.some((p) => e.message.startsWith(p)))
    throw new FuzzFailure(`error message does not start with ${prefixes.map((p) => JSON.stringify(p)).join(' or ')}: ${e.message.slice(0, 300)}`);
  if (e.message.length > MAX_MESSAGE) throw new FuzzFailure(`error message is ${e.message.length} characters long: ${e.message.slice(0, 200)}…`);
  return e;
}

/** `fn()`'s result, or the checked error it threw (see {@link checkError}). */
export function attempt<R>(fn: () => R, prefixes: readonly string[]): { ok: true; value: R } | { ok: false; error: Error } {
  try {
    return { ok: true, value: fn() };
  } catch (e) {
    return { ok: false, error: checkError(e, prefixes) };
  }
}

/** {@link attempt} for an async `fn`. */
export async function attemptAsync<R>(fn: () => Promise<R>, prefixes: readonly string[]): Promise<{ ok: true; value: R } | { ok: false; error: Error }> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    return { ok: false, error: checkError(e, prefixes) };
  }
}

/** Throw a {@link FuzzFailure} unless `cond`. */
export function expectThat(cond: boolean, message: string | (() => string)): asserts cond {
  if (!cond) throw new FuzzFailure(typeof message === 'string' ? message : message());
}

/** Backends the fuzzers load onto: those with synchronous reads that can be created here. */
export function loadBackends(): string[] {
  const names = backends()
    .filter((b) => b.available && (b.name === 'cpu' || b.name === 'ref'))
    .map((b) => b.name);
  if (names.length === 0) throw new Error('fuzz: neither the cpu nor the ref backend is available');
  return names;
}

/**
 * The largest single allocation (bytes) made on the load backends since the last call:
 * every backend's `alloc` is wrapped once, so a parser that trusts a lying header is caught
 * at the request, not when the machine runs out of memory.
 */
export function largestAllocation(): number {
  for (const name of loadBackends()) spy(backendSync(name));
  const m = largest;
  largest = 0;
  return m;
}

/**
 * Make the load backends' allocations fail (as when device memory runs out) after `n` more
 * succeed; null: never. Returns a function that lifts the limit.
 */
export function failAllocationsAfter(n: number | null): () => void {
  largestAllocation();
  allocsLeft = n ?? Infinity;
  return () => {
    allocsLeft = Infinity;
  };
}

let largest = 0;
let allocsLeft = Infinity;
const spied = new WeakSet<Backend>();
function spy(b: Backend): void {
  if (spied.has(b)) return;
  spied.add(b);
  const alloc = b.alloc.bind(b);
  b.alloc = (dtype: DType, size: number) => {
    largest = Math.max(largest, size * itemSize(dtype));
    if (allocsLeft <= 0) throw new Error(`${b.name}: out of memory (injected by the fuzzer)`);
    allocsLeft--;
    return alloc(dtype, size);
  };
}

/** A scratch folder for a fuzz module's files, removed when the process exits. */
export function scratchDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `kiln-fuzz-${name}-`));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Give `o` the own property `key` (even `__proto__`, which plain assignment would take as the prototype). */
export function setOwn(o: object, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

/** A short, safe rendering of any value for a failure message. */
export function preview(v: unknown, max = 200): string {
  let s: string;
  try {
    s = typeof v === 'string' ? JSON.stringify(v) : String(v);
  } catch {
    s = Object.prototype.toString.call(v);
  }
  return s.length > max ? `${s.slice(0, max)}… (${s.length} chars)` : s;
}

// ---- JSON beyond JSON.stringify ----------------------------------------------------------------

/** JSON text written as is (nesting deeper than `JSON.stringify` can go, malformed text). */
export class RawJSON {
  constructor(readonly text: string) {
    // generated values are shared between cases: an edit that reached into one would change later cases
    Object.freeze(this);
  }
  [fc.toStringMethod](): string {
    return this.text.length > 80 ? `RawJSON(${JSON.stringify(this.text.slice(0, 40))}… ${this.text.length} chars)` : `RawJSON(${JSON.stringify(this.text)})`;
  }
}

/** A JSON object written with its keys in this order, repeats allowed (the last one wins in `JSON.parse`). */
export class Pairs {
  constructor(readonly entries: readonly (readonly [string, unknown])[]) {
    Object.freeze(this);
  }
  [fc.toStringMethod](): string {
    return `Pairs(${fc.stringify(this.entries)})`;
  }
}

/** The JSON text of `v`, which may hold {@link RawJSON} and {@link Pairs} anywhere. */
export function jsonText(v: unknown): string {
  if (v instanceof RawJSON) return v.text;
  if (v instanceof Pairs) return `{${v.entries.map(([k, x]) => `${JSON.stringify(k)}:${jsonText(x)}`).join(',')}}`;
  if (Array.isArray(v)) return `[${v.map(jsonText).join(',')}]`;
  if (v !== null && typeof v === 'object') return jsonText(new Pairs(Object.entries(v)));
  return JSON.stringify(v) ?? 'null';
}

/**
 * A copy of a generated value that edits may change in place (fast-check shares generated
 * values between cases and shrinks them afterwards: they must never be mutated). RawJSON and
 * Pairs are immutable and kept.
 */
export function fresh<T>(v: T): T {
  if (v instanceof RawJSON || v instanceof Pairs || v === null || typeof v !== 'object') return v;
  if (v instanceof Uint8Array) return v.slice() as T;
  if (Array.isArray(v)) return v.map(fresh) as T;
  const out = Object.create(Object.getPrototypeOf(v) as object | null) as Record<string, unknown>;
  for (const [k, x] of Object.entries(v)) setOwn(out, k, fresh(x));
  return out as T;
}

/** Whether `v` is a JSON object that edits may change (not an array, RawJSON or Pairs). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof RawJSON) && !(v instanceof Pairs) && !ArrayBuffer.isView(v);
}

/** `v` as the JS value a JSON file holding {@link jsonText}(v) parses to. */
export function asParsed(v: unknown): unknown {
  return JSON.parse(jsonText(v));
}

const DEPTH = 20_000;
/** Values no parser should choke on: wrong types, extreme numbers, nesting past any stack, prototype names. */
export const nastyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    null,
    true,
    false,
    0,
    -0,
    -1,
    0.5,
    1e-300,
    2 ** 31,
    2 ** 32,
    2 ** 40,
    2 ** 53,
    2 ** 53 + 2,
    2 ** 64,
    1e308,
    -1e308,
    '',
    'NaN',
    'Infinity',
    '-1',
    '1e3',
    '0x10',
    '__proto__',
    'constructor',
    '\ud800',
    'a\u0000b',
    [],
    {},
    [1, 2, 3],
    { __proto__: null, toString: 1 },
    new RawJSON(`${'['.repeat(DEPTH)}${']'.repeat(DEPTH)}`),
    new RawJSON(`${'{"a":'.repeat(DEPTH)}1${'}'.repeat(DEPTH)}`),
    new RawJSON(`[${new Array(10_000).fill('1').join(',')}]`),
    new RawJSON('1e400'),
    new RawJSON('-1e400'),
    new RawJSON('123456789012345678901234567890'),
    new RawJSON('{"__proto__":{"x":1}}'),
    new RawJSON('{"a":1,"a":"b"}'),
    new RawJSON('"\\ud800\\udc00\\udfff"'),
  ),
  fc.jsonValue({ maxDepth: 2 }),
);

// ---- bytes -------------------------------------------------------------------------------------

/** A corruption of a byte string, as data (so a counterexample prints readably). */
export type ByteEdit =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'append'; bytes: Uint8Array }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; count: number };

/** Byte sequences that are not UTF-8 (lone continuation, overlong, encoded surrogate, past U+10FFFF) or are surprising (a BOM, NUL). */
export const BAD_UTF8: readonly Uint8Array[] = [
  [0xff],
  [0x80],
  [0xc0, 0x80],
  [0xc3],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xef, 0xbb, 0xbf],
  [0x00],
].map((b) => Uint8Array.from(b));

/** Arbitrary byte edits; positions are taken modulo the length they apply to. */
export const byteEdit: fc.Arbitrary<ByteEdit> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.oneof(fc.constantFrom(...BAD_UTF8), fc.uint8Array({ minLength: 1, maxLength: 8 })) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 16 }) }),
);

/** `bytes` with `e` applied (a new array). */
export function applyByteEdit(bytes: Uint8Array, e: ByteEdit): Uint8Array {
  const n = bytes.length;
  switch (e.kind) {
    case 'flip':
    case 'set': {
      if (n === 0) return bytes.slice();
      const out = bytes.slice();
      const i = e.at % n;
      out[i] = e.kind === 'flip' ? out[i]! ^ (1 << e.bit) : e.byte;
      return out;
    }
    case 'truncate':
      return bytes.slice(0, e.at % (n + 1));
    case 'append':
      return concat(bytes, e.bytes);
    case 'insert': {
      const i = e.at % (n + 1);
      return concat(bytes.subarray(0, i), e.bytes, bytes.subarray(i));
    }
    case 'delete': {
      const i = e.at % (n + 1);
      return concat(bytes.subarray(0, i), bytes.subarray(Math.min(n, i + e.count)));
    }
  }
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * safetensors bytes written from the format's definition (not with kiln's writer): the u64
 * header length (`length` overrides it), the header text, then `data`.
 */
export function safetensorsBytes(headerText: string | Uint8Array, data: Uint8Array, length?: bigint): Uint8Array {
  const header = typeof headerText === 'string' ? new TextEncoder().encode(headerText) : headerText;
  const out = new Uint8Array(8 + header.length + data.length);
  new DataView(out.buffer).setBigUint64(0, length ?? BigInt(header.length), true);
  out.set(header, 8);
  out.set(data, 8 + header.length);
  return out;
}

/** Split safetensors bytes into header text and data (null when the length prefix does not fit). */
export function splitSafetensors(bytes: Uint8Array): { header: string; data: Uint8Array } | null {
  if (bytes.length < 8) return null;
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8)) return null;
  const end = 8 + Number(n);
  return { header: new TextDecoder().decode(bytes.subarray(8, end)), data: bytes.subarray(end) };
}

/** Element sizes of every dtype the safetensors format defines. */
export const FORMAT_SIZES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, I64: 8, U64: 8, F64: 8, C64: 8,
};
