/**
 * Successive halving (ASHA) and Hyperband as `search` pruners: on synthetic learning curves whose
 * order never changes (value(step) = q + 1/step, lower q better), the rungs at r·η^k stop exactly
 * the trials worked out by hand below, the best trial runs to the end, and every trial is still
 * logged with its configuration, value and status.
 */
import { describe, expect, it } from 'vitest';
import { search, type SearchConfig, type TrialContext } from '../src/index.js';

// one trial: steps 1..budget, reporting q + 1/step (the best so far is the latest); stops when told
const curve = (budget: number) => (c: SearchConfig, ctx: TrialContext) => {
  const q = c.q as number;
  let steps = 0;
  for (let step = 1; step <= budget; step++) {
    steps = step;
    if (ctx.report(q + 1 / step, step)) break;
  }
  return { value: q + 1 / steps, steps };
};

describe('search: successive halving (ASHA)', () => {
  it('stops the bad trials at the expected rungs and keeps the best', async () => {
    // η = 3, r = 1, R = 27: rungs at steps 1, 3, 9. A trial goes on from a rung while fewer than
    // max(1, ⌊n/3⌋) of the n values recorded there so far are better than its own. By hand:
    //  0.5, 0.2, 0.1, 0.05: each the best at every rung so far → run all 27 steps
    //  0.8, 0.9, 0.95, 0.99: rung 1 (n = 3, 5, 6, 8: keep 1, 1, 2, 2; 2, 4, 5, 7 ahead) → stop at step 1
    //  0.3: rung 1 with n = 9, keep 3, and 0.2, 0.1, 0.05 ahead → stop at step 1
    //  0.15: rung 1 (n = 10, keep 3, 2 ahead) goes on; rung 3 (n = 5, keep 1, 2 ahead) → stop at step 3
    //  0.07: rung 1 (n = 11, keep 3, 1 ahead), rung 3 (n = 6, keep 2, 1 ahead) go on; rung 9 (n = 5, keep 1, 1 ahead) → stop at step 9
    const qs = [0.5, 0.2, 0.8, 0.1, 0.9, 0.95, 0.05, 0.99, 0.3, 0.15, 0.07];
    const expected: Record<number, number | null> = { 0.5: null, 0.2: null, 0.1: null, 0.05: null, 0.8: 1, 0.9: 1, 0.95: 1, 0.99: 1, 0.3: 1, 0.15: 3, 0.07: 9 };
    const logged: number[] = [];
    const r = await search({
      space: { q: qs },
      pruner: { type: 'halving', minResource: 1, reductionFactor: 3, maxResource: 27 },
      run: curve(27),
      onTrial: (t) => void logged.push(t.index),
    });
    const byRung = new Map<string, number>();
    for (const t of r.trials) {
      const key = t.status === 'pruned' ? `step ${t.prunedAt}` : t.status;
      byRung.set(key, (byRung.get(key) ?? 0) + 1);
    }
    console.log(`[halving] ${r.trials.map((t) => `${t.config.q}:${t.status}${t.prunedAt !== undefined ? `@${t.prunedAt}` : ''}`).join(' ')}; by rung: ${[...byRung].map(([k, n]) => `${k} ${n}`).join(', ')}`);
    expect(logged).toEqual(qs.map((_, i) => i));
    for (const t of r.trials) {
      const q = t.config.q as number;
      const stop = expected[q]!;
      expect(t.reports.length).toBe(t.steps);
      if (stop === null) expect([q, t.status, t.steps, t.prunedAt]).toEqual([q, 'ok', 27, undefined]);
      else expect([q, t.status, t.steps, t.prunedAt]).toEqual([q, 'pruned', stop, stop]);
      expect(t.value).toBeCloseTo(q + 1 / t.steps!, 12);
    }
    expect(r.best!.config.q).toBe(0.05);
    expect(r.best!.status).toBe('ok');
    expect(r.table).toContain('pruned at step 9');
    // 11 trials ran 4·27 + 5·1 + 3 + 9 = 125 steps instead of 297
    expect(r.trials.reduce((a, t) => a + t.steps!, 0)).toBe(125);
  });

  it("'halving' means r = 1, η = 3; higher is better in 'max' mode; steps default to the report's index", async () => {
    const qs = [0.5, 0.2, 0.8, 0.1, 0.9, 0.95, 0.05, 0.99, 0.3, 0.15, 0.07];
    // the same curves mirrored: maximise −value; reports without steps (index 0, 1, …) reach rung 1 at the second report
    const r = await search({
      space: { q: qs },
      pruner: 'halving',
      mode: 'max',
      run: (c, ctx) => {
        const q = c.q as number;
        let n = 0;
        for (let i = 0; i < 27; i++) {
          n = i + 1;
          if (ctx.report(-(q + 1 / (i + 1)))) break;
        }
        return { value: -(q + 1 / n), steps: n };
      },
    });
    const stops = r.trials.map((t) => (t.status === 'pruned' ? t.prunedAt : null));
    // the rungs are indices 1, 3, 9, 27 (no end): the stops are those of the first test, on indices
    expect(stops).toEqual([null, null, 1, null, 1, 1, null, 1, 1, 3, 9]);
    expect(r.best!.config.q).toBe(0.05);
  });

  it('a minimum early-stopping rate moves the first rung to r·η^s', async () => {
    const qs = [0.5, 0.8, 0.9];
    const r = await search({ space: { q: qs }, pruner: { type: 'halving', minResource: 2, reductionFactor: 2, minEarlyStoppingRate: 2, maxResource: 20 }, run: curve(20) });
    // rungs at 8 and 16: 0.8 (n = 2, keep 1, one ahead) stops at 8; so does 0.9 (n = 3, keep 1)
    expect(r.trials.map((t) => [t.status, t.steps])).toEqual([
      ['ok', 20],
      ['pruned', 8],
      ['pruned', 8],
    ]);
  });
});

describe('search: Hyperband', () => {
  it('deals trials to brackets by Hyperband’s n_s, prunes within a bracket at its own rungs', async () => {
    // r = 1, R = 27, η = 3: s_max = 3, brackets 0..3 with first rungs 1, 3, 9, 27 (bracket 3: none
    // below R, so it never prunes) and shares n = 27, 12, 6, 4 of 49
    const qs = Array.from({ length: 49 }, (_, i) => ((i * 37) % 49) / 49); // a fixed shuffle of 0 … 48/49
    const r = await search({ space: { q: qs }, pruner: { type: 'hyperband', minResource: 1, maxResource: 27, reductionFactor: 3 }, run: curve(27) });
    const count = [0, 1, 2, 3].map((b) => r.trials.filter((t) => t.bracket === b).length);
    const pruned = [0, 1, 2, 3].map((b) => r.trials.filter((t) => t.bracket === b && t.status === 'pruned').length);
    console.log(`[hyperband] trials per bracket ${count.join(', ')}; pruned per bracket ${pruned.join(', ')}; steps run ${r.trials.reduce((a, t) => a + t.steps!, 0)} of ${49 * 27}`);
    expect(count).toEqual([27, 12, 6, 4]);
    const rungs = [
      [1, 3, 9],
      [3, 9],
      [9],
      [],
    ];
    for (const t of r.trials) {
      const b = t.bracket!;
      if (t.status === 'pruned') expect(rungs[b]).toContain(t.prunedAt);
      else expect([t.status, t.steps]).toEqual(['ok', 27]);
      // a trial is pruned only by a better trial of its own bracket that came before it
      const first = r.trials.find((u) => u.bracket === b)!;
      if (t === first) expect(t.status).toBe('ok');
      if (t.status === 'pruned') expect(r.trials.some((u) => u.index < t.index && u.bracket === b && (u.config.q as number) < (t.config.q as number))).toBe(true);
    }
    expect(pruned[3]).toBe(0);
    expect(pruned[0]).toBeGreaterThan(pruned[2]!);
    expect(r.best!.config.q).toBe(0);
    expect(r.best!.status).toBe('ok');
  });

  it('refuses bad pruner settings, naming them', async () => {
    const run = (): number => 1;
    const space = { q: [1] };
    await expect(search({ space, run, pruner: { type: 'hyperband' } as never })).rejects.toThrow(/^search: pruner\.maxResource is needed by hyperband/);
    await expect(search({ space, run, pruner: { type: 'halving', reductionFactor: 1 } })).rejects.toThrow(/^search: pruner\.reductionFactor must be .*got 1$/);
    await expect(search({ space, run, pruner: { type: 'halving', minResource: 0 } })).rejects.toThrow(/^search: pruner\.minResource .*got 0$/);
    await expect(search({ space, run, pruner: { type: 'halving', maxResource: 1 } })).rejects.toThrow(/^search: pruner\.maxResource .*got 1$/);
    await expect(search({ space, run, pruner: { type: 'halving', minEarlyStoppingRate: 0.5 } })).rejects.toThrow(/^search: pruner\.minEarlyStoppingRate .*got 0\.5$/);
    await expect(search({ space, run, pruner: { type: 'hyperband', maxResource: 9, minEarlyStoppingRate: 1 } as never })).rejects.toThrow(/^search: pruner: unknown option 'minEarlyStoppingRate'/);
    await expect(search({ space, run, pruner: 'asha' as never })).rejects.toThrow(/^search: pruner must be .*got 'asha'$/);
    await expect(search({ space, run, pruner: { type: 'bogus' } as never })).rejects.toThrow(/^search: pruner\.type must be one of .*got 'bogus'$/);
  });
});
