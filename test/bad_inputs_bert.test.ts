/** The generated bad-input suite over the BERT exports (see test/bad_inputs/sweep.ts and bad_inputs/bert.ts). */
import * as mlm from '../src/data/mlm.js';
import * as bert from '../src/nn/bert.js';
import { runTable } from './bad_inputs/sweep.js';
import { BERT_TABLE } from './bad_inputs/bert.js';

// the BERT exports by name, as kiln will export them (src/index.ts), with their methods reached through the classes
runTable('bert', BERT_TABLE, { ...bert, ...mlm } as unknown as Record<string, unknown>);
