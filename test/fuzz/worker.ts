/**
 * One fuzzer in a child process of `run.ts`: `tsx worker.ts <parser> <index> <runs> <seed>
 * <progress file> <result file>`. Before each case it writes the case count (u32, at offset 0)
 * to the progress file with a synchronous write, so the runner sees where a hang or a crash
 * happened even when this process never returns to its event loop; at the end it writes the
 * result as JSON.
 * @module
 */
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import fc from 'fast-check';
import { propertyOf } from './common.js';
import { fuzzersOf, type ParserName } from './index.js';

const [parser, index, runs, seed, progressFile, resultFile] = process.argv.slice(2) as [ParserName, string, string, string, string, string];
const fuzzer = (await fuzzersOf(parser))[Number(index)]!;
const fd = openSync(progressFile, 'w');
const counter = new Uint32Array(1);
const property = propertyOf(fuzzer, () => {
  counter[0]!++;
  writeSync(fd, counter, 0, 4, 0);
});
const start = performance.now();
const details = await fc.check(property, { numRuns: Number(runs), seed: Number(seed) });
const ms = performance.now() - start;
closeSync(fd);
const report = details.failed
  ? `${(await fc.asyncDefaultReportMessage(details)) ?? 'failed'}\nerror: ${details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)}`
  : null;
writeFileSync(resultFile, JSON.stringify({ runs: details.numRuns, failed: details.failed, ms, report }));
process.exit(0);
