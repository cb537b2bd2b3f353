/**
 * The mixture-of-experts layer and the GPT that uses it: routing against an independent host
 * routing of the same router logits (top-k, capacity, what is dropped and how many), the output
 * against a per-token loop over tokens and experts in f64 on the host, gradients of the router
 * and the experts by central differences in f64, the Switch load-balancing loss evening out a
 * router that starts skewed (with against without), and a GPT with experts that trains, saves
 * and loads.
 */
import { expect, it } from 'vitest';
import { Adam, Generator, concat, crossEntropy, loadSafetensors, noGrad, saveSafetensors, tensor, tidy, type Tensor } from '../src/index.js';
import { GPT, KVCache } from '../src/nn/index.js';
import { MoE } from '../src/nn/moe.js';
import { describeBackends, expectClose, liveTensors, rng, stores, values } from './harness.js';

// ---- the host reference ----------------------------------------------------------------------

/** A host copy of one expert MLP's parameters. */
interface HostMLP {
  fcW: number[]; // [H, C]
  fcB: number[]; // [H]
  projW: number[]; // [C, H]
  projB: number[]; // [C]
  hidden: number;
}

async function hostExperts(moe: MoE): Promise<HostMLP[]> {
  const out: HostMLP[] = [];
  for (const m of moe.experts)
    out.push({ fcW: await values(m.c_fc.weight), fcB: await values(m.c_fc.bias!), projW: await values(m.c_proj.weight), projB: await values(m.c_proj.bias!), hidden: m.c_fc.outFeatures });
  return out;
}

const geluTanh = (v: number): number => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));

/** GPT-2's MLP on one token, in f64. */
function hostMLP(p: HostMLP, x: number[]): number[] {
  const C = x.length;
  const h = Array.from({ length: p.hidden }, (_, o) => geluTanh(x.reduce((s, xi, i) => s + p.fcW[o * C + i]! * xi, p.fcB[o]!)));
  return Array.from({ length: C }, (_, o) => h.reduce((s, hi, i) => s + p.projW[o * p.hidden + i]! * hi, p.projB[o]!));
}

/** What the host routing decides: per token its k choices (expert, kept), and the counts. */
interface HostRouting {
  choices: { expert: number; kept: boolean }[][];
  routed: number[];
  kept: number[];
  dropped: number;
}

/**
 * Route as Switch/GShard describe it, one assignment at a time: top-k by logit (lowest index on
 * ties), first choices of all tokens in token order, then second choices, …; an expert takes
 * assignments until it holds `capacity`.
 */
function hostRoute(logits: number[][], k: number, capacity: number): HostRouting {
  const E = logits[0]!.length;
  const ranked = logits.map((row) => row.map((v, e) => ({ v, e })).sort((a, b) => b.v - a.v || a.e - b.e).slice(0, k).map((c) => c.e));
  const choices = logits.map(() => [] as { expert: number; kept: boolean }[]);
  const routed = new Array<number>(E).fill(0);
  const kept = new Array<number>(E).fill(0);
  let dropped = 0;
  for (let j = 0; j < k; j++)
    ranked.forEach((r, t) => {
      const e = r[j]!;
      routed[e]!++;
      const ok = kept[e]! < capacity;
      if (ok) kept[e]!++;
      else dropped++;
      choices[t]!.push({ expert: e, kept: ok });
    });
  return { choices, routed, kept, dropped };
}

function softmaxRow(row: number[]): number[] {
  const m = Math.max(...row);
  const ex = row.map((v) => Math.exp(v - m));
  const s = ex.reduce((a, b) => a + b, 0);
  return ex.map((v) => v / s);
}

/** The MoE output for each token: Σ over its kept choices of gate · expert(x), looping over tokens and experts. */
function hostMoE(xs: number[][], logits: number[][], experts: HostMLP[], routing: HostRouting, renormalize: boolean): number[][] {
  return xs.map((x, t) => {
    const p = softmaxRow(logits[t]!);
    const chosen = routing.choices[t]!;
    const total = renormalize ? chosen.reduce((s, c) => s + p[c.expert]!, 0) : 1;
    const out = new Array<number>(x.length).fill(0);
    for (const c of chosen) {
      if (!c.kept) continue;
      const y = hostMLP(experts[c.expert]!, x);
      for (let i = 0; i < x.length; i++) out[i]! += (p[c.expert]! / total) * y[i]!;
    }
    return out;
  });
}

/** Switch's aux loss from the host routing: E · Σ f_i · P_i. */
function hostAux(logits: number[][], routing: HostRouting, k: number): number {
  const E = logits[0]!.length;
  const n = logits.length;
  const P = new Array<number>(E).fill(0);
  for (const row of logits) softmaxRow(row).forEach((v, e) => (P[e]! += v / n));
  return E * routing.routed.reduce((s, r, e) => s + (r / (n * k)) * P[e]!, 0);
}

const rows = (flat: ArrayLike<number>, width: number): number[][] =>
  Array.from({ length: flat.length / width }, (_, i) => Array.from(flat, Number).slice(i * width, (i + 1) * width));

/** Coefficient of variation (std / mean) of expert loads. */
function cv(load: number[]): number {
  const mean = load.reduce((a, b) => a + b, 0) / load.length;
  return Math.sqrt(load.reduce((s, v) => s + (v - mean) ** 2, 0) / load.length) / mean;
}

describeBackends('MoE', (backend) => {
  const C = 8;

  /** x [N, C] with values known on the host (rounded as `dtype` stores them). */
  function input(n: number, seed: number, dtype: 'f32' | 'f64' = 'f32'): { x: Tensor; host: number[] } {
    const r = rng(seed);
    const round = dtype === 'f32' ? Math.fround : (v: number) => v;
    const host = Array.from({ length: n * C }, () => round(2 * r() - 1));
    return { x: tensor(host, [n, C], { backend, dtype }), host };
  }

  // ---- (a) capacity and dropping ----------------------------------------------------------------

  for (const [k, factor] of [
    [1, 0.5],
    [2, 0.25],
    [2, 0.8],
  ] as const)
    it(`top-${k}, capacity factor ${factor}: no expert exceeds its capacity, the drops match a host routing, dropped tokens get zero`, async () => {
      const E = 4;
      const n = 24;
      const moe = new MoE(C, { experts: E, topK: k, capacityFactor: factor, hidden: 12, routerStd: 0.5, backend, generator: new Generator(3) });
      const { x, host } = input(n, 7);
      const out = tidy(() => moe.forward(x));
      const logits = tidy(() => noGrad(() => moe.router.forward(x)));
      const L = rows(await values(logits), E);
      const capacity = Math.ceil((factor * n * k) / E);
      const want = hostRoute(L, k, capacity);
      const s = await moe.stats();
      console.log(`[moe] ${backend} top-${k} factor ${factor}: capacity ${s.capacity}, routed ${s.routed.join('/')}, kept ${s.kept.join('/')}, dropped ${s.dropped} of ${s.assignments} (${(100 * s.droppedFraction).toFixed(1)}%)`);
      expect(s.capacity).toBe(capacity);
      expect(s.tokens).toBe(n);
      expect(s.routed).toEqual(want.routed);
      expect(s.kept).toEqual(want.kept);
      for (const v of s.kept) expect(v).toBeLessThanOrEqual(capacity);
      expect(s.dropped).toBe(want.dropped);
      expect(s.dropped).toBeGreaterThan(0);
      expect(s.droppedFraction).toBeCloseTo(want.dropped / (n * k), 12);
      expectClose(await values(out), hostMoE(rows(host, C), L, await hostExperts(moe), want, k > 1).flat(), { rtol: 1e-4, atol: 2e-6 }, 'output');
      // a token all of whose choices were dropped passes nothing through the layer
      const o = rows(await values(out), C);
      const gone = want.choices.map((cs, t) => (cs.every((c) => !c.kept) ? t : -1)).filter((t) => t >= 0);
      if (factor < 0.5) expect(gone.length).toBeGreaterThan(0);
      for (const t of gone) expect(o[t]).toEqual(new Array(C).fill(0));
      expect(s.auxLoss).toBeCloseTo(hostAux(L, want, k), 5);
      out.dispose();
      logits.dispose();
      x.dispose();
      moe.dispose();
    });

  it('eval mode uses evalCapacityFactor; capacity never exceeds the tokens', () => {
    const moe = new MoE(C, { experts: 4, topK: 2, capacityFactor: 0.5, evalCapacityFactor: 2, backend });
    expect(moe.capacity(10)).toBe(3);
    moe.eval();
    expect(moe.capacity(10)).toBe(10);
    expect(moe.capacity(0)).toBe(0);
    moe.dispose();
  });

  // ---- (b) against the per-token loop, and gradients ------------------------------------------------

  for (const k of [1, 2])
    it(`top-${k} with room for every token equals the per-token loop over tokens and experts (f32)`, async () => {
      const E = 4;
      const n = 2 * 7;
      const moe = new MoE(C, { experts: E, topK: k, capacityFactor: E / k, hidden: 16, routerStd: 0.3, backend, generator: new Generator(11 + k) });
      const { x, host } = input(n, 5 + k);
      const x3 = x.reshape([2, 7, C]); // any leading shape
      const out = tidy(() => moe.forward(x3));
      expect(out.shape).toEqual([2, 7, C]);
      const L = rows(await values(tidy(() => noGrad(() => moe.router.forward(x)))), E);
      const routing = hostRoute(L, k, n);
      expect(routing.dropped).toBe(0);
      expectClose(await values(out), hostMoE(rows(host, C), L, await hostExperts(moe), routing, k > 1).flat(), { rtol: 1e-4, atol: 2e-6 }, 'output');
      expect((await moe.stats()).dropped).toBe(0);
      const aux = tidy(() => moe.forward(x).sum().mul(0).add(moe.lastAuxLoss!)); // lastAuxLoss lives in the forward's scope
      expect(await aux.item()).toBeCloseTo(hostAux(L, routing, k), 5);
      expect((await moe.stats()).auxLoss).toBeCloseTo(hostAux(L, routing, k), 5);
      aux.dispose();
      out.dispose();
      x3.dispose();
      x.dispose();
      moe.dispose();
    });

  for (const [k, factor] of [
    [1, 4],
    [2, 0.75],
  ] as const)
    it.skipIf(!stores(backend, 'f64'))(`gradients of the router and the experts equal central differences in f64 (top-${k}, factor ${factor})`, async () => {
      const E = 4;
      const n = 10;
      const moe = new MoE(C, { experts: E, topK: k, capacityFactor: factor, hidden: 6, routerStd: 0.5, dtype: 'f64', backend, generator: new Generator(40 + k) });
      const { x } = input(n, 9, 'f64');
      const r = rng(17);
      const w = tensor(Array.from({ length: n * C }, () => 2 * r() - 1), [n, C], { backend, dtype: 'f64' });
      // the task term and the aux loss: both must reach the router
      const objective = (): Tensor => moe.forward(x).mul(w).sum().add(moe.lastAuxLoss!.mul(0.7));
      const at = async (): Promise<number> => {
        const l = tidy(() => noGrad(objective));
        const v = await l.item();
        l.dispose();
        return v;
      };
      tidy(() => objective().backward());
      const h = 1e-6;
      let checked = 0;
      for (const [name, p] of moe.namedParameters()) {
        const grad = await values(p.grad!);
        const data = Float64Array.from(await values(p));
        for (let j = 0; j < 4; j++) {
          const i = Math.floor(r() * p.size);
          const set = (v: number): void => {
            data[i] = v;
            noGrad(() => tidy(() => p.copy_(tensor(data, p.shape as number[], { backend, dtype: 'f64' }))));
          };
          const x0 = data[i]!;
          set(x0 + h);
          const up = await at();
          set(x0 - h);
          const down = await at();
          set(x0);
          const numeric = (up - down) / (2 * h);
          expect(Math.abs(numeric - grad[i]!), `${name}[${i}]: numeric ${numeric}, backward ${grad[i]}`).toBeLessThan(1e-7 + 1e-6 * Math.abs(numeric));
          checked++;
        }
      }
      expect(checked).toBe(4 * (1 + 4 * E));
      // the router's gradient is not zero: the gates and the aux loss depend on it
      expect((await values(moe.router.weight.grad!)).some((g) => Math.abs(g) > 1e-6)).toBe(true);
      moe.zeroGrad();
      w.dispose();
      x.dispose();
      moe.dispose();
    });

  it('noisy gating: noise while training only, and the noise projection learns', async () => {
    const moe = new MoE(C, { experts: 4, topK: 2, capacityFactor: 2, noisyGating: true, hidden: 8, backend, generator: new Generator(5) });
    expect(moe.namedParameters().map(([n]) => n).slice(0, 2)).toEqual(['router.weight', 'noise.weight']);
    const { x } = input(12, 3);
    const a = tidy(() => moe.forward(x));
    const b = tidy(() => moe.forward(x));
    tidy(() => moe.forward(x).square().sum().add(moe.lastAuxLoss!).backward());
    expect((await values(moe.getModule('noise')!.getParameter('weight').grad!)).some((g) => g !== 0)).toBe(true);
    moe.eval();
    const c = tidy(() => moe.forward(x));
    const d = tidy(() => moe.forward(x));
    expect(await values(a)).not.toEqual(await values(b));
    expect(await values(c)).toEqual(await values(d));
    for (const t of [a, b, c, d, x]) t.dispose();
    moe.dispose();
  });

  it('an empty batch gives an empty output and zero counts; bf16 experts run', async () => {
    const moe = new MoE(C, { experts: 3, topK: 2, backend });
    const empty = tensor([], [0, C], { backend });
    const out = tidy(() => moe.forward(empty));
    expect(out.shape).toEqual([0, C]);
    expect(await moe.stats()).toEqual({ tokens: 0, assignments: 0, capacity: 0, routed: [0, 0, 0], kept: [0, 0, 0], dropped: 0, droppedFraction: 0, auxLoss: 0 });
    moe.dispose();
    if (stores(backend, 'bf16')) {
      const half = new MoE(C, { experts: 3, topK: 2, capacityFactor: 3, dtype: 'bf16', backend, generator: new Generator(2) });
      const { x } = input(6, 4);
      const xb = x.cast('bf16');
      const y = tidy(() => half.forward(xb));
      expect(y.dtype).toBe('bf16');
      expect((await half.stats()).dropped).toBe(0);
      expect((await values(y)).every(Number.isFinite)).toBe(true);
      for (const t of [x, xb, y]) t.dispose();
      half.dispose();
    }
    for (const t of [empty, out]) t.dispose();
  });

  // ---- (c) the load-balancing loss ------------------------------------------------------------------

  it('the aux loss evens out a router that starts skewed (top-1, 4 experts): with it the load spreads, without it stays', async () => {
    const E = 4;
    const STEPS = 50;
    const n = 64;
    const r = rng(99);
    // feature 0 is a constant 1 and the router's weight on it favours expert 0: every token starts there
    const host = Array.from({ length: n * C }, (_, i) => (i % C === 0 ? 1 : 2 * r() - 1));
    const target = Array.from({ length: n * C }, () => 2 * r() - 1);
    const run = async (alpha: number): Promise<{ start: number[]; end: number[] }> => {
      const moe = new MoE(C, { experts: E, topK: 1, capacityFactor: 2, hidden: 8, backend, generator: new Generator(8) });
      const rw = Array.from({ length: E * C }, (_, i) => (i === 0 ? 3 : 0.1 * (2 * r() - 1)));
      noGrad(() => tidy(() => moe.router.weight.copy_(tensor(rw, [E, C], { backend }))));
      const x = tensor(host, [n, C], { backend });
      const y = tensor(target, [n, C], { backend });
      const opt = new Adam(moe.parameters(), { lr: 0.05 });
      let start: number[] = [];
      for (let step = 0; step < STEPS; step++) {
        const l = tidy(() => {
          const task = moe.forward(x).sub(y).square().mean();
          const loss = alpha > 0 ? task.add(moe.lastAuxLoss!.mul(alpha)) : task;
          opt.zeroGrad();
          loss.backward();
          opt.step();
          return loss;
        });
        await l.item();
        l.dispose();
        if (step === 0) start = (await moe.stats()).routed;
      }
      tidy(() => noGrad(() => moe.forward(x)));
      const end = (await moe.stats()).routed;
      x.dispose();
      y.dispose();
      moe.dispose();
      return { start, end };
    };
    const without = await run(0);
    const withAux = await run(0.1);
    const fmtLoad = (l: number[]): string => `${l.join('/')} (max/min ${(Math.max(...l) / Math.min(...l)).toFixed(2)}, cv ${cv(l).toFixed(3)})`;
    console.log(
      `[moe] ${backend} load of 64 tokens over 4 experts, at the start ${fmtLoad(without.start)}; after ${STEPS} Adam steps without the aux loss ${fmtLoad(without.end)}, with 0.1·aux ${fmtLoad(withAux.end)}`,
    );
    // the same start (same seed, same router): every token on expert 0
    expect(withAux.start).toEqual(without.start);
    expect(without.start[0]).toBe(n);
    expect(cv(without.end)).toBeGreaterThan(1.2);
    expect(cv(withAux.end)).toBeLessThan(0.4);
    expect(cv(withAux.end)).toBeLessThan(cv(without.end) / 4);
    expect(Math.min(...withAux.end)).toBeGreaterThan(0);
  });
});

describeBackends('GPT with MoE feed-forwards', (backend) => {
  const CONFIG = { vocabSize: 12, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 16 };
  const ids = (data: number[]): Tensor => tensor(data, [2, 8], { backend, dtype: 'i32' });

  it('names its experts, puts them in every (other) block, and the plain model is unchanged', () => {
    const plain = new GPT(CONFIG, { backend });
    expect('moe' in plain.config).toBe(false);
    expect(plain.transformer.h.at(0).moe).toBeNull();
    const every = new GPT({ ...CONFIG, moe: { experts: 3, topK: 2 } }, { backend, generator: new Generator(1) });
    expect(every.config.moe).toEqual({ experts: 3, topK: 2, capacityFactor: 1.25, evalCapacityFactor: 1.25, noisyGating: false, renormalize: true, routerStd: 0.02, auxLossWeight: 0.01, every: 1, hidden: 64 });
    const names = every.namedParameters().map(([n]) => n);
    expect(names).toContain('transformer.h.0.moe.router.weight');
    expect(names).toContain('transformer.h.1.moe.experts.2.c_proj.bias');
    expect(names.some((n) => n.includes('.mlp.'))).toBe(false);
    expect(() => every.transformer.h.at(0).mlp).toThrow(/^Block\.mlp: .*moe/);
    const other = new GPT({ ...CONFIG, moe: { experts: 2, every: 2, hidden: 8 } }, { backend });
    expect(other.transformer.h.at(0).moe).toBeNull();
    expect(other.transformer.h.at(1).moe!.experts.at(1).c_fc.outFeatures).toBe(8);
    // the MLP blocks' parameters plus E experts, a router each
    expect(other.numParameters() - plain.numParameters()).toBe(16 * 2 + (2 * 16 * 8 + 8 + 16) * 2 - (2 * 16 * 64 + 64 + 16));
    for (const m of [plain, every, other]) m.dispose();
  });

  it('trains (loss falls over 30 steps, the aux loss in it), saves and loads its state dict', async () => {
    const model = new GPT({ ...CONFIG, moe: { experts: 4, topK: 2, capacityFactor: 1.5, auxLossWeight: 0.05 } }, { backend, generator: new Generator(7) });
    const seq = Array.from({ length: 17 }, (_, i) => (i * 5) % 12);
    const idx = ids([...seq.slice(0, 8), ...seq.slice(8, 16)]);
    const tgt = ids([...seq.slice(1, 9), ...seq.slice(9, 17)]);
    const opt = new Adam(model.parameters(), { lr: 1e-2 });
    const losses: number[] = [];
    const auxes: number[] = [];
    let live = 0;
    for (let step = 0; step < 30; step++) {
      if (step === 1) live = liveTensors();
      const [loss, aux, ce] = tidy(() => {
        const out = model.forward(idx, tgt);
        opt.zeroGrad();
        out.loss!.backward();
        opt.step();
        // the loss is cross-entropy + 0.05 · aux
        return [out.loss!, out.auxLoss!, out.loss!.sub(out.auxLoss!.mul(0.05))];
      });
      losses.push(await loss.item());
      auxes.push(await aux.item());
      if (step === 0) expect(await ce.item()).toBeGreaterThan(2);
      for (const t of [loss, aux, ce]) t.dispose();
    }
    // the kept statistics replace the last ones: nothing accumulates over the steps
    expect(liveTensors()).toBe(live);
    console.log(`[moe] ${backend} GPT with 4 experts (top-2) per block: loss ${losses[0]!.toFixed(3)} → ${losses.at(-1)!.toFixed(3)} in 30 steps, aux ${auxes[0]!.toFixed(3)} → ${auxes.at(-1)!.toFixed(3)}`);
    expect(losses.at(-1)!).toBeLessThan(0.5 * losses[0]!);
    for (const a of auxes) expect(a).toBeGreaterThan(0);
    // eval: the loss is the cross-entropy alone
    model.eval();
    const evalOut = tidy(() => model.forward(idx, tgt));
    const ce = tidy(() => crossEntropy(evalOut.logits, tgt));
    expect(await evalOut.loss!.item()).toBeCloseTo(await ce.item(), 6);
    // save to safetensors bytes and load into a model of another seed: same logits
    const bytes = await saveSafetensors(model.stateDict());
    const copy = new GPT(model.config, { backend, generator: new Generator(99) }).eval();
    const file = loadSafetensors(bytes, { backend });
    copy.loadStateDict(file.tensors);
    const again = tidy(() => copy.forward(idx).logits);
    expectClose(await values(again), await values(evalOut.logits), { rtol: 0, atol: 0 }, 'logits after load');
    for (const t of [evalOut.logits, evalOut.loss!, evalOut.auxLoss!, ce, again, idx, tgt]) t.dispose();
    for (const t of Object.values(file.tensors)) t.dispose();
    model.dispose();
    copy.dispose();
  });

  it('gradient checkpointing gives the same loss and gradients (the aux loss is a second output of the checkpoint)', async () => {
    const moe = { experts: 3, topK: 2, capacityFactor: 1, noisyGating: true, auxLossWeight: 0.5 };
    const make = (gradientCheckpointing: boolean): GPT => new GPT({ ...CONFIG, nLayer: 3, moe, gradientCheckpointing }, { backend, generator: new Generator(5) });
    const idx = ids(Array.from({ length: 16 }, (_, i) => (i * 7) % 12));
    const tgt = ids(Array.from({ length: 16 }, (_, i) => (i * 3 + 1) % 12));
    const grads = async (m: GPT): Promise<{ loss: number; g: number[][] }> => {
      const loss = tidy(() => {
        const l = m.forward(idx, tgt).loss!;
        l.backward();
        return l;
      });
      const out = { loss: await loss.item(), g: await Promise.all(m.parameters().map((p) => values(p.grad!))) };
      loss.dispose();
      return out;
    };
    const a = make(false);
    const b = make(true);
    const ga = await grads(a);
    const gb = await grads(b);
    expect(gb.loss).toBeCloseTo(ga.loss, 5);
    ga.g.forEach((g, i) => expectClose(gb.g[i]!, g, { rtol: 1e-4, atol: 1e-6 }, a.namedParameters()[i]![0]));
    // the routers get gradient from the aux loss through the checkpoint
    expect(gb.g[b.parameters().indexOf(b.transformer.h.at(0).moe!.router.weight)]!.some((v) => v !== 0)).toBe(true);
    for (const t of [idx, tgt]) t.dispose();
    a.dispose();
    b.dispose();
  });

  it('decodes with a key/value cache as without one when every expert has room (eval)', async () => {
    const model = new GPT({ ...CONFIG, moe: { experts: 3, topK: 2, evalCapacityFactor: 1.5 } }, { backend, generator: new Generator(3) }).eval();
    const idx = ids(Array.from({ length: 16 }, (_, i) => (i * 5 + 2) % 12));
    const full = tidy(() => model.forward(idx).logits); // [2, 8, V]
    const cache = new KVCache(CONFIG.nLayer);
    const steps: Tensor[] = [];
    for (let t = 0; t < 8; t++) steps.push(tidy(() => model.forward(idx.narrow(1, t, 1), null, { cache }).logits));
    const cached = tidy(() => concat(steps, 1));
    expectClose(await values(cached), await values(full), { rtol: 1e-4, atol: 1e-5 }, 'cached logits');
    cache.clear();
    for (const t of [idx, full, cached, ...steps]) t.dispose();
    model.dispose();
  });
});
