/** The generated bad-input suite over continual learning and federated averaging (see test/bad_inputs/sweep.ts). */
import * as continual from '../src/train/continual.js';
import * as federated from '../src/train/federated.js';
import { runTable } from './bad_inputs/sweep.js';
import { LEARN18_TABLE } from './bad_inputs/learn18.js';

runTable('continual and federated learning', LEARN18_TABLE, { ...(continual as unknown as Record<string, unknown>), ...(federated as unknown as Record<string, unknown>) });
