/** The generated bad-input suite over the io exports (see test/bad_inputs/sweep.ts). */
import * as kiln from '../src/index.js';
import { runTable } from './bad_inputs/sweep.js';
import { IO_TABLE } from './bad_inputs/io.js';

runTable('io', IO_TABLE, kiln as unknown as Record<string, unknown>);
