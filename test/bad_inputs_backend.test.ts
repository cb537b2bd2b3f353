/** The generated bad-input suite over the backend exports (see test/bad_inputs/sweep.ts). */
import * as kiln from '../src/index.js';
import { runTable } from './bad_inputs/sweep.js';
import { BACKEND_TABLE } from './bad_inputs/backend.js';

runTable('backend', BACKEND_TABLE, kiln as unknown as Record<string, unknown>);
