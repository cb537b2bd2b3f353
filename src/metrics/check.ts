/**
 * Argument checks shared by the metrics: strings, lists of strings, reference lists, option
 * bags. Every error starts with the public name (`corpusBleu: `) and shows the bad value as
 * `show` writes it (src/tensor/validate.ts), so the messages read like the rest of kiln's.
 * @module
 */
import { Tensor } from '../tensor/tensor.js';
import { checkKeys, show } from '../tensor/validate.js';

/** `value` when it is a string; else throws `op: name must be a string, got <value>`. */
export function checkString(op: string, name: string, value: unknown): string {
  if (typeof value !== 'string') throw new Error(`${op}: ${name} must be a string, got ${show(value)}`);
  return value;
}

/** `value` when it is an array of strings (`name[i]` names a bad element). */
export function checkStrings(op: string, name: string, value: unknown): readonly string[] {
  if (!Array.isArray(value)) throw new Error(`${op}: ${name} must be an array of strings, got ${show(value)}`);
  value.forEach((v, i) => checkString(op, `${name}[${i}]`, v));
  return value as readonly string[];
}

/**
 * One segment's references: a string, or a non-empty array of strings; returned as a list.
 * `name` is how the message names the argument (`references[3]`).
 */
export function checkReferences(op: string, name: string, value: unknown): readonly string[] {
  if (typeof value === 'string') return [value];
  if (!Array.isArray(value) || value.length === 0)
    throw new Error(`${op}: ${name} must be a string or a non-empty array of strings, got ${show(value)}`);
  value.forEach((v, i) => checkString(op, `${name}[${i}]`, v));
  return value as readonly string[];
}

/**
 * A corpus: `predictions` an array of strings and `references` an array of the same length,
 * each entry a string or a non-empty array of strings. Returns the references as lists.
 */
export function checkCorpus(
  op: string,
  predictions: unknown,
  references: unknown,
  names: { predictions: string; references: string; referencesNoun?: string },
): { predictions: readonly string[]; references: (readonly string[])[] } {
  const preds = checkStrings(op, names.predictions, predictions);
  if (!Array.isArray(references)) throw new Error(`${op}: ${names.references} must be an array, got ${show(references)}`);
  if (preds.length !== references.length)
    throw new Error(`${op}: ${preds.length} ${names.predictions} but ${references.length} ${names.referencesNoun ?? names.references}`);
  return { predictions: preds, references: references.map((r, i) => checkReferences(op, `${names.references}[${i}]`, r)) };
}

/** An options bag: undefined or null (the defaults) or a plain object with only the `known` keys. */
export function checkOptions<T extends object>(op: string, opts: T | undefined | null, known: readonly string[]): T {
  if (opts === undefined || opts === null) return {} as T;
  if (typeof opts !== 'object' || Array.isArray(opts) || opts instanceof Tensor)
    throw new Error(`${op}: options must be an object, got ${show(opts)}`);
  checkKeys(op, opts, known);
  return opts;
}

/** An optional boolean option: `fallback` when undefined. */
export function optionalBoolean(op: string, name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new Error(`${op}: ${name} must be true or false, got ${show(value)}`);
  return value;
}

/** An optional function option. */
export function optionalFunction<F extends (...args: never[]) => unknown>(op: string, name: string, value: unknown): F | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') throw new Error(`${op}: ${name} must be a function, got ${show(value)}`);
  return value as F;
}

