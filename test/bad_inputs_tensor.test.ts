/** The generated bad-input suite over the tensor API (see test/bad_inputs/sweep.ts). */
import { runTable } from './bad_inputs/sweep.js';
import { TENSOR_EXPORTS, TENSOR_TABLE } from './bad_inputs/tensor.js';

runTable('tensor ops', TENSOR_TABLE, TENSOR_EXPORTS);
