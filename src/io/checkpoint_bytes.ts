/**
 * The bytes of a training checkpoint, browser-safe: exactly the file `saveCheckpoint` writes
 * (same tensor names, `kiln.checkpoint` metadata and `kiln.crc32` checksum), so a page can hand a
 * user a `.safetensors` file that `loadCheckpoint` and `kiln sample --ckpt` read. The layout is
 * described in `./checkpoint.ts`; that module adds the file path and the atomic write.
 * @module
 */
import type { Tensor } from '../tensor/tensor.js';
import type { OptimizerStateDict } from '../optim/optimizer.js';
import { checkKeys, show } from '../tensor/validate.js';
import { encodeRaw, parseHeader, readRaw } from './safetensors.js';

/** What {@link checkpointBytes} encodes: the contents `saveCheckpoint` takes. */
export interface CheckpointBytesContents {
  model: { stateDict(): Record<string, Tensor> };
  optimizer?: { stateDict(): OptimizerStateDict };
  scheduler?: { stateDict(): unknown };
  generator?: { getState(): unknown };
  /** The training step the checkpoint was taken at. */
  step: number;
  /** Anything else to keep, as JSON. */
  extra?: unknown;
}

const META_KEY = 'kiln.checkpoint';
const CRC_KEY = 'kiln.crc32';
const CRC_PLACEHOLDER = '00000000';

/**
 * The checkpoint of `c` as safetensors bytes (version 2: the checksum covers the JSON metadata
 * and the data), waiting for pending device work on the tensors. `saveCheckpoint(path, c)`
 * writes these same bytes.
 *
 * @example
 * const bytes = await checkpointBytes({ model, step: 100, extra: { note: 'from the browser' } });
 * const url = URL.createObjectURL(new Blob([bytes]));
 */
export async function checkpointBytes(c: CheckpointBytesContents): Promise<Uint8Array> {
  return encodeCheckpoint('checkpointBytes', c);
}

/** @internal {@link checkpointBytes} for the public function `op` (saveCheckpoint writes these bytes). */
export async function encodeCheckpoint(op: string, c: CheckpointBytesContents): Promise<Uint8Array> {
  if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new Error(`${op}: expected { model, step, ... }, got ${show(c)}`);
  checkKeys(op, c, ['model', 'optimizer', 'scheduler', 'generator', 'step', 'extra']);
  if (typeof c.model?.stateDict !== 'function') throw new Error(`${op}: expected { model, step, ... } with a model that has stateDict(), got model ${show(c.model)}`);
  for (const [name, method] of [['optimizer', 'stateDict'], ['scheduler', 'stateDict'], ['generator', 'getState']] as const) {
    const v = (c as unknown as Record<string, unknown>)[name];
    if (v !== undefined && v !== null && (typeof v !== 'object' || typeof (v as Record<string, unknown>)[method] !== 'function'))
      throw new Error(`${op}: ${name} must be an object with ${method}(), got ${show(v)}`);
  }
  if (typeof c.step !== 'number' || !Number.isSafeInteger(c.step) || c.step < 0) throw new Error(`${op}: step must be a non-negative integer, got ${show(c.step)}`);
  const tensors: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(c.model.stateDict())) tensors[`model.${name}`] = t;
  let optimizer: { optimizer: string; paramGroups: unknown; state: Record<string, { step: number; tensors: string[] }> } | null = null;
  if (c.optimizer) {
    const sd = c.optimizer.stateDict();
    const state: Record<string, { step: number; tensors: string[] }> = {};
    for (const [id, st] of Object.entries(sd.state)) {
      state[id] = { step: st.step, tensors: Object.keys(st.tensors) };
      for (const [key, t] of Object.entries(st.tensors)) tensors[`optimizer.${id}.${key}`] = t;
    }
    optimizer = { optimizer: sd.optimizer, paramGroups: sd.paramGroups, state };
  }
  const raw = await readRaw(op, tensors);
  // the key order is the format's: loadCheckpoint's checksum covers this exact JSON text
  const info = {
    version: 2,
    step: c.step,
    extra: c.extra ?? null,
    generator: c.generator ? c.generator.getState() : null,
    scheduler: c.scheduler ? c.scheduler.stateDict() : null,
    optimizer,
  };
  let json: string;
  try {
    json = JSON.stringify(info);
  } catch (e) {
    throw new Error(`${op}: extra, scheduler or generator state is not JSON-serialisable (${(e as Error).message})`);
  }
  // the checksum key comes first in the header, so its placeholder is patched in place
  const bytes = encodeRaw(raw, { [CRC_KEY]: CRC_PLACEHOLDER, [META_KEY]: json });
  const header = parseHeader(bytes);
  const at = indexOf(bytes.subarray(0, header.dataStart), new TextEncoder().encode(`"${CRC_KEY}":"${CRC_PLACEHOLDER}"`));
  if (at < 0) throw new Error(`${op}: internal error, checksum placeholder not found`);
  bytes.set(new TextEncoder().encode(hex(checksum(json, bytes.subarray(header.dataStart)))), at + CRC_KEY.length + 4);
  return bytes;
}

// ---- CRC-32 (IEEE 802.3, as zlib) --------------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crcUpdate(crc: number, bytes: Uint8Array): number {
  let c = crc;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return c;
}

/** CRC-32 of `bytes` (the checksum zlib and gzip use). */
export function crc32(bytes: Uint8Array): number {
  if (!(bytes instanceof Uint8Array)) throw new Error(`crc32: bytes must be a Uint8Array, got ${show(bytes)}`);
  return (crcUpdate(0xffffffff, bytes) ^ 0xffffffff) >>> 0;
}

/** @internal CRC-32 of a checkpoint's JSON metadata (UTF-8) followed by its data buffer. */
export function checksum(json: string, data: Uint8Array): number {
  return (crcUpdate(crcUpdate(0xffffffff, new TextEncoder().encode(json)), data) ^ 0xffffffff) >>> 0;
}

/** @internal A checksum as the file keeps it: 8 hex digits. */
export const hex = (n: number): string => n.toString(16).padStart(8, '0');

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
