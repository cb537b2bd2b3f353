/**
 * Population-based training: on a problem whose best learning rate falls as training goes on (the
 * expected loss of SGD on a noisy quadratic), PBT beats the same population trained without
 * exploit and explore (same seed, same first hyperparameters) and beats every fixed learning rate;
 * exploit copies the source's weights and state exactly, explore moves the copied hyperparameters
 * by the factors; and with real kiln modules (a Linear regression under SGD with momentum or AdamW)
 * exploit copies the parameters and the optimizer's moments.
 */
import { describe, expect, it } from 'vitest';
import { AdamW, Generator, Linear, SGD, normal, tidy, type Tensor } from '../src/index.js';
import { pbt, type PBTModelState } from '../src/train/pbt.js';
import { describeBackends, values } from './harness.js';

// SGD with step η on f(w) = w²/2 with gradient noise of variance σ² = 1: the expected loss
// q = E[w²] follows q ← (1 − η)²·q + η², falling fast to a floor η/(2 − η) that a large η keeps
// high, so the best η falls over time (an annealing schedule beats every constant η)
const sgdStep = (q: number, lr: number): number => (1 - lr) ** 2 * q + lr * lr;
const run = (q: number, lr: number, steps: number): number => {
  for (let s = 0; s < steps; s++) q = sgdStep(q, lr);
  return q;
};

interface Toy {
  q: number;
}

const toy = (fraction: number, seed: number, log?: { starts: Toy[][]; ends: Toy[][] }) =>
  pbt<Toy>({
    space: { lr: { type: 'logUniform', low: 1e-3, high: 1 } },
    population: 8,
    rounds: 20,
    interval: 5,
    seed,
    fraction,
    resample: 0,
    init: () => ({ q: 1 }),
    train: (s, hp, ctx) => {
      (log?.starts[ctx.round] ?? (log && (log.starts[ctx.round] = [])))?.splice(ctx.member, 1, { ...s });
      s.q = run(s.q, hp.lr as number, ctx.steps);
      (log?.ends[ctx.round] ?? (log && (log.ends[ctx.round] = [])))?.splice(ctx.member, 1, { ...s });
      return s.q;
    },
    save: (s) => ({ ...s }),
    load: (s, c) => void Object.assign(s, c as Toy),
  });

describe('pbt: a learning rate that should fall over time', () => {
  it('beats the same population without exploit and explore, and every constant rate', async () => {
    // the best constant rate over the same 100 steps, by a fine scan
    let bestFixed = Infinity;
    for (let i = 0; i <= 3000; i++) bestFixed = Math.min(bestFixed, run(1, 10 ** (-3 + (3 * i) / 3000), 100));
    const rows: string[] = [];
    for (const seed of [0, 1, 2]) {
      const withPbt = await toy(0.25, seed);
      const without = await toy(0, seed);
      // the same first hyperparameters: only exploit and explore differ
      expect(withPbt.members.map((m) => m.history[0]!.hparams)).toEqual(without.members.map((m) => m.history[0]!.hparams));
      expect(without.members.every((m) => m.history.every((h) => h.copiedFrom === null && h.hparams.lr === m.history[0]!.hparams.lr))).toBe(true);
      const lrs = withPbt.schedule.map((s) => s.hparams.lr as number);
      rows.push(
        `seed ${seed}: PBT ${withPbt.best!.value!.toExponential(3)} (lr ${lrs[0]!.toExponential(2)} → ${lrs[lrs.length - 1]!.toExponential(2)}), without ${without.best!.value!.toExponential(3)} (lr ${(without.best!.hparams.lr as number).toExponential(2)})`,
      );
      expect(withPbt.best!.value!).toBeLessThan(without.best!.value!);
      expect(withPbt.best!.value!).toBeLessThan(bestFixed);
      // the schedule behind the best weights anneals: its last rate is well below its first
      expect(lrs[lrs.length - 1]!).toBeLessThan(lrs[0]! / 2);
      // the worst member of the population is far better too (it was rescued by exploit)
      expect(withPbt.ranked[7]!.value!).toBeLessThan(without.ranked[7]!.value!);
    }
    console.log(`[pbt] final expected loss after 100 steps, 8 members; best constant rate ${bestFixed.toExponential(3)}\n  ${rows.join('\n  ')}`);
  });

  it('exploit copies the source member exactly; explore moves its rate by 0.8 or 1.2; the log says who copied whom', async () => {
    const log = { starts: [] as Toy[][], ends: [] as Toy[][] };
    const r = await toy(0.25, 5, log);
    let copies = 0;
    for (const m of r.members) {
      expect(m.history.map((h) => h.round)).toEqual(Array.from({ length: 20 }, (_, i) => i));
      m.history.forEach((h, round) => {
        expect(h.value).toBe(log.ends[round]![m.index]!.q);
        if (round === 0) return expect(h.copiedFrom).toBeNull();
        const from = h.copiedFrom ?? m.index;
        // the state this round started from is the source's state at the end of the round before
        expect(log.starts[round]![m.index]).toEqual(log.ends[round - 1]![from]);
        if (h.copiedFrom === null) return expect(h.hparams).toEqual(m.history[round - 1]!.hparams);
        copies++;
        const src = r.members[from]!.history[round - 1]!;
        // truncation selection: the source was in the top 2 of that round, this member in the bottom 2
        const order = [...r.members].sort((a, b) => a.history[round - 1]!.value - b.history[round - 1]!.value || a.index - b.index).map((x) => x.index);
        expect(order.slice(0, 2)).toContain(from);
        expect(order.slice(6)).toContain(m.index);
        const ratio = (h.hparams.lr as number) / (src.hparams.lr as number);
        const clipped = h.hparams.lr === 1e-3 || h.hparams.lr === 1;
        if (!clipped) expect([0.8, 1.2].some((f) => Math.abs(ratio - f) < 1e-12)).toBe(true);
      });
    }
    // 2 members copy after each of 19 rounds
    expect(copies).toBe(38);
    // reproducible from the seed
    const again = await toy(0.25, 5);
    expect(again.members.map((m) => m.history)).toEqual(r.members.map((m) => m.history));
    expect(r.table.split('\n')[0]).toBe('| rank | member | lr | value | copies |');
  });

  it('lists step to a neighbour, ints stay ints in range, resample draws from the space; aborting stops between members', async () => {
    const space = { width: { type: 'int' as const, low: 2, high: 6 }, act: ['relu', 'gelu', 'tanh'], lr: { type: 'uniform' as const, low: 0, high: 1 } };
    const r = await pbt<Toy>({
      space,
      population: 4,
      rounds: 6,
      interval: 1,
      seed: 3,
      resample: 0.5,
      fraction: 0.5,
      init: () => ({ q: 0 }),
      train: (s, hp) => (s.q += (hp.width as number) + (hp.act === 'gelu' ? 0 : 1) + (hp.lr as number)),
      save: (s) => s.q,
      load: (s, c) => void (s.q = c as number),
    });
    for (const m of r.members)
      for (const h of m.history) {
        expect(Number.isInteger(h.hparams.width) && (h.hparams.width as number) >= 2 && (h.hparams.width as number) <= 6).toBe(true);
        expect(space.act).toContain(h.hparams.act);
        expect(h.hparams.lr as number).toBeGreaterThanOrEqual(0);
        expect(h.hparams.lr as number).toBeLessThanOrEqual(1);
      }
    expect(r.members.flatMap((m) => m.history).filter((h) => h.copiedFrom !== null).length).toBe(10); // 2 per round after 5 rounds
    const controller = new AbortController();
    const cut = await pbt<Toy>({
      space,
      population: 4,
      rounds: 6,
      interval: 1,
      signal: controller.signal,
      init: () => ({ q: 0 }),
      train: (s, _hp, ctx) => {
        if (ctx.round === 2 && ctx.member === 1) controller.abort();
        return ++s.q;
      },
      save: (s) => s.q,
      load: (s, c) => void (s.q = c as number),
    });
    expect([cut.aborted, cut.rounds, cut.members.map((m) => m.history.length)]).toEqual([true, 2, [3, 3, 2, 2]]);
  });
});

describe('pbt: diverged members', () => {
  it('NaN and ±∞ rank last in either mode, so those members copy finite ones; best is finite', async () => {
    // members 0 and 1 diverge in round 0 (NaN, +∞); in 'max' mode too they rank below every finite value
    for (const mode of ['min', 'max'] as const) {
      const r = await pbt<Toy>({
        space: { lr: [0.1, 0.2, 0.3, 0.4] },
        population: 4,
        rounds: 2,
        interval: 1,
        fraction: 0.5,
        mode,
        init: (_hp, i) => ({ q: i }),
        train: (s, _hp, ctx) => (ctx.round === 0 && s.q < 2 ? [NaN, Infinity][s.q]! : s.q),
        save: (s) => s.q,
        load: (s, c) => void (s.q = c as number),
      });
      for (const m of r.members.slice(0, 2)) expect([2, 3]).toContain(m.history[1]!.copiedFrom);
      expect(r.members.slice(2).every((m) => m.history[1]!.copiedFrom === null)).toBe(true);
      expect(Number.isFinite(r.best!.value!)).toBe(true);
    }
  });
});

describeBackends('pbt with kiln modules', (backend) => {
  // y = X·w* + b* + noise, X: [64, 4]
  const data = (): { x: Tensor; y: Tensor } => {
    const g = new Generator(11);
    const x = normal([64, 4], 0, 1, { backend, generator: g });
    const w = normal([4, 1], 0, 1, { backend, generator: g });
    const noise = normal([64, 1], 0, 0.05, { backend, generator: g });
    const y = tidy(() => x.matmul(w).add(0.5).add(noise));
    w.dispose();
    noise.dispose();
    return { x, y };
  };
  const mse = (m: Linear, x: Tensor, y: Tensor): Tensor => m.forward(x).sub(y).square().mean();
  const snapshot = async (s: PBTModelState): Promise<Record<string, number[] | number>> => {
    const out: Record<string, number[] | number> = {};
    for (const [k, t] of Object.entries(s.model.stateDict())) out[k] = await values(t);
    const sd = s.optimizer!.stateDict();
    for (const [id, st] of Object.entries(sd.state)) {
      out[`opt.${id}.step`] = st.step;
      for (const [k, t] of Object.entries(st.tensors)) out[`opt.${id}.${k}`] = await values(t);
    }
    return out;
  };

  for (const kind of ['SGD', 'AdamW'] as const)
    it(`${kind}: exploit copies weights and optimizer state exactly; the rescued population ends far better than without`, async () => {
      const { x, y } = data();
      const lrRange = { low: 1e-3, high: kind === 'SGD' ? 0.3 : 0.1 };
      const go = async (fraction: number, log?: { starts: Record<string, number[] | number>[][]; ends: Record<string, number[] | number>[][] }) =>
        pbt<PBTModelState>({
          space: { lr: { type: 'logUniform', ...lrRange } },
          population: 4,
          rounds: 6,
          interval: 5,
          seed: 2,
          fraction,
          resample: 0,
          init: (hp, i) => {
            const model = new Linear(4, 1, { backend, generator: new Generator(100 + i) });
            const optimizer = kind === 'SGD' ? new SGD(model.parameters(), { lr: hp.lr as number, momentum: 0.5 }) : new AdamW(model.parameters(), { lr: hp.lr as number, weightDecay: 0 });
            return { model, optimizer };
          },
          train: async (s, hp, ctx) => {
            if (log) (log.starts[ctx.round] ??= [])[ctx.member] = await snapshot(s);
            for (const g of s.optimizer!.paramGroups) g.lr = hp.lr as number;
            for (let i = 0; i < ctx.steps; i++) {
              s.optimizer!.zeroGrad();
              tidy(() => mse(s.model as Linear, x, y).backward());
              s.optimizer!.step();
            }
            const loss = tidy(() => mse(s.model as Linear, x, y));
            const v = await loss.item();
            loss.dispose();
            if (log) (log.ends[ctx.round] ??= [])[ctx.member] = await snapshot(s);
            return v;
          },
        });
      const log = { starts: [] as Record<string, number[] | number>[][], ends: [] as Record<string, number[] | number>[][] };
      const withPbt = await go(0.25, log);
      const without = await go(0);
      let copies = 0;
      for (const m of withPbt.members)
        for (const h of m.history.slice(1)) {
          if (h.copiedFrom === null) continue;
          copies++;
          // parameters, optimizer moments and step counts equal the source's at the end of the round before
          expect(log.starts[h.round]![m.index]).toEqual(log.ends[h.round - 1]![h.copiedFrom]);
          const ratio = (h.hparams.lr as number) / (withPbt.members[h.copiedFrom]!.history[h.round - 1]!.hparams.lr as number);
          const clipped = h.hparams.lr === lrRange.low || h.hparams.lr === lrRange.high;
          if (!clipped) expect([0.8, 1.2].some((f) => Math.abs(ratio - f) < 1e-9)).toBe(true);
        }
      expect(copies).toBe(5);
      const worst = (r: typeof withPbt): number => Math.max(...r.members.map((m) => (Number.isFinite(m.value!) ? m.value! : Infinity)));
      console.log(
        `[pbt ${backend}] ${kind} Linear regression, 4 members × 6 rounds × 5 steps: best ${withPbt.best!.value!.toExponential(3)} vs ${without.best!.value!.toExponential(3)} without exploit; worst ${worst(withPbt).toExponential(3)} vs ${worst(without).toExponential(3)}; lr schedule ${withPbt.schedule.map((s) => (s.hparams.lr as number).toExponential(1)).join(' ')}`,
      );
      expect(withPbt.best!.value!).toBeLessThanOrEqual(without.best!.value! * 1.000001);
      expect(worst(withPbt)).toBeLessThan(worst(without) / 2);
      for (const r of [withPbt, without])
        for (const m of r.members) {
          m.state.model.dispose?.();
          m.state.optimizer!.disposeState();
        }
      x.dispose();
      y.dispose();
    });
});
