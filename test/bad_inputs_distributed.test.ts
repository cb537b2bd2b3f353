/** The generated bad-input suite over the distributed exports (parallel layers, ZeRO, the cost model) (see test/bad_inputs/sweep.ts). */
import * as kiln from '../src/index.js';
import { runTable } from './bad_inputs/sweep.js';
import { DISTRIBUTED_TABLE } from './bad_inputs/distributed.js';

runTable('distributed', DISTRIBUTED_TABLE, kiln as unknown as Record<string, unknown>);
