/**
 * Fuzzing `loadSafetensors` and `parseSafetensorsHeader`: valid files (every format dtype,
 * odd names, tensors laid out in another order than the header lists them) with header edits
 * (wrong dtypes, shapes and offsets, gaps, overlaps, duplicate keys, huge and negative numbers,
 * nesting past any stack, a lying header length, non-UTF-8 bytes) and byte corruptions; and
 * arbitrary bytes. A load either succeeds with exactly the tensors the header describes (shape,
 * dtype and bytes, checked against an independent reading of the file) or throws
 * `safetensors: …`, leaving no tensor behind and allocating no more than the file could hold.
 * @module
 */
import fc from 'fast-check';
import { loadSafetensors, parseSafetensorsHeader, type SafetensorsFile, type SafetensorsHeader } from '../../src/index.js';
import {
  FORMAT_SIZES,
  Pairs,
  applyByteEdit,
  attempt,
  byteEdit,
  concat,
  erase,
  failAllocationsAfter,
  fresh,
  isPlainObject,
  expectThat,
  jsonText,
  largestAllocation,
  liveTensors,
  loadBackends,
  nastyValue,
  preview,
  safetensorsBytes,
  splitSafetensors,
  type ByteEdit,
  type Fuzzer,
} from './common.js';

const PARSE_PREFIX = ['parseSafetensorsHeader: '];
const LOAD_PREFIX = ['loadSafetensors: '];
/** A message without the name of the function that threw it. */
const unnamed = (m: string): string => m.replace(/^(parseSafetensorsHeader|loadSafetensors): /, '');
const DTYPES = Object.keys(FORMAT_SIZES);
/** Loaded as themselves, or widened to i32 when every value fits. */
const KILN_DTYPE: Record<string, string> = { F64: 'f64', F32: 'f32', F16: 'f16', BF16: 'bf16', I32: 'i32', BOOL: 'bool' };
const WIDENED = new Set(['I8', 'U8', 'I16', 'U16', 'U32', 'I64', 'U64']);

/** One tensor of a valid file. */
export interface TensorSpec {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** A valid file: tensors in header order, laid out in `layout` order, with metadata pairs. */
export interface FileSpec {
  tensors: TensorSpec[];
  /** Data order: `layout[k]` is the index of the k-th tensor in the buffer. */
  layout: number[];
  metadata: [string, string][] | null;
  /** Where `__metadata__` sits among the header keys. */
  metadataAt: number;
  /** Whitespace after the JSON (the reference writer pads to 8 bytes with spaces). */
  padding: string;
}

/** Names that trip naive code: prototype keys, empty, NUL, lone surrogates, dots. */
export const NAMES = ['w', 'a.b', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '', ' ', '\u0000', '\ud800', 'x\udc00', 'é', '__metadata__x', 'model.w', '0', '-1'];
export const nameArb = fc.oneof(fc.constantFrom(...NAMES), fc.string({ maxLength: 8 }), fc.string({ unit: 'binary', maxLength: 4 }));

const shapeArb = fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 });

/** A tensor's bytes: random, or (for integer types) small values that fit in i32. */
function tensorArb(name: fc.Arbitrary<string>, dtypes: readonly string[] = DTYPES): fc.Arbitrary<TensorSpec> {
  return fc
    .record({ name, dtype: fc.constantFrom(...dtypes), shape: shapeArb, small: fc.boolean() })
    .chain(({ name, dtype, shape, small }) => {
      const size = FORMAT_SIZES[dtype]!;
      const n = shape.reduce((p, d) => p * d, 1) * size;
      return fc.uint8Array({ minLength: n, maxLength: n }).map((data) => {
        // small: only the lowest byte of each element (little-endian) is set
        if (small) for (let i = 0; i < data.length; i++) if (i % size !== 0) data[i] = 0;
        return { name, dtype, shape, data };
      });
    });
}

export const fileSpecArb: fc.Arbitrary<FileSpec> = fc
  .uniqueArray(tensorArb(nameArb.filter((s) => s !== '__metadata__')), { maxLength: 5, selector: (t) => t.name })
  .chain((tensors) =>
    fc.record({
      tensors: fc.constant(tensors),
      layout: fc.shuffledSubarray(
        tensors.map((_, i) => i),
        { minLength: tensors.length, maxLength: tensors.length },
      ),
      metadata: fc.option(fc.array(fc.tuple(fc.oneof(fc.constantFrom('format', '__proto__', 'constructor', ''), fc.string({ maxLength: 6 })), fc.string({ maxLength: 8 })), { maxLength: 3 })),
      metadataAt: fc.nat({ max: tensors.length }),
      padding: fc.constantFrom('', ' ', '       ', '\n', '\t \r\n'),
    }),
  );

/** An edit of the header (as JSON), applied before it is written. Entry indices are taken modulo the count. */
export type HeaderEdit =
  | { kind: 'field'; entry: number; field: 'dtype' | 'shape' | 'data_offsets'; value: unknown }
  | { kind: 'dtype'; entry: number; dtype: string }
  | { kind: 'dim'; entry: number; dim: number; value: unknown }
  | { kind: 'shift'; entry: number; which: 0 | 1 | 2; by: number }
  | { kind: 'lie'; entry: number; shape: number[] }
  | { kind: 'duplicate'; entry: number; shift: number }
  | { kind: 'entry'; entry: number; value: unknown }
  | { kind: 'rename'; entry: number; name: string }
  | { kind: 'add'; name: string; value: unknown }
  | { kind: 'metadata'; value: unknown }
  | { kind: 'header'; value: unknown }
  | { kind: 'length'; value: bigint }
  | { kind: 'headerBytes'; at: number; bytes: Uint8Array };

const hugeNumber = fc.constantFrom(2 ** 31, 2 ** 32, 2 ** 40, 2 ** 52, 2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e300, -1, -(2 ** 40), 0.5);

export const headerEditArb: fc.Arbitrary<HeaderEdit> = fc.oneof(
  fc.record({ kind: fc.constant('field' as const), entry: fc.nat(), field: fc.constantFrom('dtype' as const, 'shape' as const, 'data_offsets' as const), value: nastyValue }),
  fc.record({ kind: fc.constant('dtype' as const), entry: fc.nat(), dtype: fc.constantFrom(...DTYPES, 'f32', 'F32 ', 'I4', 'F128', '') }),
  fc.record({ kind: fc.constant('dim' as const), entry: fc.nat(), dim: fc.nat(), value: fc.oneof(hugeNumber, fc.integer({ min: 0, max: 9 }), nastyValue) }),
  fc.record({ kind: fc.constant('shift' as const), entry: fc.nat(), which: fc.constantFrom(0 as const, 1 as const, 2 as const), by: fc.oneof(fc.integer({ min: -16, max: 16 }), hugeNumber) }),
  fc.record({
    kind: fc.constant('lie' as const),
    entry: fc.nat(),
    shape: fc.constantFrom([2 ** 40], [2 ** 20, 2 ** 20], [2 ** 31, 2], [65536, 65536, 65536], [2 ** 53 - 1], [0, 2 ** 53], [2 ** 30, 0, 2 ** 30]).map((s) => [...s]),
  }),
  fc.record({ kind: fc.constant('duplicate' as const), entry: fc.nat(), shift: fc.integer({ min: -8, max: 8 }) }),
  fc.record({ kind: fc.constant('entry' as const), entry: fc.nat(), value: nastyValue }),
  fc.record({ kind: fc.constant('rename' as const), entry: fc.nat(), name: fc.oneof(nameArb, fc.constant('__metadata__')) }),
  fc.record({ kind: fc.constant('add' as const), name: fc.oneof(nameArb, fc.constant('__metadata__')), value: fc.oneof(nastyValue, fc.constant({ dtype: 'F32', shape: [0], data_offsets: [0, 0] })) }),
  fc.record({ kind: fc.constant('metadata' as const), value: fc.oneof(nastyValue, fc.constant(new Pairs([['a', 'x'], ['a', 1]]))) }),
  fc.record({ kind: fc.constant('header' as const), value: nastyValue }),
  fc.record({
    kind: fc.constant('length' as const),
    value: fc.oneof(fc.bigInt({ min: 0n, max: 300n }), fc.constantFrom(2n ** 63n, 2n ** 64n - 1n, 2n ** 53n + 1n, 100_000_001n, 2n ** 32n)),
  }),
  fc.record({ kind: fc.constant('headerBytes' as const), at: fc.nat(), bytes: fc.constantFrom(...[[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xef, 0xbb, 0xbf], [0xf4, 0x90, 0x80, 0x80]].map((b) => Uint8Array.from(b))) }),
);

/** The header pairs and data buffer of a spec, before edits. */
function layout(spec: FileSpec): { pairs: [string, unknown][]; data: Uint8Array } {
  const offsets = new Map<number, [number, number]>();
  let at = 0;
  for (const i of spec.layout) {
    const n = spec.tensors[i]!.data.length;
    offsets.set(i, [at, at + n]);
    at += n;
  }
  const pairs: [string, unknown][] = spec.tensors.map((t, i) => [t.name, { dtype: t.dtype, shape: [...t.shape], data_offsets: [...offsets.get(i)!] }]);
  if (spec.metadata) pairs.splice(spec.metadataAt, 0, ['__metadata__', new Pairs(spec.metadata)]);
  return { pairs, data: concat(...spec.layout.map((i) => spec.tensors[i]!.data)) };
}

/** The file of `spec` with `edits` applied (header edits first, in order, then byte edits). */
export function buildFile(spec: FileSpec, headerEdits: readonly HeaderEdit[] = [], byteEdits: readonly ByteEdit[] = []): Uint8Array {
  const { pairs, data } = layout(spec);
  const entryIdx = (i: number): number | null => {
    const tensors = pairs.map((p, k) => (p[0] === '__metadata__' ? -1 : k)).filter((k) => k >= 0);
    return tensors.length === 0 ? null : tensors[i % tensors.length]!;
  };
  const info = (k: number): Record<string, unknown> | null => {
    const v = pairs[k]![1];
    return isPlainObject(v) ? v : null;
  };
  let whole: unknown = null;
  let length: bigint | undefined;
  const inserts: { at: number; bytes: Uint8Array }[] = [];
  for (const e of fresh(headerEdits)) {
    if (e.kind === 'header') whole = e.value;
    else if (e.kind === 'length') length = e.value;
    else if (e.kind === 'headerBytes') inserts.push(e);
    else if (e.kind === 'add') pairs.push([e.name, e.value]);
    else if (e.kind === 'metadata') {
      const k = pairs.findIndex((p) => p[0] === '__metadata__');
      if (k >= 0) pairs[k] = ['__metadata__', e.value];
      else pairs.unshift(['__metadata__', e.value]);
    } else {
      const k = entryIdx(e.entry);
      if (k === null) continue;
      const v = info(k);
      if (e.kind === 'entry') pairs[k] = [pairs[k]![0], e.value];
      else if (e.kind === 'rename') pairs[k] = [e.name, pairs[k]![1]];
      else if (e.kind === 'duplicate') {
        const copy = v ? { ...v, data_offsets: Array.isArray(v.data_offsets) ? v.data_offsets.map((x) => (typeof x === 'number' ? x + e.shift : x)) : v.data_offsets } : pairs[k]![1];
        pairs.push([pairs[k]![0], copy]);
      } else if (v) {
        if (e.kind === 'field') v[e.field] = e.value;
        else if (e.kind === 'dtype') v.dtype = e.dtype;
        else if (e.kind === 'dim') {
          if (Array.isArray(v.shape)) {
            const shape = [...(v.shape as unknown[])];
            shape[shape.length === 0 ? 0 : e.dim % (shape.length + 1)] = e.value;
            v.shape = shape;
          }
        } else if (e.kind === 'shift') {
          if (Array.isArray(v.data_offsets))
            v.data_offsets = (v.data_offsets as unknown[]).map((x, j) => (typeof x === 'number' && (e.which === 2 || e.which === j) ? x + e.by : x));
        } else if (e.kind === 'lie') {
          const begin = Array.isArray(v.data_offsets) && typeof v.data_offsets[0] === 'number' ? v.data_offsets[0] : 0;
          const n = e.shape.reduce((p, d) => p * d, 1) * (FORMAT_SIZES[String(v.dtype)] ?? 4);
          v.shape = e.shape;
          v.data_offsets = [begin, begin + n];
        }
      }
    }
  }
  let header: Uint8Array = new TextEncoder().encode(jsonText(whole ?? new Pairs(pairs)) + spec.padding);
  for (const ins of inserts) {
    const i = ins.at % (header.length + 1);
    header = concat(header.subarray(0, i), ins.bytes, header.subarray(i));
  }
  let bytes = safetensorsBytes(header, data, length);
  for (const e of byteEdits) bytes = applyByteEdit(bytes, e);
  return bytes;
}

/** The tensors of a well-formed file that kiln cannot load (a dtype it lacks, or values past i32); the load must fail naming one. */
function unloadable(spec: FileSpec): string[] {
  return spec.tensors
    .filter((t) => !(t.dtype in KILN_DTYPE) && (!WIDENED.has(t.dtype) || widen(t.dtype, t.data).some((v) => v < -2147483648 || v > 2147483647)))
    .map((t) => t.name);
}

function widen(dtype: string, raw: Uint8Array): (number | bigint)[] {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const size = FORMAT_SIZES[dtype]!;
  const out: (number | bigint)[] = [];
  for (let i = 0; i * size < raw.length; i++) {
    const o = i * size;
    out.push(
      dtype === 'I8' ? dv.getInt8(o)
      : dtype === 'U8' ? dv.getUint8(o)
      : dtype === 'I16' ? dv.getInt16(o, true)
      : dtype === 'U16' ? dv.getUint16(o, true)
      : dtype === 'U32' ? dv.getUint32(o, true)
      : dtype === 'I64' ? dv.getBigInt64(o, true)
      : dv.getBigUint64(o, true),
    );
  }
  return out;
}

const sameShape = (a: readonly unknown[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Check a successful parse and load against an independent reading of `bytes`: the names are
 * the header's keys, each tensor has the header's shape, the dtype kiln gives that file dtype,
 * and exactly the bytes at its offsets; the offsets tile the data buffer; the metadata is the
 * header's.
 */
export function checkConsistent(bytes: Uint8Array, header: SafetensorsHeader, file: SafetensorsFile | null): void {
  const parts = splitSafetensors(bytes);
  expectThat(parts !== null, 'accepted a file whose header length does not fit');
  const json = JSON.parse(parts.header) as Record<string, unknown>;
  const names = Object.keys(json).filter((k) => k !== '__metadata__');
  expectThat(header.dataStart === bytes.length - parts.data.length, `dataStart ${header.dataStart} is not 8 + the header length`);
  expectThat(
    header.entries.length === names.length && names.every((n) => header.entries.some((e) => e.name === n)),
    () => `entries ${preview(header.entries.map((e) => e.name))} are not the header's keys ${preview(names)}`,
  );
  let at = 0;
  for (const e of header.entries) {
    const info = json[e.name] as { dtype: string; shape: number[]; data_offsets: [number, number] };
    expectThat(info.dtype === e.dtype && sameShape(info.shape, e.shape), `entry '${e.name}' is not the header's`);
    expectThat(info.data_offsets[0] === e.begin && info.data_offsets[1] === e.end, `offsets of '${e.name}' are not the header's`);
    expectThat(e.begin === at, `entry '${e.name}' starts at ${e.begin}, not at ${at} (gap or overlap accepted)`);
    const n = e.shape.reduce((p, d) => p * d, 1);
    expectThat(e.end - e.begin === n * FORMAT_SIZES[e.dtype]!, `entry '${e.name}' holds ${e.end - e.begin} bytes for ${n} ${e.dtype} elements`);
    at = e.end;
  }
  expectThat(at === parts.data.length, `the entries cover ${at} of ${parts.data.length} data bytes`);
  const meta = (json.__metadata__ ?? {}) as Record<string, unknown>;
  expectThat(JSON.stringify(header.metadata) === JSON.stringify(meta), 'metadata differs from the header');
  if (!file) return;
  expectThat(JSON.stringify(file.metadata) === JSON.stringify(meta), 'loaded metadata differs from the header');
  // file order, as far as a JS object keeps it: names that are array indices ('0') come first
  const order = Object.keys(Object.fromEntries(header.entries.map((e) => [e.name, 0])));
  const loaded = Object.keys(file.tensors);
  expectThat(
    loaded.length === order.length && loaded.every((n, i) => n === order[i]),
    () => `tensors ${preview(loaded)} are not the entries in file order ${preview(order)}`,
  );
  for (const e of header.entries) {
    const t = file.tensors[e.name]!;
    expectThat(sameShape(t.shape, e.shape), () => `tensor '${e.name}' is ${preview(t.shape)}, the header says ${preview(e.shape)}`);
    const raw = parts.data.subarray(e.begin, e.end);
    const storage = t.backend.readSync!(t._storage('fuzz'));
    const n = t.size;
    const kiln = KILN_DTYPE[e.dtype];
    expectThat(t.dtype === (kiln ?? 'i32'), `tensor '${e.name}' (${e.dtype}) loaded as ${t.dtype}`);
    if (kiln === 'bool') {
      for (let i = 0; i < n; i++) expectThat(storage[i] === (raw[i] !== 0 ? 1 : 0), `bool ${i} of '${e.name}' differs`);
    } else if (kiln) {
      const got = new Uint8Array(storage.buffer, storage.byteOffset, raw.length);
      for (let i = 0; i < raw.length; i++) expectThat(got[i] === raw[i], () => `byte ${i} of '${e.name}' is ${got[i]}, the file has ${raw[i]}`);
    } else {
      const want = widen(e.dtype, raw);
      for (let i = 0; i < n; i++) expectThat(BigInt(storage[i]!) === BigInt(want[i]!), `element ${i} of '${e.name}' is ${storage[i]}, the file has ${want[i]}`);
    }
  }
}

/** One case: parse and load `bytes` on `backend`; the contract of the module comment. */
export function checkSafetensorsBytes(bytes: Uint8Array, backend: string, wellFormed: FileSpec | null, failAllocAfter: number | null = null): void {
  const before = liveTensors();
  largestAllocation();
  const parsed = attempt(() => parseSafetensorsHeader(bytes), PARSE_PREFIX);
  const lift = failAllocationsAfter(failAllocAfter);
  let loaded;
  try {
    loaded = attempt(() => loadSafetensors(bytes, { backend }), LOAD_PREFIX);
  } finally {
    lift();
  }
  const allocated = largestAllocation();
  if (failAllocAfter !== null && !loaded.ok && /injected/.test(loaded.error.message)) wellFormed = null;
  // widening I8/U8 to i32 quadruples; nothing else may grow past the file
  expectThat(allocated <= 4 * bytes.length + 64, `allocated ${allocated} bytes for a ${bytes.length}-byte file`);
  if (!parsed.ok) {
    expectThat(!loaded.ok && unnamed(loaded.error.message) === unnamed(parsed.error.message), () => `parse failed (${parsed.error.message}) but load ${loaded.ok ? 'succeeded' : `said ${loaded.error.message}`}`);
  }
  if (!loaded.ok) {
    expectThat(liveTensors() === before, `a failed load left ${liveTensors() - before} tensors alive: ${loaded.error.message}`);
    if (parsed.ok) checkConsistent(bytes, parsed.value, null);
    if (wellFormed) {
      const bad = unloadable(wellFormed);
      expectThat(bad.some((n) => loaded.error.message.includes(`'${n}'`)), `a well-formed file failed to load: ${loaded.error.message}`);
    }
    return;
  }
  try {
    expectThat(parsed.ok, 'load succeeded where parse failed');
    checkConsistent(bytes, parsed.value, loaded.value);
    if (wellFormed) expectThat(unloadable(wellFormed).length === 0, 'loaded a tensor kiln cannot hold');
  } finally {
    for (const t of Object.values(loaded.value.tensors)) t.dispose();
  }
  expectThat(liveTensors() === before, `disposing the loaded tensors left ${liveTensors() - before} alive`);
}

interface CorruptedCase {
  spec: FileSpec;
  headerEdits: HeaderEdit[];
  byteEdits: ByteEdit[];
  backend: string;
  failAllocAfter: number | null;
}

const corrupted: Fuzzer<CorruptedCase> = {
  parser: 'safetensors',
  name: 'loadSafetensors / parseSafetensorsHeader: valid files with header edits and corrupted bytes',
  arb: fc.record({
    spec: fileSpecArb,
    headerEdits: fc.array(headerEditArb, { maxLength: 3 }),
    // byte edits mostly break the length prefix or the UTF-8: one case in three has them
    byteEdits: fc.oneof({ arbitrary: fc.constant<ByteEdit[]>([]), weight: 2 }, { arbitrary: fc.array(byteEdit, { minLength: 1, maxLength: 2 }), weight: 1 }),
    backend: fc.constantFrom(...loadBackends()),
    // device memory running out part-way through the load, one case in ten
    failAllocAfter: fc.oneof({ arbitrary: fc.constant(null), weight: 9 }, { arbitrary: fc.nat({ max: 4 }), weight: 1 }),
  }),
  check({ spec, headerEdits, byteEdits, backend, failAllocAfter }) {
    const wellFormed = headerEdits.length === 0 && byteEdits.length === 0 ? spec : null;
    checkSafetensorsBytes(buildFile(spec, headerEdits, byteEdits), backend, wellFormed, failAllocAfter);
  },
};

interface ArbitraryCase {
  bytes: Uint8Array;
  backend: string;
}

const arbitrary: Fuzzer<ArbitraryCase> = {
  parser: 'safetensors',
  name: 'loadSafetensors / parseSafetensorsHeader: arbitrary bytes and arbitrary JSON headers',
  arb: fc.record({
    bytes: fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc
        .record({ header: fc.oneof(fc.json(), nastyValue.map(jsonText), fc.string({ unit: 'binary', maxLength: 40 })), data: fc.uint8Array({ maxLength: 64 }), length: fc.option(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })) })
        .map(({ header, data, length }) => safetensorsBytes(header, data, length ?? undefined)),
    ),
    backend: fc.constantFrom(...loadBackends()),
  }),
  check({ bytes, backend }) {
    checkSafetensorsBytes(bytes, backend, null);
  },
};

export const fuzzers: Fuzzer<unknown>[] = [erase(corrupted), erase(arbitrary)];
