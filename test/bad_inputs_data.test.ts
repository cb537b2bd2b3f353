/** The generated bad-input suite over the data exports (see test/bad_inputs/sweep.ts). */
import * as kiln from '../src/index.js';
import { runTable } from './bad_inputs/sweep.js';
import { DATA_TABLE } from './bad_inputs/data.js';

runTable('data', DATA_TABLE, kiln as unknown as Record<string, unknown>);
