/**
 * The short CI pass of the parser fuzzers (`test/fuzz/*.fuzz.ts`): every fuzzer for
 * `KILN_FUZZ_RUNS` cases (default 200) in this process. `npm run fuzz` runs the same ones for
 * 10,000 cases each, in child processes that catch hangs and crashes; a failure here prints
 * fast-check's seed and path, which `npm run fuzz -- --seed N` reproduces.
 */
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { propertyOf } from './fuzz/common.js';
import { PARSERS, fuzzersOf, type ParserName } from './fuzz/index.js';

const RUNS = Number(process.env.KILN_FUZZ_RUNS ?? 200);
const SEED = process.env.KILN_FUZZ_SEED === undefined ? {} : { seed: Number(process.env.KILN_FUZZ_SEED) };

for (const parser of Object.keys(PARSERS) as ParserName[]) {
  const fuzzers = await fuzzersOf(parser);
  describe(`fuzz: ${parser}`, () => {
    for (const f of fuzzers)
      it(f.name, async () => {
        await fc.assert(propertyOf(f), { numRuns: RUNS, ...SEED });
      });
  });
}
