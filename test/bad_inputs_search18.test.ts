/** The generated bad-input suite over issue 18's search additions: `pbt` and search's pruners (see test/bad_inputs/sweep.ts). */
import * as kiln from '../src/index.js';
import { pbt } from '../src/train/pbt.js';
import { runTable } from './bad_inputs/sweep.js';
import { SEARCH18_TABLE } from './bad_inputs/search18.js';

runTable('search18', SEARCH18_TABLE, { ...(kiln as unknown as Record<string, unknown>), pbt });
