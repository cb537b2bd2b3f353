/**
 * How errors quote a value read from a file a user got from elsewhere (a safetensors header,
 * a checkpoint's metadata, a tokenizer or config JSON): `JSON.stringify` would throw a
 * RangeError on nesting deeper than the stack and would copy a huge array whole into the
 * message; {@link describeJSON} does neither.
 * @module
 */

/** Nesting shown before `[…]` / `{…}`. */
const DEPTH = 3;

/**
 * `v` as JSON for an error message: the same text as `JSON.stringify` for small values, with
 * nesting past three levels written `[…]` or `{…}` and anything past `max` characters cut
 * with `…`. Never throws.
 *
 * @example
 * describeJSON([2, 3]); // '[2,3]'
 * describeJSON(JSON.parse('[[[[[1]]]]]')); // '[[[[…]]]]'
 */
export function describeJSON(v: unknown, max = 80): string {
  let out = '';
  // false once `out` is past `max`: the caller stops
  const write = (x: unknown, depth: number): boolean => {
    if (Array.isArray(x)) {
      if (depth >= DEPTH) out += x.length === 0 ? '[]' : '[…]';
      else {
        out += '[';
        for (let i = 0; i < x.length; i++) {
          if (i > 0) out += ',';
          if (!write(x[i], depth + 1)) return false;
        }
        out += ']';
      }
    } else if (x !== null && typeof x === 'object') {
      const keys = Object.keys(x);
      if (depth >= DEPTH) out += keys.length === 0 ? '{}' : '{…}';
      else {
        out += '{';
        for (let i = 0; i < keys.length; i++) {
          if (i > 0) out += ',';
          out += `${JSON.stringify(keys[i])}:`;
          if (!write((x as Record<string, unknown>)[keys[i]!], depth + 1)) return false;
        }
        out += '}';
      }
    } else out += typeof x === 'string' ? JSON.stringify(x) : String(x);
    return out.length <= max;
  };
  write(v, 0);
  return out.length > max ? `${out.slice(0, max)}…` : out;
}
