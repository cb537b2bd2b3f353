/** Bad-input table: the io exports (see sweep.ts). */
import type { Table } from './sweep.js';

export const IO_TABLE: Table = {};
