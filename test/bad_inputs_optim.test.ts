/** The generated bad-input suite over the optim exports (see test/bad_inputs/sweep.ts). */
import * as kiln from '../src/index.js';
import { runTable } from './bad_inputs/sweep.js';
import { OPTIM_TABLE } from './bad_inputs/optim.js';

runTable('optim', OPTIM_TABLE, kiln as unknown as Record<string, unknown>);
