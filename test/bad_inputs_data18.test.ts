/** The generated bad-input suite over issue 18's augmentation, curriculum and adversarial additions (see test/bad_inputs/sweep.ts). */
import * as augment from '../src/data/augment.js';
import * as curriculum from '../src/data/curriculum.js';
import * as adversarial from '../src/train/adversarial.js';
import { runTable } from './bad_inputs/sweep.js';
import { DATA18_TABLE } from './bad_inputs/data18.js';

runTable('data18', DATA18_TABLE, { ...augment, ...curriculum, ...adversarial } as unknown as Record<string, unknown>);
