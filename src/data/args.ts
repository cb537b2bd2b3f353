/** Argument checks the tokenizers share: an Error naming the call, never a raw TypeError. @module */
/** @internal `text` when it is a string, else an Error naming `op` and what it got. */
export function textArg(op: string, text: unknown): string {
  if (typeof text !== 'string') throw new Error(`${op}: text must be a string, got ${text === null ? 'null' : Array.isArray(text) ? 'an array' : typeof text}`);
  return text;
}

/** @internal `ids` when it is an array or typed array, else an Error naming `op` and what it got. */
export function idsArg(op: string, ids: unknown): ArrayLike<number> {
  if (!Array.isArray(ids) && !(ArrayBuffer.isView(ids) && !(ids instanceof DataView)))
    throw new Error(`${op}: ids must be an array of token ids, got ${ids === null ? 'null' : typeof ids}`);
  return ids as ArrayLike<number>;
}
