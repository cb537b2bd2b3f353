/**
 * LSTM and GRU against PyTorch (test/fixtures/rnn.json, written by make_rnn_fixtures.py from
 * torch.nn.LSTM/GRU in f64): outputs, final states and the gradients of every input, initial
 * state and parameter, on stacked, bidirectional, bias-free and variable-length configurations;
 * a finite-difference check in f64; lengths as numbers and as a tensor agree; a character-level
 * LSTM language model learns; examples/char_lstm.ts beats the unigram baseline on held-out text.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { AdamW, GRU, LSTM, Generator, Linear, crossEntropy, noGrad, randint, stack, tensor, tidy, type Tensor } from '../src/index.js';
import { describeBackends, floatDtype, stores, values } from './harness.js';

interface Arr {
  shape: number[];
  data: number[];
  grad?: number[];
  probe?: number[];
}
interface Case {
  name: string;
  cell: 'LSTM' | 'GRU';
  input: number;
  hidden: number;
  layers: number;
  batch: number;
  steps: number;
  bidirectional: boolean;
  batch_first: boolean;
  bias: boolean;
  lengths: number[] | null;
  params: Record<string, { shape: number[]; data: number[] }>;
  grads: Record<string, number[]>;
  x: Arr;
  h0?: Arr;
  c0?: Arr;
  output: Arr;
  h: Arr;
  c?: Arr;
}

const fixtures = JSON.parse(readFileSync(new URL('./fixtures/rnn.json', import.meta.url), 'utf8')) as { torch: string; cases: Case[] };

function closeTo(got: ArrayLike<number>, want: readonly number[], rtol: number, atol: number, what: string): void {
  expect(got.length, what).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (atol + rtol * Math.abs(want[i]!)));
  expect(worst, `${what}: worst error ${worst.toFixed(3)} of the tolerance`).toBeLessThan(1);
}

describeBackends('recurrent layers', (backend) => {
  const dtype = floatDtype(backend);
  const [rtol, atol] = dtype === 'f64' ? [1e-9, 1e-11] : [2e-4, 2e-5];
  const place = { backend, dtype };
  const make = (c: Case): LSTM | GRU => {
    const opts = { numLayers: c.layers, bias: c.bias, batchFirst: c.batch_first, bidirectional: c.bidirectional, ...place };
    return c.cell === 'LSTM' ? new LSTM(c.input, c.hidden, opts) : new GRU(c.input, c.hidden, opts);
  };

  for (const c of fixtures.cases)
    it(`${c.name}: outputs, states and gradients equal PyTorch ${fixtures.torch}`, async () => {
      const m = make(c);
      const state: Record<string, Tensor> = {};
      for (const [name, p] of Object.entries(c.params)) state[name] = tensor(p.data, p.shape, place);
      const r = m.loadStateDict(state);
      expect([r.missingKeys, r.unexpectedKeys]).toEqual([[], []]);
      for (const t of Object.values(state)) t.dispose();
      const leaf = (a: Arr | undefined): Tensor | null => (a ? tensor(a.data, a.shape, { ...place, requiresGrad: true }) : null);
      const x = leaf(c.x)!;
      const h0 = leaf(c.h0);
      const c0 = leaf(c.c0);
      const opts = c.lengths ? { lengths: c.lengths } : undefined;
      const out = m instanceof LSTM ? m.forward(x, h0, c0, opts) : (m as GRU).forward(x, h0, opts);
      closeTo(await values(out.output), c.output.data, rtol, atol, 'output');
      expect(out.output.shape).toEqual(c.output.shape);
      closeTo(await values(out.h), c.h.data, rtol, atol, 'h');
      const cOut = 'c' in out ? (out as { c: Tensor }).c : null;
      if (c.c) closeTo(await values(cOut!), c.c.data, rtol, atol, 'c');
      tidy(() => {
        let loss = out.output.mul(tensor(c.output.probe!, c.output.shape, place)).sum().add(out.h.mul(tensor(c.h.probe!, c.h.shape, place)).sum());
        if (c.c) loss = loss.add(cOut!.mul(tensor(c.c.probe!, c.c.shape, place)).sum());
        loss.backward();
      });
      closeTo(await values(x.grad!), c.x.grad!, rtol, atol, 'x.grad');
      if (h0) closeTo(await values(h0.grad!), c.h0!.grad!, rtol, atol, 'h0.grad');
      if (c0) closeTo(await values(c0.grad!), c.c0!.grad!, rtol, atol, 'c0.grad');
      for (const [name, p] of m.namedParameters()) closeTo(await values(p.grad!), c.grads[name]!, rtol, atol, `${name}.grad`);
      m.dispose();
      for (const t of [x, h0, c0, out.output, out.h, cOut]) t?.dispose();
    });

  it.skipIf(!stores(backend, 'f64'))('a GRU with lengths: backward equals central differences in f64', async () => {
    const f64 = { backend, dtype: 'f64' as const };
    const gru = new GRU(3, 4, { numLayers: 2, bidirectional: true, batchFirst: true, generator: new Generator(3), ...f64 });
    const x = tensor(Array.from({ length: 2 * 5 * 3 }, (_, i) => Math.sin(i * 1.7)), [2, 5, 3], f64);
    const probe = tensor(Array.from({ length: 2 * 5 * 8 }, (_, i) => Math.cos(i * 0.9)), [2, 5, 8], f64);
    const lossAt = (): Tensor => gru.forward(x, null, { lengths: [5, 3] }).output.mul(probe).sum();
    tidy(() => lossAt().backward());
    const h = 1e-6;
    let checked = 0;
    for (const [name, p] of gru.namedParameters()) {
      const grad = await values(p.grad!);
      const data = Float64Array.from(await values(p));
      for (const i of [0, Math.floor(p.size / 2), p.size - 1]) {
        const set = (v: number): void => {
          data[i] = v;
          noGrad(() => tidy(() => p.copy_(tensor(data, p.shape as number[], f64))));
        };
        const at = async (v: number): Promise<number> => {
          set(v);
          const l = tidy(() => noGrad(lossAt));
          const value = await l.item();
          l.dispose();
          return value;
        };
        const x0 = data[i]!;
        const numeric = ((await at(x0 + h)) - (await at(x0 - h))) / (2 * h);
        set(x0);
        expect(Math.abs(numeric - grad[i]!), `${name}[${i}]: numeric ${numeric}, backward ${grad[i]}`).toBeLessThan(1e-7 + 1e-5 * Math.abs(numeric));
        checked++;
      }
    }
    expect(checked).toBe(3 * gru.namedParameters().length);
    gru.dispose();
  });

  it('lengths as an i32 tensor give what lengths as numbers give; steps past a length leave the state alone', async () => {
    const lstm = new LSTM(2, 3, { batchFirst: true, generator: new Generator(1), ...place });
    const x = tensor(Array.from({ length: 3 * 4 * 2 }, (_, i) => Math.sin(i)), [3, 4, 2], place);
    const a = lstm.forward(x, null, null, { lengths: [4, 2, 1] });
    const b = lstm.forward(x, null, null, { lengths: tensor([4, 2, 1], [3], { backend, dtype: 'i32' }) });
    expect(await values(b.output)).toEqual(await values(a.output));
    expect(await values(b.h)).toEqual(await values(a.h));
    // row 1 has length 2: its final state is the state after step 2 of the unmasked run on its first 2 steps
    const short = lstm.forward(x.narrow(0, 1, 1).narrow(1, 0, 2));
    closeTo(await values(a.h.narrow(1, 1, 1)), await values(short.h), 1e-6, 1e-7, 'h of the row of length 2');
    const out = await values(a.output.narrow(0, 1, 1).narrow(1, 2, 2));
    expect(out.every((v) => v === 0)).toBe(true);
    expect(() => lstm.forward(x, null, null, { lengths: [4, 5, 1] })).toThrow(/^LSTM\.forward: lengths\[1\] must be an integer in \[1, 4\], got 5/);
    expect(() => lstm.forward(x.narrow(2, 0, 1))).toThrow(/^LSTM\.forward: x must be \[B, T, inputSize\] with inputSize 2, got \[3,? ?4,? ?1\]/);
    lstm.dispose();
  });

  it('a character-level LSTM language model learns a repeating text', async () => {
    const text = 'to be or not to be, that is the question. '.repeat(8);
    const chars = [...new Set(text)];
    const ids = [...text].map((ch) => chars.indexOf(ch));
    const V = chars.length, T = 16, B = 8, H = 48;
    const gen = new Generator(5);
    const embed = new Linear(V, H, { generator: gen, ...place }); // one-hot inputs: a linear layer is an embedding
    const lstm = new LSTM(H, H, { batchFirst: true, generator: gen, ...place });
    const head = new Linear(H, V, { generator: gen, ...place });
    const params = [...embed.parameters(), ...lstm.parameters(), ...head.parameters()];
    const opt = new AdamW(params, { lr: 1e-2 });
    const tokens = tensor(ids, [ids.length], { backend, dtype: 'i32' });
    const eye = tensor(Array.from({ length: V * V }, (_, i) => (i % (V + 1) === 0 ? 1 : 0)), [V, V], place);
    const losses: number[] = [];
    for (let step = 0; step < 60; step++) {
      const loss = tidy(() => {
        const starts = randint(0, ids.length - T - 1, [B], { generator: gen, backend });
        const rows = stack(Array.from({ length: T + 1 }, (_, k) => starts.add(k)), 1); // [B, T + 1]
        const seq = tokens.indexSelect(0, rows.reshape([B * (T + 1)])).reshape([B, T + 1]);
        const input = eye.indexSelect(0, seq.narrow(1, 0, T).reshape([B * T])).reshape([B, T, V]);
        const logits = head.forward(lstm.forward(embed.forward(input)).output);
        const l = crossEntropy(logits.reshape([B * T, V]), seq.narrow(1, 1, T).reshape([B * T]));
        opt.zeroGrad();
        l.backward();
        opt.step();
        return l;
      });
      losses.push(await loss.item());
      loss.dispose();
    }
    const first = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const last = losses.slice(-5).reduce((a, b) => a + b) / 5;
    console.log(`[rnn] ${backend}: char LSTM loss ${first.toFixed(3)} → ${last.toFixed(3)} (uniform ${Math.log(V).toFixed(3)})`);
    expect(last).toBeLessThan(first / 2);
    for (const m of [embed, lstm, head]) m.dispose();
  });
});

it('examples/char_lstm.ts trains a character-level LSTM below the unigram baseline and samples', () => {
  const tsx = fileURLToPath(new URL('../node_modules/tsx/dist/loader.mjs', import.meta.url));
  const example = fileURLToPath(new URL('../examples/char_lstm.ts', import.meta.url));
  const cwd = fileURLToPath(new URL('..', import.meta.url));
  const r = spawnSync(process.execPath, ['--import', tsx, example, '60'], { cwd, encoding: 'utf8', timeout: 170_000 });
  expect(r.status, r.stderr).toBe(0);
  const bpc = Number(/^held-out: ([\d.]+) bits\/char/m.exec(r.stdout)?.[1]);
  const baseline = Number(/^baseline: ([\d.]+) bits\/char/m.exec(r.stdout)?.[1]);
  const sample = /^sample: (.*)$/m.exec(r.stdout)?.[1] ?? '';
  console.log(`[char lstm] 60 steps: held-out ${bpc} bits/char, unigram ${baseline}; sample ${JSON.stringify(sample.slice(0, 60))}`);
  expect(bpc).toBeLessThan(baseline - 0.3);
  expect(sample.length).toBeGreaterThan(200);
}, 180_000);
