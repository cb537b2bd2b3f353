/**
 * The bad-input suite covers the whole public API: every function and class that `kiln` exports
 * has an entry in one table (specs that the sweep calls, or an exemption that says why not), and
 * no table names something kiln does not export.
 */
import { expect, it } from 'vitest';
import * as kiln from '../src/index.js';
import { TABLES } from './bad_inputs/tables.js';
import { specsOf } from './bad_inputs/sweep.js';
import { TENSOR_NO_ARGS } from './bad_inputs/tensor.js';

const exported = Object.entries(kiln as Record<string, unknown>)
  .filter(([, v]) => typeof v === 'function')
  .map(([name]) => name)
  .sort();

it('every exported function and class has a bad-input table entry', () => {
  const where = new Map<string, string[]>();
  for (const [module, table] of Object.entries(TABLES)) for (const name of Object.keys(table)) where.set(name, [...(where.get(name) ?? []), module]);
  const missing = exported.filter((n) => !where.has(n));
  const twice = [...where].filter(([, ms]) => ms.length > 1).map(([n, ms]) => `${n} (${ms.join(', ')})`);
  const unknown = [...where.keys()].filter((n) => !(n in kiln) && !n.includes('.'));
  expect({ missing, twice, unknown }).toEqual({ missing: [], twice: [], unknown: [] });
});

it('every public Tensor method is swept or takes no arguments', () => {
  const proto = kiln.Tensor.prototype as unknown as Record<string, unknown>;
  const methods = Object.getOwnPropertyNames(proto).filter((m) => m !== 'constructor' && !m.startsWith('_') && typeof Object.getOwnPropertyDescriptor(proto, m)?.value === 'function');
  const missing = methods.filter((m) => !(`Tensor.${m}` in TABLES.tensor!) && !TENSOR_NO_ARGS.includes(m));
  expect(missing).toEqual([]);
});

it('most exports are swept, not exempt', () => {
  const entries = Object.values(TABLES).flatMap((t) => Object.values(t));
  const swept = entries.filter((e) => specsOf(e).length > 0).length;
  console.log(`[bad inputs] ${swept} of ${entries.length} table entries are swept (${exported.length} exported functions and classes)`);
  expect(swept / entries.length).toBeGreaterThan(0.8);
});
