/**
 * Every fuzz module, by parser family, loaded on demand (a child process of the runner loads
 * only the one it runs).
 * @module
 */
import type { Fuzzer } from './common.js';

export const PARSERS = {
  safetensors: () => import('./safetensors.fuzz.js'),
  checkpoint: () => import('./checkpoint.fuzz.js'),
  tokenizer: () => import('./tokenizer.fuzz.js'),
  gpt2files: () => import('./gpt2files.fuzz.js'),
  hf_gpt2: () => import('./hf_gpt2.fuzz.js'),
} satisfies Record<string, () => Promise<{ fuzzers: Fuzzer<unknown>[] }>>;

export type ParserName = keyof typeof PARSERS;

/** The fuzzers of `parser`. */
export async function fuzzersOf(parser: ParserName): Promise<Fuzzer<unknown>[]> {
  return (await PARSERS[parser]()).fuzzers;
}
