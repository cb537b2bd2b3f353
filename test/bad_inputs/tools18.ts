/**
 * Bad-input table (see sweep.ts): the token audit, the energy meter, the evaluation report and
 * the labelling server of issue 18.
 */
import { GPT, Generator } from '../../src/index.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnergyMeter } from '../../src/train/energy.js';
import { startLabelServer } from '../../src/cli/label.js';
import { choice, instance, int, num, opts, str, type Bad, type Param, type Table } from './sweep.js';

const bad = (value: unknown, needle: string | string[]): Bad => ({ value, needle });
const V = 8;
const names = { vocabSize: V, decode: (ids: ArrayLike<number>): string => Array.from(ids, String).join(' ') };
const gpt = (): GPT => new GPT({ vocabSize: V, blockSize: 4, nLayer: 1, nHead: 1, nEmbd: 4 }, { generator: new Generator(1) });
const counts: Param = { kind: 'counts', good: () => new Array(V).fill(1), refuse: [bad(5, '5'), bad('xyzzy', 'xyzzy'), bad([1, 2], '2 entries'), bad([...new Array(V - 1).fill(1), -1], '-1'), bad([...new Array(V - 1).fill(1), NaN], 'NaN')] };
const ids: Param = { kind: 'ids', good: () => [0, 1, 3], refuse: [bad(5, '5'), bad('xyzzy', 'xyzzy'), bad(null, 'null'), bad([1.5], '1.5'), bad([-1], '-1'), bad([4], '4')] };
const report = (): Record<string, unknown> => ({ title: 't', train: [{ step: 1, loss: 2 }], val: [], tables: [], samples: [] });
const reportData: Param = {
  kind: 'report data',
  good: report,
  refuse: [bad(5, '5'), bad(null, 'null'), bad('xyzzy', 'xyzzy'), bad({ ...report(), title: 5 }, 'title'), bad({ ...report(), train: null }, 'train'), bad({ ...report(), samples: {} }, 'samples')],
};
const energyReport = (): unknown => new EnergyMeter({ powercapRoot: join(tmpdir(), 'no-powercap'), nvidiaSmi: null }).start().stop();
const out = (): string => join(tmpdir(), `kiln-tools18-${process.pid}.jsonl`);
const labelOpts: Param = {
  kind: 'label options',
  good: () => ({ items: [{ prompt: 'p', a: 'x', b: 'y' }], out: out() }),
  refuse: [
    bad(5, '5'),
    bad({ items: [], out: out() }, 'empty array'),
    bad({ items: [{ prompt: 'p', a: 5, b: 'y' }], out: out() }, 'items[0].a'),
    bad({ items: [{ prompt: 'p', a: 'x', b: 'y' }], out: '' }, 'out'),
    bad({ items: [{ prompt: 'p', a: 'x', b: 'y' }], out: out(), port: 70000 }, '70000'),
    bad({ items: [{ prompt: 'p', a: 'x', b: 'y' }], out: out(), bogusOption: 1 }, 'bogusOption'),
  ],
};

export const TOOLS18_TABLE: Table = {
  auditTokens: [
    {
      params: [instance('GPT', gpt), instance('tokenizer', () => names), opts({ counts, matrix: choice(['unembedding', 'embedding']), zThreshold: num({ min: 0, optional: true }), rareCount: int({ min: 0, optional: true }) })],
    },
  ],
  tokenCounts: { params: [ids, int({ min: 1, max: 2 ** 31 - 1, good: 4 })] },
  escapeToken: { params: [str(() => ' the\n')] },
  EnergyMeter: {
    params: [opts({ wattsPerCore: num({ min: 0, optional: true }), gridIntensity: num({ min: 0, optional: true }), sampleMs: int({ min: 10, max: 3_600_000, optional: true }), powercapRoot: str(() => '/x', { optional: true }) })],
    call: (o) => new EnergyMeter(o),
  },
  formatEnergy: { params: [{ kind: 'energy report', good: energyReport, refuse: [bad(5, '5'), bad(null, 'null'), bad({}, 'object'), bad('xyzzy', 'xyzzy')] }] },
  evalReport: { params: [reportData] },
  startLabelServer: {
    params: [labelOpts],
    call: async (o) => {
      const s = await startLabelServer(o);
      await s.close();
    },
  },
};
