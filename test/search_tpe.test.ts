/**
 * Bayesian optimisation (TPE) and the median pruner of `search`: on a synthetic objective with a
 * known optimum, TPE gets closer to it than random search with the same budget and seeds, and
 * reaches it in fewer trials (fixed seeds); the median rule stops trials that are worse than the
 * finished ones at the same step.
 */
import { describe, expect, it } from 'vitest';
import { search, type SearchConfig } from '../src/index.js';

// the optimum: lr 1e-3, width 200, activation 'gelu' (value 0)
const space = {
  lr: { type: 'logUniform' as const, low: 1e-5, high: 1e-1 },
  width: { type: 'int' as const, low: 16, high: 512 },
  activation: ['relu', 'gelu', 'tanh'],
};
const objective = (c: SearchConfig): number =>
  (Math.log10(c.lr as number) + 3) ** 2 + ((c.width as number) - 200) ** 2 / 10000 + (c.activation === 'gelu' ? 0 : 0.5);

describe('search: TPE', () => {
  it('finds a better configuration than random search in the same number of trials (seeds 0–5)', async () => {
    // the ranges only: a list's value that the first good trials lack can stay unexplored (TPE models
    // each hyperparameter alone and draws from the good trials' values), which a seed or two here shows
    const ranges = { lr: space.lr, width: space.width };
    const best = async (strategy: 'tpe' | 'random', seed: number): Promise<number> => (await search({ space: ranges, strategy, trials: 40, seed, run: objective })).best!.value! - 0.5;
    const tpe: number[] = [];
    const random: number[] = [];
    for (let seed = 0; seed < 6; seed++) {
      tpe.push(await best('tpe', seed));
      random.push(await best('random', seed));
    }
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(`[search] best of 40 trials, per seed: TPE ${tpe.map((v) => v.toFixed(3)).join(' ')} (mean ${mean(tpe).toFixed(4)}); random ${random.map((v) => v.toFixed(3)).join(' ')} (mean ${mean(random).toFixed(4)})`);
    expect(mean(tpe)).toBeLessThan(mean(random) / 2);
    expect(tpe.filter((v, i) => v < random[i]!).length).toBeGreaterThanOrEqual(4);
  });

  it('reaches the optimum in fewer trials than random search (fixed seeds 0–7)', async () => {
    // trials until one is within 0.02 of the known optimum (value 0 over the ranges), at most 200
    const ranges = { lr: space.lr, width: space.width };
    const target = 0.02;
    const trialsToReach = async (strategy: 'tpe' | 'random', seed: number): Promise<number> => {
      const r = await search({ space: ranges, strategy, trials: 200, seed, run: (c) => objective(c) - 0.5 });
      const hit = r.trials.findIndex((t) => t.value! < target);
      return hit < 0 ? 201 : hit + 1;
    };
    const tpe: number[] = [];
    const random: number[] = [];
    for (let seed = 0; seed < 8; seed++) {
      tpe.push(await trialsToReach('tpe', seed));
      random.push(await trialsToReach('random', seed));
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    console.log(`[search] trials to get within ${target} of the optimum, seeds 0–7: TPE ${tpe.join(' ')} (median ${median(tpe)}); random ${random.join(' ')} (median ${median(random)})`);
    expect(tpe.every((n) => n <= 200)).toBe(true);
    expect(median(tpe)).toBeLessThan(median(random));
    expect(tpe.reduce((a, b) => a + b, 0)).toBeLessThan(random.reduce((a, b) => a + b, 0));
  });

  it('is reproducible from its seed, and its first trials are random draws', async () => {
    const a = await search({ space, strategy: 'tpe', trials: 15, seed: 3, run: objective, tpe: { startup: 5 } });
    const b = await search({ space, strategy: 'tpe', trials: 15, seed: 3, run: objective, tpe: { startup: 5 } });
    expect(b.trials.map((t) => t.config)).toEqual(a.trials.map((t) => t.config));
    for (const t of a.trials) {
      expect(t.config.lr as number).toBeGreaterThanOrEqual(1e-5);
      expect(t.config.lr as number).toBeLessThanOrEqual(1e-1);
      expect(Number.isInteger(t.config.width)).toBe(true);
      expect(space.activation).toContain(t.config.activation);
    }
    await expect(search({ space, strategy: 'tpe', run: objective })).rejects.toThrow(/^search: tpe search needs trials/);
    await expect(search({ space, strategy: 'tpe', trials: 3, run: objective, tpe: { gamma: 1 } })).rejects.toThrow(/^search: tpe\.gamma/);
    await expect(search({ space, strategy: 'random', trials: 3, run: objective, tpe: {} })).rejects.toThrow(/^search: tpe options are for strategy 'tpe'/);
  });
});

describe('search: the median pruner', () => {
  it('stops trials worse than the median of the finished ones at the same step', async () => {
    // a trial's curve: value(step) = quality + 1/(step + 1); lower quality is better
    const qualities = [0.5, 0.2, 0.8, 0.1, 0.9, 0.95, 0.05, 0.99];
    const r = await search({
      space: { q: qualities },
      strategy: 'grid',
      pruner: { type: 'median', startupTrials: 3, warmupSteps: 2 },
      run: (c, ctx) => {
        let steps = 0;
        for (let step = 0; step < 20; step++) {
          steps = step + 1;
          if (ctx.report((c.q as number) + 1 / (step + 1), step)) break;
        }
        return { value: (c.q as number) + 1 / steps, steps };
      },
    });
    const status = r.trials.map((t) => `${t.config.q}:${t.status}:${t.steps}`);
    console.log(`[search] median pruner: ${status.join(' ')}`);
    // the first 3 run to the end; later ones worse than the median stop at step 2 (3 reports), better ones run on
    expect(r.trials.slice(0, 3).every((t) => t.status === 'ok' && t.steps === 20)).toBe(true);
    for (const t of r.trials.slice(3)) {
      if ((t.config.q as number) >= 0.8) expect([t.status, t.steps]).toEqual(['pruned', 3]);
      else expect([t.status, t.steps]).toEqual(['ok', 20]);
    }
    expect(r.best!.config.q).toBe(0.05);
  });
});
