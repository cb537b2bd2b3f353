/**
 * safetensors read and write (the format of Hugging Face's `safetensors`): an 8-byte
 * little-endian u64 header length N, N bytes of JSON header
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__"?: { key: "value" } }`,
 * then the data buffer, each tensor little-endian and row-major at its offsets (relative to the
 * start of the buffer). Reading validates everything before a tensor is made: a file kiln
 * accepts has a well-formed header, offsets that tile the buffer exactly, and sizes that match
 * dtype × shape. Errors start with the function called (`loadSafetensors: <problem>`).
 * @module
 */
import { hostFiles } from '../host.js';
import type { StorageArray } from '../backend/dtype.js';
import { itemSize, type DType } from '../backend/dtype.js';
import { backendSync } from '../backend/registry.js';
import { Tensor } from '../tensor/tensor.js';
import { relabel } from '../tensor/ops/util.js';
import { checkKeys, show } from '../tensor/validate.js';
import { describeJSON } from './describe.js';

/** String metadata stored in the header under `__metadata__`. */
export type SafetensorsMetadata = Record<string, string>;

/** What {@link loadSafetensors} returns. */
export interface SafetensorsFile {
  /**
   * The tensors, by name, in file order (the caller owns them); as in any JS object, names that
   * are array indices (`'0'`, `'12'`) come first, in numeric order.
   */
  tensors: Record<string, Tensor>;
  /** The header's `__metadata__` (empty when absent). */
  metadata: SafetensorsMetadata;
}

/** One tensor's entry in a parsed header. */
export interface SafetensorsEntry {
  name: string;
  /** The file's dtype string (`F32`, `BF16`, …). */
  dtype: string;
  shape: number[];
  /** Byte range within the data buffer. */
  begin: number;
  end: number;
}

/** A parsed and validated header. */
export interface SafetensorsHeader {
  /** Entries sorted by offset (file order). */
  entries: SafetensorsEntry[];
  metadata: SafetensorsMetadata;
  /** Where the data buffer starts in the file: 8 + N. */
  dataStart: number;
}

const TO_FILE: Record<DType, string> = { f64: 'F64', f32: 'F32', f16: 'F16', bf16: 'BF16', i32: 'I32', bool: 'BOOL' };
const FROM_FILE: Record<string, DType> = { F64: 'f64', F32: 'f32', F16: 'f16', BF16: 'bf16', I32: 'i32', BOOL: 'bool' };
// integer types read losslessly into i32 (the 64- and unsigned 32-bit ones only when every value fits)
const WIDENED: Record<string, number> = { I8: 1, U8: 1, I16: 2, U16: 2, U32: 4, I64: 8, U64: 8 };
// every dtype the format defines, with its element size, so that a size check can name them
const FORMAT_SIZES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, I64: 8, U64: 8, F64: 8, C64: 8,
};
/** Largest header accepted (the reference implementation's limit). */
const MAX_HEADER = 100_000_000;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function fail(message: string): never {
  throw new Error(`safetensors: ${message}`);
}

// ---- writing ---------------------------------------------------------------------------------

/** @internal A tensor's raw storage, ready to write. */
export interface RawTensor {
  name: string;
  dtype: DType;
  shape: readonly number[];
  data: StorageArray;
}

function checkInputs(op: string, tensors: Record<string, Tensor>, metadata: SafetensorsMetadata | undefined): [string, Tensor][] {
  if (tensors === null || typeof tensors !== 'object' || Array.isArray(tensors) || tensors instanceof Tensor)
    throw new Error(`${op}: expected a record of tensors { name: tensor }, got ${show(tensors)}`);
  const entries = Object.entries(tensors);
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new Error(`${op}: '__metadata__' is reserved and cannot name a tensor`);
    if (!(t instanceof Tensor)) throw new Error(`${op}: '${name}' is not a Tensor, got ${show(t)}`);
    if (t.disposed) throw new Error(`${op}: tensor '${name}' was disposed`);
  }
  if (metadata !== undefined && (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)))
    throw new Error(`${op}: metadata must be an object of strings { key: value }, got ${show(metadata)}`);
  for (const [k, v] of Object.entries(metadata ?? {}))
    if (typeof v !== 'string') throw new Error(`${op}: metadata '${k}' must be a string, got ${typeof v} ${show(v)}`);
  return entries;
}

// Write `bytes` to `path` for `op`: the writer's errors named by `op`.
async function writeAs(op: string, path: string, bytes: Uint8Array): Promise<void> {
  const files = hostFiles(op, 'no path, to get the bytes');
  try {
    await files.writeAtomic(path, bytes);
  } catch (e) {
    throw relabel(op, e);
  }
}

/** @internal Raw storages of `tensors`, waiting for device work where needed. */
export async function readRaw(op: string, tensors: Record<string, Tensor>, metadata?: SafetensorsMetadata): Promise<RawTensor[]> {
  const out: RawTensor[] = [];
  for (const [name, t] of checkInputs(op, tensors, metadata))
    out.push({ name, dtype: t.dtype, shape: t.shape, data: exact(await t.backend.read(t._storage(op)), t.size) });
  return out;
}

/** @internal Raw storages of `tensors`, read synchronously. */
export function readRawSync(op: string, tensors: Record<string, Tensor>, metadata?: SafetensorsMetadata): RawTensor[] {
  return checkInputs(op, tensors, metadata).map(([name, t]) => {
    if (!t.backend.readSync)
      throw new Error(`${op}: backend '${t.backend.name}' of tensor '${name}' cannot be read synchronously; use the async saveSafetensors`);
    return { name, dtype: t.dtype, shape: t.shape, data: exact(t.backend.readSync(t._storage(op)), t.size) };
  });
}

// The tensor's own elements (a storage may be allocated larger than the tensor it holds).
function exact(data: StorageArray, n: number): StorageArray {
  return data.length === n ? data : data.subarray(0, n);
}

/** @internal Serialise raw tensors (in the given order) and metadata into safetensors bytes. */
export function encodeRaw(tensors: readonly RawTensor[], metadata?: SafetensorsMetadata): Uint8Array {
  // no prototype: a tensor may be named '__proto__'
  const header: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.data.length * itemSize(t.dtype);
    header[t.name] = { dtype: TO_FILE[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  // the header is padded with spaces so the data buffer starts 8-byte aligned
  const n = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + n + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + n);
  let at = 8 + n;
  for (const t of tensors) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    out.set(bytes, at);
    if (!LITTLE_ENDIAN) swapBytes(out.subarray(at, at + bytes.length), itemSize(t.dtype));
    at += bytes.length;
  }
  return out;
}

/**
 * Serialise `tensors` (and string `metadata`) in safetensors format: with a path, write the
 * file atomically; without, return the bytes. Waits for pending device work on the tensors.
 *
 * @example
 * await saveSafetensors('model.safetensors', model.stateDict(), { format: 'pt' });
 * const bytes = await saveSafetensors({ w }); // Uint8Array
 */
export function saveSafetensors(path: string, tensors: Record<string, Tensor>, metadata?: SafetensorsMetadata): Promise<void>;
export function saveSafetensors(tensors: Record<string, Tensor>, metadata?: SafetensorsMetadata): Promise<Uint8Array>;
export async function saveSafetensors(
  a: string | Record<string, Tensor>,
  b?: Record<string, Tensor> | SafetensorsMetadata,
  c?: SafetensorsMetadata,
): Promise<void | Uint8Array> {
  if (typeof a === 'string') {
    const bytes = encodeRaw(await readRaw('saveSafetensors', b as Record<string, Tensor>, c), c);
    await writeAs('saveSafetensors', a, bytes);
    return;
  }
  return encodeRaw(await readRaw('saveSafetensors', a, b as SafetensorsMetadata | undefined), b as SafetensorsMetadata | undefined);
}

/** {@link saveSafetensors} for backends that can be read synchronously (ref, cpu). */
export function saveSafetensorsSync(path: string, tensors: Record<string, Tensor>, metadata?: SafetensorsMetadata): void;
export function saveSafetensorsSync(tensors: Record<string, Tensor>, metadata?: SafetensorsMetadata): Uint8Array;
export function saveSafetensorsSync(
  a: string | Record<string, Tensor>,
  b?: Record<string, Tensor> | SafetensorsMetadata,
  c?: SafetensorsMetadata,
): void | Uint8Array {
  if (typeof a === 'string') {
    const op = 'saveSafetensorsSync';
    const bytes = encodeRaw(readRawSync(op, b as Record<string, Tensor>, c), c);
    const files = hostFiles(op, 'no path, to get the bytes');
    try {
      files.writeAtomicSync(a, bytes);
    } catch (e) {
      throw relabel(op, e);
    }
    return;
  }
  const meta = b as SafetensorsMetadata | undefined;
  return encodeRaw(readRawSync('saveSafetensorsSync', a, meta), meta);
}

// ---- reading ---------------------------------------------------------------------------------

const isObject = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);
const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

/**
 * Parse and validate the header of safetensors `bytes` without reading any tensor: the length
 * prefix, the JSON, every entry's dtype, shape and offsets, and that the offsets tile the data
 * buffer exactly (contiguous, in order, no gaps or overlaps, nothing past the end).
 */
export function parseSafetensorsHeader(bytes: Uint8Array): SafetensorsHeader {
  return named('parseSafetensorsHeader', () => parseHeader(bytes));
}

// Run `fn` as the public function `op`: its `safetensors: …` errors read `op: …`.
function named<T>(op: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof Error && e.message.startsWith('safetensors: ')) e.message = `${op}: ${e.message.slice('safetensors: '.length)}`;
    throw e;
  }
}

/** @internal {@link parseSafetensorsHeader} with errors `safetensors: …` (for the readers built on it, which quote them). */
export function parseHeader(bytes: Uint8Array): SafetensorsHeader {
  if (!(bytes instanceof Uint8Array)) fail(`expected a Uint8Array, got ${show(bytes)}`);
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, too short for the 8-byte header length`);
  const n64 = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(bytes.length - 8))
    fail(`header length ${n64} is larger than the ${bytes.length - 8} bytes that follow it (truncated file, or not safetensors)`);
  const n = Number(n64);
  if (n > MAX_HEADER) fail(`header length ${n} exceeds the limit of ${MAX_HEADER} bytes`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    fail('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(header)) fail(`header must be a JSON object, got ${Array.isArray(header) ? 'an array' : typeof header}`);
  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;

  let metadata: SafetensorsMetadata = {};
  if ('__metadata__' in header) {
    const m = header.__metadata__;
    if (!isObject(m)) fail(`__metadata__ must be an object of strings`);
    for (const [k, v] of Object.entries(m)) if (typeof v !== 'string') fail(`__metadata__ '${k}' must be a string, got ${typeof v}`);
    metadata = m as SafetensorsMetadata;
  }

  const entries: SafetensorsEntry[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (!isObject(info)) fail(`tensor '${name}': entry must be an object with dtype, shape and data_offsets`);
    const { dtype, shape, data_offsets: off } = info;
    if (typeof dtype !== 'string') fail(`tensor '${name}': dtype must be a string, got ${describeJSON(dtype)}`);
    if (!(dtype in FORMAT_SIZES)) fail(`tensor '${name}': unknown dtype '${dtype}'`);
    if (!Array.isArray(shape) || !shape.every(isCount)) fail(`tensor '${name}': shape must be an array of non-negative integers, got ${describeJSON(shape)}`);
    if (!Array.isArray(off) || off.length !== 2 || !off.every(isCount) || off[0] > off[1])
      fail(`tensor '${name}': data_offsets must be [begin, end] with 0 ≤ begin ≤ end, got ${describeJSON(off)}`);
    const [begin, end] = off as [number, number];
    if (end > dataLength) fail(`tensor '${name}': data_offsets [${begin}, ${end}] run past the ${dataLength}-byte data buffer`);
    const elements = (shape as number[]).reduce((p, d) => p * d, 1);
    const expected = elements * FORMAT_SIZES[dtype]!;
    if (!Number.isSafeInteger(expected) || expected !== end - begin)
      fail(`tensor '${name}': ${dtype} ${describeJSON(shape)} needs ${expected} bytes, data_offsets [${begin}, ${end}] hold ${end - begin}`);
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }
  entries.sort((x, y) => x.begin - y.begin || x.end - y.end);
  let at = 0;
  for (const e of entries) {
    if (e.begin !== at)
      fail(
        e.begin > at
          ? `tensor '${e.name}' starts at byte ${e.begin}, leaving a gap after byte ${at} of the data buffer`
          : `tensor '${e.name}' starts at byte ${e.begin}, overlapping the tensor that ends at byte ${at}`,
      );
    at = e.end;
  }
  if (at !== dataLength) fail(`the tensors cover ${at} bytes but the data buffer has ${dataLength} (extra bytes at the end)`);
  return { entries, metadata, dataStart };
}

/** Options of {@link loadSafetensors}. */
export interface LoadSafetensorsOptions {
  /** Backend to create the tensors on (the default backend when omitted). */
  backend?: string;
}

/**
 * Read safetensors from bytes or a file path: validates the whole header (see
 * {@link parseSafetensorsHeader}), then makes one tensor per entry. F64, F32, F16, BF16, I32 and
 * BOOL load as themselves; I8, U8, I16, U16 widen to i32, and I64, U32, U64 load as i32 when every
 * value fits (else an error naming the tensor). Other dtypes (F8_*, C64) are rejected by name.
 *
 * @example
 * const { tensors, metadata } = loadSafetensors('model.safetensors');
 */
export function loadSafetensors(source: string | Uint8Array, opts: LoadSafetensorsOptions = {}): SafetensorsFile {
  return named('loadSafetensors', () => {
    checkKeys('safetensors', opts, ['backend']);
    const backend = (opts as LoadSafetensorsOptions | null)?.backend;
    if (backend !== undefined && typeof backend !== 'string') fail(`backend must be a backend's name, got ${show(backend)}`);
    if (typeof source !== 'string' && !(source instanceof Uint8Array)) fail(`expected a file path or the bytes of a safetensors file (a Uint8Array), got ${show(source)}`);
    return readSafetensors(source, { backend });
  });
}

/** @internal {@link loadSafetensors} with errors `safetensors: …`. */
export function readSafetensors(source: string | Uint8Array, opts: LoadSafetensorsOptions = {}): SafetensorsFile {
  let bytes: Uint8Array;
  if (typeof source === 'string') {
    try {
      bytes = hostFiles('loadSafetensors', 'the file\'s bytes (a Uint8Array)').readBytes(source);
    } catch (e) {
      fail(`cannot read '${source}': ${(e as Error).message}`);
    }
  } else bytes = source;
  try {
    return decode(bytes, opts);
  } catch (e) {
    if (typeof source === 'string' && e instanceof Error) e.message = `${e.message} (in '${source}')`;
    throw e;
  }
}

function decode(bytes: Uint8Array, opts: LoadSafetensorsOptions): SafetensorsFile {
  const { entries, metadata, dataStart } = parseHeader(bytes);
  return { tensors: makeTensors(bytes, dataStart, entries, opts), metadata: { ...metadata } };
}

/**
 * @internal The tensors of some `entries` of a parsed header of `bytes` (a reader that needs
 * only some, such as {@link loadHFGPT2}, skips the rest: a buffer it ignores may hold a dtype
 * kiln cannot load). Every one is converted before any is allocated, so a bad tensor leaves
 * nothing behind, and running out of memory part-way frees what was made.
 */
export function makeTensors(bytes: Uint8Array, dataStart: number, entries: readonly SafetensorsEntry[], opts: LoadSafetensorsOptions): Record<string, Tensor> {
  let backend;
  try {
    backend = backendSync(opts.backend);
  } catch (e) {
    fail((e as Error).message);
  }
  const arrays = entries.map((e) => {
    if (!(e.dtype in FROM_FILE) && !(e.dtype in WIDENED))
      fail(`tensor '${e.name}' has dtype ${e.dtype}, which kiln cannot load (kiln has F64, F32, F16, BF16, I32, BOOL; I8, U8, I16, U16, U32, I64, U64 widen to i32)`);
    return [e, toStorage(e, bytes.subarray(dataStart + e.begin, dataStart + e.end))] as const;
  });
  // no prototype: a tensor may be named '__proto__' or 'constructor'
  const tensors: Record<string, Tensor> = Object.create(null) as Record<string, Tensor>;
  const made: Tensor[] = [];
  try {
    for (const [e, [dtype, data]] of arrays) {
      const t = Tensor._empty(backend, e.shape, dtype, 'safetensors');
      made.push(t);
      backend.write(t._storage('safetensors'), data);
      tensors[e.name] = t;
    }
  } catch (err) {
    // the device ran out of memory part-way: free what was made
    for (const t of made) t.dispose();
    const message = (err as Error).message;
    throw message.startsWith('safetensors: ') ? err : new Error(`safetensors: ${message}`);
  }
  return tensors;
}

// The bytes of one tensor as kiln's storage array (copied, so it is aligned and owned).
function toStorage(e: SafetensorsEntry, raw: Uint8Array): [DType, StorageArray] {
  const size = FORMAT_SIZES[e.dtype]!;
  // a fresh buffer (Buffer#slice would share the file's memory, at an unaligned offset)
  const copy = new Uint8Array(raw.length);
  copy.set(raw);
  if (!LITTLE_ENDIAN) swapBytes(copy, size);
  const buf = copy.buffer;
  const n = raw.length / size;
  const kiln = FROM_FILE[e.dtype];
  if (kiln) {
    switch (kiln) {
      case 'f64':
        return [kiln, new Float64Array(buf, 0, n)];
      case 'f32':
        return [kiln, new Float32Array(buf, 0, n)];
      case 'i32':
        return [kiln, new Int32Array(buf, 0, n)];
      case 'f16':
      case 'bf16':
        return [kiln, new Uint16Array(buf, 0, n)];
      case 'bool':
        // kiln's bools are exactly 0 or 1
        return [kiln, copy.map((v) => (v !== 0 ? 1 : 0))];
    }
  }
  const out = new Int32Array(n);
  const dv = new DataView(buf);
  for (let i = 0; i < n; i++) {
    const v = readInt(dv, e.dtype, i);
    if (v < -2147483648 || v > 2147483647)
      fail(`tensor '${e.name}': ${e.dtype} value ${v} at index ${i} does not fit in i32, kiln's integer type`);
    out[i] = Number(v);
  }
  return ['i32', out];
}

// Element i of an integer dtype, read in host order (the buffer was already swapped if needed).
function readInt(dv: DataView, dtype: string, i: number): number | bigint {
  const le = LITTLE_ENDIAN;
  switch (dtype) {
    case 'I8':
      return dv.getInt8(i);
    case 'U8':
      return dv.getUint8(i);
    case 'I16':
      return dv.getInt16(i * 2, le);
    case 'U16':
      return dv.getUint16(i * 2, le);
    case 'U32':
      return dv.getUint32(i * 4, le);
    case 'I64':
      return dv.getBigInt64(i * 8, le);
    default:
      return dv.getBigUint64(i * 8, le);
  }
}

function swapBytes(b: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i < b.length; i += size) b.subarray(i, i + size).reverse();
}
