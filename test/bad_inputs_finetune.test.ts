/** The generated bad-input suite over fine-tuning and alignment (see test/bad_inputs/sweep.ts). */
import * as kiln from '../src/index.js';
import { runTable } from './bad_inputs/sweep.js';
import { FINETUNE_TABLE } from './bad_inputs/finetune.js';

runTable('finetune', FINETUNE_TABLE, kiln as unknown as Record<string, unknown>);
