/** Bad-input table: the data exports (see sweep.ts). */
import type { Table } from './sweep.js';

export const DATA_TABLE: Table = {};
