/**
 * The cost model (src/distributed/cost_model.ts) on cases worked out by hand: GPT-2's parameter
 * counts (as Hugging Face's checkpoints have them), FLOPs per token, ring collectives, ZeRO's
 * sharding, Korthikanti et al.'s activation bytes, the pipeline bubble, and the errors that bad
 * layouts raise.
 */
import { describe, expect, it } from 'vitest';
import {
  ASSUMED_MFU,
  GPT2_SIZES,
  H100_SXM,
  activationBytesPerLayer,
  collectiveTime,
  estimate,
  flopsPerToken,
  gptParamCount,
  groupLink,
  memoryPerRank,
  stepTime,
  type DeviceSpec,
  type GPTRunConfig,
} from '../src/distributed/cost_model.js';

const gpt2 = (size: keyof typeof GPT2_SIZES, microBatch = 8, globalBatch = 512): GPTRunConfig => ({ ...GPT2_SIZES[size], vocabSize: 50257, seqLen: 1024, microBatch, globalBatch });

// A device whose links cost nothing: what is left is compute and the optimizer.
const freeLinks: DeviceSpec = { ...H100_SXM, intraNode: { busBandwidth: 1e30, latency: 0 }, interNode: { busBandwidth: 1e30, latency: 0 } };

describe('cost model: counts', () => {
  it('counts the parameters of the four GPT-2 sizes (tied embeddings)', () => {
    expect(gptParamCount(gpt2('124M')).total).toBe(124_439_808);
    expect(gptParamCount(gpt2('350M')).total).toBe(354_823_168);
    expect(gptParamCount(gpt2('774M')).total).toBe(774_030_080);
    expect(gptParamCount(gpt2('1.5B')).total).toBe(1_557_611_200);
    const c = gptParamCount(gpt2('124M'));
    expect(c.perLayer).toBe(12 * 768 * 768 + 13 * 768); // 7,087,872
    expect(c.wte + c.wpe + c.finalNorm).toBe(50257 * 768 + 1024 * 768 + 2 * 768);
  });

  it('counts 6·(12·L·h² + V·h) + 12·L·s·h FLOPs per token, and one more forward of the blocks when recomputing', () => {
    const { model, hardware } = flopsPerToken(gpt2('124M'), true);
    const weights = 12 * 12 * 768 * 768 + 50257 * 768; // 123,532,032
    expect(model).toBe(6 * weights + 12 * 12 * 1024 * 768);
    expect(hardware - model).toBe(12 * (24 * 768 * 768 + 4 * 1024 * 768));
    expect(flopsPerToken(gpt2('124M')).hardware).toBe(model);
  });
});

describe('cost model: collectives', () => {
  const link = { busBandwidth: 1e9, latency: 1e-6 };

  it('costs nothing on one rank', () => {
    expect(collectiveTime('allReduce', 1e9, 1, link)).toBe(0);
    expect(collectiveTime('allGather', 1e9, 1, link)).toBe(0);
  });

  it('follows the ring: α·(p−1) + (p−1)/p·n/β per reduce-scatter or all-gather, twice that for an allreduce', () => {
    // p = 4, n = 4 GB: reduce-scatter = 3 µs + 3/4 · 4 s = 3.000003 s.
    expect(collectiveTime('reduceScatter', 4e9, 4, link)).toBeCloseTo(3 + 3e-6, 12);
    expect(collectiveTime('allGather', 4e9, 4, link)).toBeCloseTo(3 + 3e-6, 12);
    expect(collectiveTime('allReduce', 4e9, 4, link)).toBeCloseTo(6 + 6e-6, 12);
    // Two ranks: an allreduce moves n/β, whatever the size (the busbw definition).
    expect(collectiveTime('allReduce', 8e9, 2, { busBandwidth: 8e9, latency: 0 })).toBe(1);
  });

  it('picks NVLink inside a node and the NICs across nodes', () => {
    expect(groupLink(H100_SXM, 8, 1)).toBe(H100_SXM.intraNode);
    // dp 16: 8 members per node, each with its NIC: min(370, 8·46) GB/s; 2 of 16 hops cross nodes.
    const dp16 = groupLink(H100_SXM, 16, 1);
    expect(dp16.busBandwidth).toBe(368e9);
    expect(dp16.latency).toBeCloseTo((2 * 5e-6 + 14 * 2e-6) / 16, 15);
    // dp 2 across two nodes of tp 8: one member per node, one NIC.
    expect(groupLink(H100_SXM, 2, 8)).toEqual({ busBandwidth: 46e9, latency: 5e-6 });
  });
});

describe('cost model: memory', () => {
  it('keeps 16 bytes per parameter for bf16 Adam (2 + 2 + 12) and 16 for fp32 (4 + 4 + 8)', () => {
    const n = gptParamCount(gpt2('124M')).total;
    const states = (m: ReturnType<typeof memoryPerRank>): number => m.parameters + m.gradients + m.optimizerState + m.masterWeights;
    const bf = memoryPerRank(gpt2('124M'), { dp: 1, tp: 1, pp: 1 });
    expect([bf.parameters, bf.gradients, bf.masterWeights, bf.optimizerState]).toEqual([2 * n, 2 * n, 4 * n, 8 * n]);
    expect(states(memoryPerRank(gpt2('124M'), { dp: 1, tp: 1, pp: 1, precision: 'fp32' }))).toBe(16 * n);
  });

  it('ZeRO-1 divides the optimizer state by dp, ZeRO-2 the gradients too, ZeRO-3 the parameters too', () => {
    const cfg = gpt2('350M');
    const dp1 = memoryPerRank(cfg, { dp: 1, tp: 1, pp: 1, zeroStage: 1 });
    const z1 = memoryPerRank(cfg, { dp: 8, tp: 1, pp: 1, zeroStage: 1 });
    const z2 = memoryPerRank(cfg, { dp: 8, tp: 1, pp: 1, zeroStage: 2 });
    const z3 = memoryPerRank(cfg, { dp: 8, tp: 1, pp: 1, zeroStage: 3 });
    expect(z1.optimizerState).toBe(dp1.optimizerState / 8);
    expect(z1.masterWeights).toBe(dp1.masterWeights / 8);
    expect([z1.parameters, z1.gradients]).toEqual([dp1.parameters, dp1.gradients]);
    expect(z2.gradients).toBe(dp1.gradients / 8);
    expect(z2.parameters).toBe(dp1.parameters);
    expect(z3.parameters).toBe(dp1.parameters / 8);
    expect(z3.workspace).toBeGreaterThan(0);
    expect(z1.activations).toBe(dp1.activations); // ZeRO does not touch activations
  });

  it("gives Korthikanti et al.'s 34·sbh + 5·as²b per layer, halved by tp = 2 with sequence parallelism", () => {
    const cfg = gpt2('124M', 4);
    const [s, b, h, a] = [1024, 4, 768, 12];
    const paper = activationBytesPerLayer(cfg, { dp: 1, tp: 1, pp: 1, flashAttention: false });
    expect(paper).toBe(34 * s * b * h + 5 * a * s * s * b);
    expect(activationBytesPerLayer(cfg, { dp: 1, tp: 2, pp: 1, flashAttention: false })).toBe(paper / 2);
    // Without sequence parallelism: sbh·(10 + 24/t) + 5as²b/t.
    expect(activationBytesPerLayer(cfg, { dp: 1, tp: 2, pp: 1, flashAttention: false, sequenceParallel: false })).toBe(s * b * h * (10 + 12) + (5 * a * s * s * b) / 2);
    // A fused attention keeps a logsumexp per row instead of the s×s scores.
    expect(activationBytesPerLayer(cfg, { dp: 1, tp: 1, pp: 1 })).toBe(34 * s * b * h + 4 * a * s * b);
    // fp32 activations: 4 bytes for every value but the 1-byte masks.
    expect(activationBytesPerLayer(cfg, { dp: 1, tp: 1, pp: 1, precision: 'fp32' })).toBe(66 * s * b * h + 4 * a * s * b);
  });

  it('keeps only each block’s input with recomputation, plus one block being recomputed', () => {
    const cfg = gpt2('124M', 4);
    const full = memoryPerRank(cfg, { dp: 1, tp: 1, pp: 1 });
    const ckpt = memoryPerRank(cfg, { dp: 1, tp: 1, pp: 1, checkpointing: true });
    const layer = activationBytesPerLayer(cfg, { dp: 1, tp: 1, pp: 1 });
    const output = 2 * 2 * 1024 * 4 * (768 + 50257);
    expect(full.activations).toBe(12 * layer + output);
    expect(ckpt.activations).toBe(12 * 2 * 1024 * 4 * 768 + layer + output);
  });

  it('holds p micro-batches on the first stage with 1F1B and all m with GPipe', () => {
    const cfg = gpt2('350M', 2, 64); // m = 64 / (2·2) = 16
    const f1b = memoryPerRank(cfg, { dp: 2, tp: 1, pp: 4 });
    const gpipe = memoryPerRank(cfg, { dp: 2, tp: 1, pp: 4, schedule: 'gpipe' });
    expect(f1b.stage).toBe('first');
    expect(f1b.inFlightMicroBatches).toBe(4);
    expect(gpipe.inFlightMicroBatches).toBe(16);
    expect(gpipe.activations).toBeGreaterThan(3 * f1b.activations);
  });
});

describe('cost model: step time', () => {
  it('idles (p−1)/(m+p−1) of a pipelined step', () => {
    const cfg = gpt2('350M', 2, 24); // dp 1, m = 12, p = 4: 3/15
    const t = stepTime(cfg, { dp: 1, tp: 1, pp: 4 }, freeLinks);
    expect(t.microBatches).toBe(12);
    expect(t.bubbleFraction).toBeCloseTo(3 / 15, 15);
    const slot = t.forward + t.backward;
    expect(t.bubble).toBeCloseTo(3 * slot, 12);
    expect(t.total - t.optimizer - t.dpExposed).toBeCloseTo(15 * slot, 12);
  });

  it('computes FLOPs / achieved FLOP/s on one device, with a backward of twice the forward', () => {
    const cfg = gpt2('124M', 8, 64);
    const t = stepTime(cfg, { dp: 1, tp: 1, pp: 1 }, H100_SXM);
    const flops = flopsPerToken(cfg).hardware * 64 * 1024;
    expect(t.compute).toBeCloseTo(flops / H100_SXM.achievedFlops.bf16, 12);
    expect(t.backward).toBeCloseTo(2 * t.forward, 12);
    expect([t.tpComm, t.ppComm, t.dpComm, t.bubble]).toEqual([0, 0, 0, 0]);
    // 28 bytes of optimizer traffic per parameter.
    expect(t.optimizer).toBeCloseTo((28 * gptParamCount(cfg).total) / H100_SXM.memoryBandwidth, 12);
    const est = estimate(cfg, { dp: 1, tp: 1, pp: 1 }, H100_SXM);
    expect(est.tokensPerSecond).toBeCloseTo((64 * 1024) / t.total, 6);
    expect(est.mfu).toBeLessThan(ASSUMED_MFU);
    expect(est.mfu).toBeGreaterThan(0.95 * ASSUMED_MFU);
  });

  it('adds 4 allreduces of b·s·h per block for tensor parallelism (6 when recomputing)', () => {
    const cfg = gpt2('350M', 8, 64); // m = 8
    const t = stepTime(cfg, { dp: 1, tp: 2, pp: 1 }, H100_SXM);
    const one = collectiveTime('allReduce', 8 * 1024 * 1024 * 2, 2, H100_SXM.intraNode);
    expect(t.tpComm).toBeCloseTo(8 * 24 * 4 * one, 12);
    const r = stepTime(cfg, { dp: 1, tp: 2, pp: 1, checkpointing: true }, H100_SXM);
    expect(r.tpComm).toBeCloseTo(8 * 24 * 6 * one, 12);
  });

  it('reduces the gradients once (ZeRO-0, 1) or per micro-batch (ZeRO-2), gathers parameters 2m more times for ZeRO-3, and hides some with overlap', () => {
    const cfg = gpt2('124M', 8, 256); // dp 8: m = 4
    const lay = { dp: 8, tp: 1, pp: 1 } as const;
    const n = gptParamCount(cfg).total * 2;
    const link = H100_SXM.intraNode;
    const z0 = stepTime(cfg, { ...lay, overlap: false }, H100_SXM);
    const buckets = Math.ceil(n / (25 * 2 ** 20));
    expect(z0.dpComm).toBeCloseTo(collectiveTime('allReduce', n, 8, link) + (buckets - 1) * 14 * link.latency, 12);
    expect(z0.dpExposed).toBe(z0.dpComm);
    const rs = stepTime(cfg, { ...lay, zeroStage: 1, overlap: false }, H100_SXM).dpComm;
    expect(rs).toBeCloseTo(z0.dpComm, 12); // reduce-scatter + all-gather = allreduce
    const z2 = stepTime(cfg, { ...lay, zeroStage: 2, overlap: false }, H100_SXM).dpComm;
    expect(z2).toBeCloseTo(((4 + 1) / 2) * z0.dpComm, 12);
    const z3 = stepTime(cfg, { ...lay, zeroStage: 3, overlap: false }, H100_SXM).dpComm;
    expect(z3).toBeCloseTo(4 * 3 * (z0.dpComm / 2), 12);
    const hidden = stepTime(cfg, lay, H100_SXM);
    expect(hidden.dpExposed).toBeLessThan(z0.dpExposed);
    expect(hidden.total).toBeLessThan(z0.total);
  });
});

describe('cost model: bad input', () => {
  const cfg = gpt2('124M');
  it('names the function and the values', () => {
    expect(() => estimate(cfg, { dp: 8, tp: 5, pp: 1 }, H100_SXM)).toThrow(/^estimate: tp \(5\) must divide nHead \(12\)/);
    expect(() => memoryPerRank(cfg, { dp: 1, tp: 1, pp: 5 })).toThrow(/^memoryPerRank: pp \(5\) must divide nLayer \(12\)/);
    expect(() => stepTime(cfg, { dp: 1.5, tp: 1, pp: 1 }, H100_SXM)).toThrow(/^stepTime: dp must be an integer.*1\.5/);
    expect(() => estimate(cfg, { dp: 3, tp: 1, pp: 1 }, H100_SXM)).toThrow(/^estimate: globalBatch \(512\) must be a multiple of dp·microBatch \(3·8 = 24\)/);
    expect(() => estimate(cfg, { dp: 2, tp: 1, pp: 2, zeroStage: 2 }, H100_SXM)).toThrow(/^estimate: zeroStage 2 with pp \(2\) > 1/);
    expect(() => estimate(cfg, { dp: 1, tp: 1, pp: 1, zeroStage: 4 as never }, H100_SXM)).toThrow(/^estimate: zeroStage must be 0, 1, 2 or 3, got 4/);
    expect(() => activationBytesPerLayer({ ...cfg, nEmbd: 770 }, { dp: 1, tp: 1, pp: 1 })).toThrow(/^activationBytesPerLayer: nHead \(12\) must divide nEmbd \(770\)/);
    expect(() => gptParamCount({ nLayer: -1, nEmbd: 768, vocabSize: 50257, seqLen: 1024 })).toThrow(/^gptParamCount: nLayer must be an integer ≥ 1, got -1/);
    expect(() => collectiveTime('allReduce', 1, 0, H100_SXM.intraNode)).toThrow(/^collectiveTime: ranks must be an integer ≥ 1, got 0/);
    expect(() => collectiveTime('broadcast' as never, 1, 2, H100_SXM.intraNode)).toThrow(/^collectiveTime: kind must be .*got 'broadcast'/);
    expect(() => stepTime(cfg, { dp: 1, tp: 1, pp: 1 }, { ...H100_SXM, memoryBandwidth: 0 })).toThrow(/^stepTime: device\.memoryBandwidth must be a number > 0, got 0/);
    expect(() => groupLink(H100_SXM, 0, 1)).toThrow(/^groupLink: size must be an integer ≥ 1, got 0/);
  });
});
