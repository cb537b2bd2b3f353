/** The generated bad-input suite over int8 quantization (see test/bad_inputs/sweep.ts). */
import * as kiln from '../src/index.js';
import { runTable } from './bad_inputs/sweep.js';
import { QUANTIZE_TABLE } from './bad_inputs/quantize.js';

runTable('quantize', QUANTIZE_TABLE, kiln as unknown as Record<string, unknown>);
