/**
 * Element types. `f32` is the default floating type; `f64` exists on the reference backend
 * (gradient checks); `bf16` and `f16` are storage types: ops on them compute in f32 and round
 * the result back with round-to-nearest-even. `bool` is the result of comparisons.
 */
import { DTYPE_BYTES, type DType } from './ops.gen.js';
import { checkNumber, show } from '../tensor/validate.js';

export type { DType };

/** Every dtype, in promotion order (a later one wins, except that bf16 with f16 gives f32). */
export const DTYPES: readonly DType[] = ['bool', 'i32', 'bf16', 'f16', 'f32', 'f64'];

/** Bytes per element. */
export function itemSize(dtype: DType): number {
  return DTYPE_BYTES[dtype];
}

export function isFloat(dtype: DType): boolean {
  return dtype === 'f32' || dtype === 'f64' || dtype === 'bf16' || dtype === 'f16';
}

export function isHalf(dtype: DType): boolean {
  return dtype === 'bf16' || dtype === 'f16';
}

export function isDType(x: unknown): x is DType {
  return typeof x === 'string' && (DTYPES as readonly string[]).includes(x);
}

/** The dtype of an op over `a` and `b`, as PyTorch promotes tensors of different types. */
export function promoteTypes(a: DType, b: DType): DType {
  for (const d of [a, b]) if (!isDType(d)) throw new Error(`promoteTypes: unknown dtype ${show(d)} (dtypes: ${DTYPES.join(', ')})`);
  if (a === b) return a;
  if (isHalf(a) && isHalf(b)) return 'f32';
  return DTYPES.indexOf(a) > DTYPES.indexOf(b) ? a : b;
}

/** Typed array that stores each dtype: halves are raw bits in a Uint16Array, bool a Uint8Array. */
export type StorageArray = Float32Array | Float64Array | Int32Array | Uint16Array | Uint8Array;

/** Typed array a caller reads back: halves are widened to Float32Array. */
export type DataArray = Float32Array | Float64Array | Int32Array | Uint8Array;

/** A new zeroed storage array of `n` elements, or, with `buffer`, a view of its first `n` elements. */
export function storageArray(dtype: DType, n: number, buffer?: ArrayBufferLike): StorageArray {
  const b = buffer ?? new ArrayBuffer(n * itemSize(dtype));
  switch (dtype) {
    case 'f32':
      return new Float32Array(b, 0, n);
    case 'f64':
      return new Float64Array(b, 0, n);
    case 'i32':
      return new Int32Array(b, 0, n);
    case 'bf16':
    case 'f16':
      return new Uint16Array(b, 0, n);
    case 'bool':
      return new Uint8Array(b, 0, n);
  }
}

// Round-to-nearest-even of a double into a binary format with `mant` fraction bits and
// exponents [eMin, eMax]; returns the format's bit pattern. Every step is exact in f64, so
// there is no double rounding, whether the value came from an f64 or an f32.
function roundToBits(x: number, mant: number, eMin: number, eMax: number, expBits: number): number {
  const signBit = 1 << (mant + expBits);
  const expMask = (1 << expBits) - 1;
  if (Number.isNaN(x)) return (expMask << mant) | (1 << (mant - 1));
  const sign = x < 0 || Object.is(x, -0) ? signBit : 0;
  let a = Math.abs(x);
  const inf = sign | (expMask << mant);
  if (a === Infinity) return inf;
  const scale = 2 ** mant;
  if (a < 2 ** eMin) {
    // subnormal: units of 2^(eMin - mant); rounding may carry into the smallest normal
    const m = roundHalfEven(a * 2 ** (mant - eMin));
    return sign | m;
  }
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  a = a / 2 ** e - 1;
  let m = roundHalfEven(a * scale);
  if (m === scale) {
    m = 0;
    e++;
  }
  if (e > eMax) return inf;
  return sign | ((e - eMin + 1) << mant) | m;
}

function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** IEEE half-precision bits of `x`, rounded to nearest even. */
export function f16Bits(x: number): number {
  if (typeof x !== 'number') throw new Error(`f16Bits: expected a number, got ${show(x)}`);
  return roundToBits(x, 10, -14, 15, 5);
}

/** bfloat16 bits of `x`, rounded to nearest even. */
export function bf16Bits(x: number): number {
  if (typeof x !== 'number') throw new Error(`bf16Bits: expected a number, got ${show(x)}`);
  return roundToBits(x, 7, -126, 127, 8);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** The number that IEEE half-precision `bits` (an integer in [0, 65535]) encode. */
export function f16Value(bits: number): number {
  return halfValue(checkNumber('f16Value', 'bits', bits, { integer: true, min: 0, max: 0xffff }));
}

function halfValue(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** The number that bfloat16 `bits` (an integer in [0, 65535]) encode. */
export function bf16Value(bits: number): number {
  return bfloatValue(checkNumber('bf16Value', 'bits', bits, { integer: true, min: 0, max: 0xffff }));
}

function bfloatValue(bits: number): number {
  u32Scratch[0] = bits << 16;
  return f32Scratch[0]!;
}

/** Encode numbers into the storage array of `dtype` (rounding, wrapping or truncating as the type does). */
export function encode(values: ArrayLike<number>, dtype: DType): StorageArray {
  const n = values.length;
  const out = storageArray(dtype, n);
  if (dtype === 'f16') for (let i = 0; i < n; i++) out[i] = f16Bits(values[i]!);
  else if (dtype === 'bf16') for (let i = 0; i < n; i++) out[i] = bf16Bits(values[i]!);
  else if (dtype === 'bool') for (let i = 0; i < n; i++) out[i] = values[i] !== 0 ? 1 : 0; // NaN is true
  else if (dtype === 'i32') for (let i = 0; i < n; i++) out[i] = Math.trunc(values[i]!);
  else (out as Float32Array | Float64Array).set(values);
  return out;
}

/** Decode a storage array into readable values: halves widen to Float32Array. */
export function decode(raw: StorageArray, dtype: DType): DataArray {
  if (dtype === 'f16' || dtype === 'bf16') {
    const out = new Float32Array(raw.length);
    const f = dtype === 'f16' ? halfValue : bfloatValue;
    for (let i = 0; i < raw.length; i++) out[i] = f(raw[i]!);
    return out;
  }
  return raw as DataArray;
}
