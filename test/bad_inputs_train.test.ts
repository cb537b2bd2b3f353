/** The generated bad-input suite over the train exports (see test/bad_inputs/sweep.ts). */
import * as kiln from '../src/index.js';
import { runTable } from './bad_inputs/sweep.js';
import { TRAIN_TABLE } from './bad_inputs/train.js';

runTable('train', TRAIN_TABLE, kiln as unknown as Record<string, unknown>);
