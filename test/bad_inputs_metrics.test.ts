/** The generated bad-input suite over the metrics exports (see test/bad_inputs/sweep.ts). */
import * as kiln from '../src/index.js';
import { runTable } from './bad_inputs/sweep.js';
import { METRICS_TABLE } from './bad_inputs/metrics.js';

runTable('metrics', METRICS_TABLE, kiln as unknown as Record<string, unknown>);
