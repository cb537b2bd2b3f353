/**
 * Validation of numeric arguments and options, the one helper every op, optimizer, scheduler and
 * metric uses: a value is checked for its type, finiteness, integrality and range, and a bad one
 * is an Error that starts with the public name and says what was expected and what came.
 *
 * @example
 * checkNumber('dropout', 'p', p, { min: 0, max: 1 });          // "dropout: p must be a number in [0, 1], got 1.5"
 * checkNumber('randint', 'low', low, { integer: true });         // "randint: low must be an integer, got 0.5"
 * checkNumber('SGD', 'lr', lr, { min: 0 });                      // "SGD: lr must be a number ≥ 0, got -1"
 * @module
 */

/** What a numeric argument must be. Finite unless `infinity` allows ±∞ (NaN never passes). */
export interface NumberSpec {
  /** A whole number (and a safe integer). */
  integer?: boolean;
  /** Lower bound (inclusive unless `minExclusive`). */
  min?: number;
  minExclusive?: boolean;
  /** Upper bound (inclusive unless `maxExclusive`). */
  max?: number;
  maxExclusive?: boolean;
  /** Let +∞ through (a norm order, a patience). */
  infinity?: boolean;
}

/** How a spec reads in an error: "an integer ≥ 1", "a number in [0, 1)". */
export function describeSpec(spec: NumberSpec): string {
  const kind = spec.integer ? 'an integer' : 'a number';
  const { min, max } = spec;
  if (min !== undefined && max !== undefined) return `${kind} in ${spec.minExclusive ? '(' : '['}${min}, ${max}${spec.maxExclusive ? ')' : ']'}`;
  if (min !== undefined) return `${kind} ${spec.minExclusive ? '>' : '≥'} ${min}${spec.infinity ? ' (or Infinity)' : ''}`;
  if (max !== undefined) return `${kind} ${spec.maxExclusive ? '<' : '≤'} ${max}`;
  return spec.infinity ? `${kind} (or ±Infinity)` : `a finite ${spec.integer ? 'integer' : 'number'}`;
}

/** How a bad value reads in an error: numbers as written, strings quoted, objects by kind. */
export function show(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'function') return 'a function';
  if (value === null || value === undefined || typeof value !== 'object') return String(value);
  if (Array.isArray(value)) {
    const inner = value.length <= 8 && value.every((v) => v === null || typeof v !== 'object') ? value.map((v) => (typeof v === 'string' ? `'${v}'` : String(v))).join(',') : null;
    return inner === null ? `an array of length ${value.length}` : `[${inner}]`;
  }
  const name = (value as object).constructor?.name;
  return name && name !== 'Object' ? `a ${name}` : 'an object';
}

/** Whether `value` meets `spec`. */
export function meets(value: unknown, spec: NumberSpec): value is number {
  if (typeof value !== 'number' || Number.isNaN(value)) return false;
  if (!Number.isFinite(value) && !(spec.infinity && value === Infinity)) return false;
  if (spec.integer && Number.isFinite(value) && !Number.isSafeInteger(value)) return false;
  if (spec.min !== undefined && (spec.minExclusive ? !(value > spec.min) : !(value >= spec.min))) return false;
  if (spec.max !== undefined && (spec.maxExclusive ? !(value < spec.max) : !(value <= spec.max))) return false;
  return true;
}

/** `value` when it meets `spec`; else throws `op: name must be <spec>, got <value>`. */
export function checkNumber(op: string, name: string, value: unknown, spec: NumberSpec = {}): number {
  if (!meets(value, spec)) throw new Error(`${op}: ${name} must be ${describeSpec(spec)}, got ${show(value)}`);
  return value;
}

/** {@link checkNumber} for an optional value: `fallback` when undefined. */
export function optionalNumber(op: string, name: string, value: unknown, fallback: number, spec: NumberSpec = {}): number {
  return value === undefined ? fallback : checkNumber(op, name, value, spec);
}

/** `value` when it is a boolean; else throws `op: name must be true or false, got <value>`. */
export function checkBoolean(op: string, name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new Error(`${op}: ${name} must be true or false, got ${show(value)}`);
  return value;
}

/** `value` when it is one of `choices`; else throws naming them. */
export function checkChoice<T extends string>(op: string, name: string, value: unknown, choices: readonly T[]): T {
  if (!choices.includes(value as T)) throw new Error(`${op}: ${name} must be one of ${choices.map((c) => `'${c}'`).join(', ')}, got ${show(value)}`);
  return value as T;
}

/** Throws `op: unknown option 'x'` for keys of `opts` not in `known` (a misspelt option is an error, not ignored). */
export function checkKeys(op: string, opts: unknown, known: readonly string[]): void {
  if (opts === undefined || opts === null) return;
  if (typeof opts !== 'object' || Array.isArray(opts)) throw new Error(`${op}: options must be an object, got ${show(opts)}`);
  for (const k of Object.keys(opts)) if (!known.includes(k)) throw new Error(`${op}: unknown option '${k}' (options: ${known.join(', ')})`);
}
