/** The generated bad-input suite over llm.c token files and the shard reader's additions (see test/bad_inputs/sweep.ts). */
import * as kiln from '../src/index.js';
import { runTable } from './bad_inputs/sweep.js';
import { TOKENS13_TABLE } from './bad_inputs/tokens13.js';

runTable('tokens13', TOKENS13_TABLE, kiln as unknown as Record<string, unknown>);
