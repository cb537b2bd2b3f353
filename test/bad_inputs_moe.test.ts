/** The generated bad-input suite over the mixture-of-experts layer (see test/bad_inputs/sweep.ts). */
import * as kiln from '../src/index.js';
import { MoE } from '../src/nn/moe.js';
import { runTable } from './bad_inputs/sweep.js';
import { MOE_TABLE } from './bad_inputs/moe.js';

runTable('moe', MOE_TABLE, { ...(kiln as unknown as Record<string, unknown>), MoE });
