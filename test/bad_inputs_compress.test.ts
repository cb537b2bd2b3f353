/** The generated bad-input suite over pruning, the EMA of weights, checkpoint averaging and ensembles (see test/bad_inputs/sweep.ts). */
import * as kiln from '../src/index.js';
import * as prune from '../src/nn/prune.js';
import * as ema from '../src/train/ema.js';
import * as average from '../src/train/average.js';
import * as ensemble from '../src/metrics/ensemble.js';
import { runTable } from './bad_inputs/sweep.js';
import { COMPRESS_TABLE } from './bad_inputs/compress.js';

// the compression exports by name, until the entry points re-export them (then `kiln` alone serves)
runTable('compress', COMPRESS_TABLE, { ...(kiln as unknown as Record<string, unknown>), ...prune, ...ema, ...average, ...ensemble });
