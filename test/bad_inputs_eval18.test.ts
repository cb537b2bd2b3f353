/** The generated bad-input suite over issue 18's evaluation additions (see test/bad_inputs/sweep.ts). */
import * as kiln from '../src/index.js';
import * as meteor from '../src/metrics/meteor.js';
import * as fairness from '../src/metrics/fairness.js';
import * as kfold from '../src/train/kfold.js';
import { runTable } from './bad_inputs/sweep.js';
import { EVAL18_TABLE } from './bad_inputs/eval18.js';

runTable('eval18', EVAL18_TABLE, { ...(kiln as unknown as Record<string, unknown>), ...meteor, ...fairness, ...kfold });
