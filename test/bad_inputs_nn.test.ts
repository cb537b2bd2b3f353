/** The generated bad-input suite over the nn exports (see test/bad_inputs/sweep.ts). */
import * as kiln from '../src/index.js';
import { runTable } from './bad_inputs/sweep.js';
import { NN_TABLE } from './bad_inputs/nn.js';

runTable('nn', NN_TABLE, kiln as unknown as Record<string, unknown>);
