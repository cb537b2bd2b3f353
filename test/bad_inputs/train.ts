/** Bad-input table: the train exports (see sweep.ts). */
import type { Table } from './sweep.js';

export const TRAIN_TABLE: Table = {};
