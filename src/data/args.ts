/**
 * Argument checks the data functions share: an Error that starts with the public name and names
 * the value it got, never a raw TypeError from inside (or a number taken as a file descriptor).
 * @module
 */
import { checkKeys, show } from '../tensor/validate.js';

/** How a wrong argument reads: `number 3`, `string 'abc'`, `null`, `an object`, `[1,2]`. */
export function got(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'object' || typeof v === 'function') return show(v);
  return `${typeof v} ${show(v)}`;
}

/** @internal `text` when it is a string, else an Error naming `op` and what it got. */
export function textArg(op: string, text: unknown, name = 'text'): string {
  if (typeof text !== 'string') throw new Error(`${op}: ${name} must be a string, got ${got(text)}`);
  return text;
}

/** @internal `ids` when it is an array or typed array, else an Error naming `op` and what it got. */
export function idsArg(op: string, ids: unknown): ArrayLike<number> {
  if (!Array.isArray(ids) && !(ArrayBuffer.isView(ids) && !(ids instanceof DataView)))
    throw new Error(`${op}: ids must be an array of token ids, got ${got(ids)}`);
  return ids as ArrayLike<number>;
}

/** @internal A file or folder path: a non-empty string (a number would be taken for a file descriptor by node:fs). */
export function pathArg(op: string, path: unknown, name = 'path'): string {
  if (typeof path !== 'string' || path === '') throw new Error(`${op}: ${name} must be a file path (a non-empty string), got ${got(path)}`);
  if (path.includes('\0')) throw new Error(`${op}: ${name} ${show(path.replace(/\0/g, '\\0'))} contains a NUL character`);
  return path;
}

/** @internal An options object (undefined and null mean none) with only the `known` keys; `{}` when absent. */
export function optionsArg<T extends object>(op: string, opts: unknown, known: readonly string[]): Partial<T> {
  checkKeys(op, opts, known);
  return (opts ?? {}) as Partial<T>;
}

/** @internal An array of strings (special tokens, extensions), else an Error naming the value. */
export function stringsArg(op: string, name: string, value: unknown): string[] {
  if (!Array.isArray(value)) throw new Error(`${op}: ${name} must be an array of strings, got ${got(value)}`);
  value.forEach((v, i) => {
    if (typeof v !== 'string') throw new Error(`${op}: ${name}[${i}] must be a string, got ${got(v)}`);
  });
  return value as string[];
}

/** @internal A string option (undefined: absent). */
export function optionalString(op: string, name: string, value: unknown): string | undefined {
  if (value !== undefined && typeof value !== 'string') throw new Error(`${op}: ${name} must be a string, got ${got(value)}`);
  return value;
}

/** @internal A function option (undefined: absent). */
export function optionalFunction<F>(op: string, name: string, value: unknown): F | undefined {
  if (value !== undefined && typeof value !== 'function') throw new Error(`${op}: ${name} must be a function, got ${got(value)}`);
  return value as F | undefined;
}

/** @internal An Error about reading `path` for `op`, keeping the system's reason (ENOENT, EISDIR…). */
export function readError(op: string, path: string, e: unknown): Error {
  return new Error(`${op}: cannot read '${path}': ${(e as Error)?.message ?? String(e)}`);
}
