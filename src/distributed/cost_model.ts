/**
 * A cost model of GPT training on many devices: memory per rank and step time for a layout of
 * data (dp), tensor (tp) and pipeline (pp) parallelism with ZeRO stages 0–3, from a device's
 * achieved FLOP/s and memory bandwidth and its links' bus bandwidth and latency. Pure arithmetic
 * (no Node module), so it runs anywhere; `npm run bench -- scaling` prints its tables and checks
 * it against 1- and 2-process runs of kiln on the machine at hand; docs/scaling.md explains it.
 *
 * Sources of the formulas (each is cited again where it is used):
 * - Parameter count and FLOPs: Kaplan et al. 2020, "Scaling Laws for Neural Language Models"
 *   (C ≈ 6N per token) and Chowdhery et al. 2022, "PaLM", appendix B (the attention term
 *   12·L·H·Q·T per token, i.e. 12·L·s·h); Narayanan et al. 2021, "Efficient Large-Scale Language
 *   Model Training on GPU Clusters using Megatron-LM" (per-layer 24·b·s·h² + 4·b·s²·h forward
 *   FLOPs, recomputation as one more forward, the pipeline bubble (p−1)/(m+p−1), the
 *   scatter/gather of activations between stages).
 * - Activation memory: Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
 *   Transformer Models", section 4 (s·b·h·(34 + 5·a·s/h) bytes per layer with 16-bit activations;
 *   10 + 24/t without sequence parallelism; everything over t with it; 2·s·b·h per layer with
 *   full recomputation; in-flight micro-batches of 1F1B).
 * - Model-state memory and ZeRO: Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward
 *   Training Trillion Parameter Models" (2Ψ + 2Ψ + 12Ψ bytes for mixed-precision Adam, the three
 *   stages, and their communication: 2Ψ per step for stages 1–2 as for an allreduce, 3Ψ for 3).
 * - Collectives: the ring algorithms' cost (Thakur, Rabenseifner and Gropp 2005, "Optimization
 *   of Collective Communication Operations in MPICH"; Patarasuk and Yuan 2009), in the
 *   "bus bandwidth" form that NVIDIA's nccl-tests reports (nccl-tests/doc/PERFORMANCE.md).
 * @module
 */
import { checkNumber, show } from '../tensor/validate.js';

/** Numeric format of a run: bf16 mixed precision (fp32 master weights and Adam moments), or fp32. */
export type Precision = 'bf16' | 'fp32';

/** ZeRO stage: 0 (plain data parallelism), 1 (optimizer state), 2 (+ gradients), 3 (+ parameters) sharded over dp. */
export type ZeroStage = 0 | 1 | 2 | 3;

/** A GPT-2-style model (tied embeddings, learned positions, MLP 4×, biases) and the batch it trains on. */
export interface GPTRunConfig {
  /** Transformer blocks (L). */
  nLayer: number;
  /** Width (h). */
  nEmbd: number;
  /** Attention heads (a). */
  nHead: number;
  /** Vocabulary (V). */
  vocabSize: number;
  /** Tokens per sequence (s); also the number of learned positions. */
  seqLen: number;
  /** Sequences per micro-batch on one rank (b). */
  microBatch: number;
  /** Sequences per optimizer step over all ranks; a multiple of dp·microBatch. */
  globalBatch: number;
}

/** How the work is split over `dp·tp·pp` devices (ranks ordered tp fastest, then dp, then pp, as Megatron-LM). */
export interface ParallelLayout {
  /** Data-parallel replicas. */
  dp: number;
  /** Tensor-parallel ranks (Megatron's column/row split of attention and MLP); must divide nHead. */
  tp: number;
  /** Pipeline stages; must divide nLayer. */
  pp: number;
  /** ZeRO stage over the dp group (default 0). Stages 2 and 3 are not combined with pp > 1 (as DeepSpeed). */
  zeroStage?: ZeroStage;
  /** Default 'bf16'. */
  precision?: Precision;
  /** Recompute every block in the backward pass, keeping only its input (default false). */
  checkpointing?: boolean;
  /** With tp > 1: Megatron's sequence parallelism, so layer norms and dropout are split too (default true). */
  sequenceParallel?: boolean;
  /** Fused attention that keeps no s×s matrix, only a row statistic (default true: kiln's attention is such a kernel). */
  flashAttention?: boolean;
  /** Pipeline schedule: 'gpipe' (all forwards, then all backwards) or '1f1b' (PipeDream-Flush; the default). */
  schedule?: 'gpipe' | '1f1b';
  /** Overlap the dp group's gradient reduction with the backward pass, and the parameter gathers with compute (default true). */
  overlap?: boolean;
  /** Gradient bucket size of the dp reduction (default 25 MiB, PyTorch DDP's bucket_cap_mb). */
  bucketBytes?: number;
}

/** One kind of link as NCCL's ring collectives see it. */
export interface LinkSpec {
  /** Bus bandwidth per rank, bytes/s (nccl-tests' "busbw": an allreduce of n bytes takes 2(p−1)/p·n/busbw). */
  busBandwidth: number;
  /** Latency per ring step, seconds (α). */
  latency: number;
}

/** A device and its links: the numbers the model needs. */
export interface DeviceSpec {
  name: string;
  /** Dense peak FLOP/s by precision (for MFU). */
  peakFlops: Record<Precision, number>;
  /** FLOP/s a training step achieves, all of its kernels together, by precision. */
  achievedFlops: Record<Precision, number>;
  /** Bytes/s a streaming kernel (the optimizer update) achieves. */
  memoryBandwidth: number;
  /** Device memory, bytes. */
  memoryBytes: number;
  /** Devices that share the fast link. */
  gpusPerNode: number;
  /** The link within a node (NVLink, shared memory). */
  intraNode: LinkSpec;
  /** The link between nodes, per device (one NIC per GPU). */
  interNode: LinkSpec;
}

/** Parameters of a GPT-2-style model with tied embeddings. */
export interface ParamCount {
  /** Every parameter: L·perLayer + wte + wpe + finalNorm. */
  total: number;
  /** One block: 12h² + 13h. */
  perLayer: number;
  /** Token embedding (= the tied output head): V·h. */
  wte: number;
  /** Position embedding: s·h. */
  wpe: number;
  /** Final layer norm: 2h. */
  finalNorm: number;
}

/** Bytes held by one rank, the worst rank (the pipeline stage that holds the most). */
export interface MemoryBreakdown {
  /** Working weights (bf16 or fp32). */
  parameters: number;
  gradients: number;
  /** Adam's two moments (fp32). */
  optimizerState: number;
  /** fp32 master weights (bf16 runs only). */
  masterWeights: number;
  activations: number;
  /** ZeRO-3's gathered layers (the one in use and the one prefetched). */
  workspace: number;
  total: number;
  /** Which stage these bytes are for. */
  stage: 'only' | 'first' | 'last';
  /** Parameters held by that stage's rank (before ZeRO sharding). */
  params: number;
  /** Micro-batches whose activations that stage holds at once. */
  inFlightMicroBatches: number;
}

/** Seconds of one optimizer step on every rank, and where they go. */
export interface StepTimeBreakdown {
  /** Micro-batches per step per dp replica: globalBatch / (dp·microBatch). */
  microBatches: number;
  /** Forward of one micro-batch on the slowest stage, its tensor-parallel collectives included. */
  forward: number;
  /** Backward of one micro-batch on the slowest stage (recomputation and collectives included). */
  backward: number;
  /** Pure compute of the step (FLOPs / achieved FLOP/s), no bubble and no communication. */
  compute: number;
  /** Pipeline idle time: (p−1) slots. */
  bubble: number;
  /** (p−1)/(m+p−1). */
  bubbleFraction: number;
  /** Tensor-parallel collectives per step (on the critical path). */
  tpComm: number;
  /** Pipeline point-to-point sends per step (on the critical path). */
  ppComm: number;
  /** Data-parallel / ZeRO collectives per step, in all. */
  dpComm: number;
  /** The part of dpComm not hidden behind compute. */
  dpExposed: number;
  /** The optimizer update (memory-bound). */
  optimizer: number;
  total: number;
}

/** What {@link estimate} returns. */
export interface CostEstimate {
  memory: MemoryBreakdown;
  time: StepTimeBreakdown;
  tokensPerStep: number;
  tokensPerSecond: number;
  /** Model FLOPs per token, 6·(12·L·h² + V·h) + 12·L·s·h (no recomputation). */
  modelFlopsPerToken: number;
  /** Model FLOPs utilisation: model FLOPs per second over the peak of every device. */
  mfu: number;
  /** memory.total ≤ device.memoryBytes. */
  fits: boolean;
}

// ---- validation ------------------------------------------------------------------------------

const POS_INT = { integer: true, min: 1 } as const;

const CONFIG_KEYS = ['nLayer', 'nEmbd', 'nHead', 'vocabSize', 'seqLen', 'microBatch', 'globalBatch'];
const LAYOUT_KEYS = ['dp', 'tp', 'pp', 'zeroStage', 'precision', 'checkpointing', 'sequenceParallel', 'flashAttention', 'schedule', 'overlap', 'bucketBytes'];

// a plain object whose keys are all known (a misspelt one is an error, not a default)
function checkRecord(op: string, name: string, v: unknown, keys: readonly string[] | null): void {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${op}: ${name} must be an object, got ${show(v)}`);
  if (keys) for (const k of Object.keys(v)) if (!keys.includes(k)) throw new Error(`${op}: unknown ${name} key '${k}' (keys: ${keys.join(', ')})`);
}

function checkConfig(op: string, cfg: GPTRunConfig): void {
  checkRecord(op, 'config', cfg, CONFIG_KEYS);
  for (const k of ['nLayer', 'nEmbd', 'nHead', 'vocabSize', 'seqLen', 'microBatch', 'globalBatch'] as const) checkNumber(op, k, cfg[k], POS_INT);
  if (cfg.nEmbd % cfg.nHead !== 0) throw new Error(`${op}: nHead (${cfg.nHead}) must divide nEmbd (${cfg.nEmbd})`);
}

function checkShape(op: string, cfg: Pick<GPTRunConfig, 'nLayer' | 'nEmbd' | 'vocabSize' | 'seqLen'>): void {
  checkRecord(op, 'config', cfg, null);
  for (const k of ['nLayer', 'nEmbd', 'vocabSize', 'seqLen'] as const) checkNumber(op, k, cfg[k], POS_INT);
}

interface Resolved {
  dp: number;
  tp: number;
  pp: number;
  zero: ZeroStage;
  precision: Precision;
  ckpt: boolean;
  sp: boolean;
  flash: boolean;
  schedule: 'gpipe' | '1f1b';
  overlap: boolean;
  bucket: number;
  m: number;
}

function resolve(op: string, cfg: GPTRunConfig, layout: ParallelLayout): Resolved {
  checkConfig(op, cfg);
  checkRecord(op, 'layout', layout, LAYOUT_KEYS);
  const dp = checkNumber(op, 'dp', layout.dp, POS_INT);
  const tp = checkNumber(op, 'tp', layout.tp, POS_INT);
  const pp = checkNumber(op, 'pp', layout.pp, POS_INT);
  if (cfg.nHead % tp !== 0) throw new Error(`${op}: tp (${tp}) must divide nHead (${cfg.nHead}): each tensor-parallel rank takes whole heads`);
  if (cfg.nLayer % pp !== 0) throw new Error(`${op}: pp (${pp}) must divide nLayer (${cfg.nLayer}): each stage takes the same number of blocks`);
  if (cfg.globalBatch % (dp * cfg.microBatch) !== 0) throw new Error(`${op}: globalBatch (${cfg.globalBatch}) must be a multiple of dp·microBatch (${dp}·${cfg.microBatch} = ${dp * cfg.microBatch})`);
  const zero = layout.zeroStage ?? 0;
  if (zero !== 0 && zero !== 1 && zero !== 2 && zero !== 3) throw new Error(`${op}: zeroStage must be 0, 1, 2 or 3, got ${show(layout.zeroStage)}`);
  if (zero >= 2 && pp > 1) throw new Error(`${op}: zeroStage ${zero} with pp (${pp}) > 1 is not modelled: ZeRO-2/3 reduce or gather per micro-batch, which pipelining multiplies (DeepSpeed refuses it too); use zeroStage 0 or 1`);
  const precision = layout.precision ?? 'bf16';
  if (precision !== 'bf16' && precision !== 'fp32') throw new Error(`${op}: precision must be 'bf16' or 'fp32', got ${show(layout.precision)}`);
  const schedule = layout.schedule ?? '1f1b';
  if (schedule !== '1f1b' && schedule !== 'gpipe') throw new Error(`${op}: schedule must be '1f1b' or 'gpipe', got ${show(layout.schedule)}`);
  for (const k of ['checkpointing', 'sequenceParallel', 'flashAttention', 'overlap'] as const) {
    if (layout[k] !== undefined && typeof layout[k] !== 'boolean') throw new Error(`${op}: ${k} must be a boolean, got ${show(layout[k])}`);
  }
  const bucket = layout.bucketBytes === undefined ? 25 * 2 ** 20 : checkNumber(op, 'bucketBytes', layout.bucketBytes, { min: 1 });
  return {
    dp,
    tp,
    pp,
    zero,
    precision,
    ckpt: layout.checkpointing ?? false,
    sp: tp > 1 && (layout.sequenceParallel ?? true),
    flash: layout.flashAttention ?? true,
    schedule,
    overlap: layout.overlap ?? true,
    bucket,
    m: cfg.globalBatch / (dp * cfg.microBatch),
  };
}

function checkLink(op: string, name: string, link: LinkSpec): void {
  if (link === null || typeof link !== 'object' || Array.isArray(link)) throw new Error(`${op}: ${name} must be a LinkSpec, got ${show(link)}`);
  checkNumber(op, `${name}.busBandwidth`, link.busBandwidth, { min: 0, minExclusive: true });
  checkNumber(op, `${name}.latency`, link.latency, { min: 0 });
}

function checkDevice(op: string, d: DeviceSpec): void {
  if (d === null || typeof d !== 'object' || Array.isArray(d)) throw new Error(`${op}: device must be a DeviceSpec, got ${show(d)}`);
  for (const p of ['bf16', 'fp32'] as const) {
    checkNumber(op, `device.achievedFlops.${p}`, d.achievedFlops?.[p], { min: 0, minExclusive: true });
    checkNumber(op, `device.peakFlops.${p}`, d.peakFlops?.[p], { min: 0, minExclusive: true });
  }
  checkNumber(op, 'device.memoryBandwidth', d.memoryBandwidth, { min: 0, minExclusive: true });
  checkNumber(op, 'device.memoryBytes', d.memoryBytes, { min: 0, minExclusive: true });
  checkNumber(op, 'device.gpusPerNode', d.gpusPerNode, POS_INT);
  checkLink(op, 'device.intraNode', d.intraNode);
  checkLink(op, 'device.interNode', d.interNode);
}

// ---- counts ----------------------------------------------------------------------------------

/**
 * Parameters of a GPT-2-style model with tied embeddings. A block has ln_1 (2h), c_attn
 * (3h² + 3h), attention c_proj (h² + h), ln_2 (2h), c_fc (4h² + 4h) and MLP c_proj (4h² + h):
 * 12h² + 13h. GPT-2 124M (12 × 768, V 50257, s 1024) has 124,439,808.
 *
 * @example
 * gptParamCount({ nLayer: 12, nEmbd: 768, vocabSize: 50257, seqLen: 1024 }).total; // 124439808
 */
export function gptParamCount(cfg: Pick<GPTRunConfig, 'nLayer' | 'nEmbd' | 'vocabSize' | 'seqLen'>): ParamCount {
  checkShape('gptParamCount', cfg);
  const { nLayer: L, nEmbd: h, vocabSize: V, seqLen: s } = cfg;
  const perLayer = 12 * h * h + 13 * h;
  const wte = V * h;
  const wpe = s * h;
  const finalNorm = 2 * h;
  return { total: L * perLayer + wte + wpe + finalNorm, perLayer, wte, wpe, finalNorm };
}

/**
 * FLOPs per trained token. `model`: 6·N' + 12·L·s·h, where N' = 12·L·h² + V·h are the parameters
 * that multiply (the blocks' weight matrices and the tied output head; Kaplan et al.'s 6N: a
 * forward is 2 FLOPs per weight, the backward twice that) and 12·L·s·h is attention's q·kᵀ and
 * p·v, 4·s·h per layer forward, ×3 with the backward (PaLM appendix B; causal masking is not
 * subtracted, as there). `hardware` adds what recomputation runs again: one forward of every
 * block, 24·L·h² + 4·L·s·h (Narayanan et al. 2021 count 4 passes instead of 3).
 */
export function flopsPerToken(cfg: Pick<GPTRunConfig, 'nLayer' | 'nEmbd' | 'vocabSize' | 'seqLen'>, checkpointing = false): { model: number; hardware: number } {
  checkShape('flopsPerToken', cfg);
  if (typeof checkpointing !== 'boolean') throw new Error(`flopsPerToken: checkpointing must be a boolean, got ${show(checkpointing)}`);
  const { nLayer: L, nEmbd: h, vocabSize: V, seqLen: s } = cfg;
  const model = 6 * (12 * L * h * h + V * h) + 12 * L * s * h;
  return { model, hardware: model + (checkpointing ? L * (24 * h * h + 4 * s * h) : 0) };
}

/** The kind of a collective. */
export type Collective = 'allReduce' | 'reduceScatter' | 'allGather';

/**
 * Seconds for a ring collective of `bytes` (the whole buffer, as nccl-tests' size) over `ranks`
 * ranks on `link`: reduce-scatter and all-gather take p−1 steps, each moving bytes/p per rank:
 * α·(p−1) + (p−1)/p · bytes/β; an allreduce is one of each: 2·α·(p−1) + 2·(p−1)/p · bytes/β.
 * β is the bus bandwidth, which nccl-tests defines so that exactly these formulas hold. One rank
 * costs nothing.
 */
export function collectiveTime(kind: Collective, bytes: number, ranks: number, link: LinkSpec): number {
  const op = 'collectiveTime';
  if (kind !== 'allReduce' && kind !== 'reduceScatter' && kind !== 'allGather') throw new Error(`${op}: kind must be 'allReduce', 'reduceScatter' or 'allGather', got ${show(kind)}`);
  checkNumber(op, 'bytes', bytes, { min: 0 });
  checkNumber(op, 'ranks', ranks, POS_INT);
  checkLink(op, 'link', link);
  if (ranks === 1 || bytes === 0) return 0;
  const half = link.latency * (ranks - 1) + ((ranks - 1) / ranks) * (bytes / link.busBandwidth);
  return kind === 'allReduce' ? 2 * half : half;
}

/** A collective of `bytes` sent as ⌈bytes/bucket⌉ collectives: the latency is paid per bucket. */
function bucketed(kind: Collective, bytes: number, ranks: number, link: LinkSpec, bucket: number): number {
  if (ranks === 1 || bytes === 0) return 0;
  const n = Math.ceil(bytes / bucket);
  const steps = kind === 'allReduce' ? 2 * (ranks - 1) : ranks - 1;
  return collectiveTime(kind, bytes, ranks, link) + (n - 1) * steps * link.latency;
}

/**
 * The link a group of `size` ranks, `stride` ranks apart, communicates over: within one node when
 * the group's span fits in it; else the inter-node link, whose ring bandwidth is that of one NIC
 * per member on a node (each GPU has its own NIC, and a ring leaves a node once per channel), but
 * never more than the intra-node bus bandwidth. Of a ring's `size` hops, one per node crosses
 * the network and the others stay in their node, so the latency per step is the hops' mean (as
 * NCCL's own tuning model counts inter- and intra-node steps apart).
 */
export function groupLink(device: DeviceSpec, size: number, stride: number): LinkSpec {
  const op = 'groupLink';
  checkDevice(op, device);
  checkNumber(op, 'size', size, POS_INT);
  checkNumber(op, 'stride', stride, POS_INT);
  if (size * stride <= device.gpusPerNode) return device.intraNode;
  const perNode = Math.max(1, Math.floor(device.gpusPerNode / stride));
  const nodes = Math.ceil(size / perNode);
  const latency = (nodes * device.interNode.latency + (size - nodes) * device.intraNode.latency) / size;
  return { busBandwidth: Math.min(device.intraNode.busBandwidth, perNode * device.interNode.busBandwidth), latency };
}

/** Bytes per activation value: 2 in bf16 runs (activations are bf16), 4 in fp32. */
function actBytes(p: Precision): number {
  return p === 'bf16' ? 2 : 4;
}

/**
 * Activation bytes one transformer block keeps for its backward pass, for one micro-batch on one
 * rank, without recomputation. Korthikanti et al. 2022 (section 4.1), with e bytes per value
 * (e = 2 gives their numbers) and 1-byte dropout masks:
 * - attention: LN output e·sbh, q and k 2e·sbh, v e·sbh, the projection's input e·sbh, a dropout
 *   mask sbh; MLP: its input e·sbh, the GeLU's input and output 8e·sbh, a dropout mask sbh; the two
 *   layer norms' inputs 2e·sbh: sbh·(16e + 2) = 34·sbh at e = 2;
 * - the s×s scores: softmax output e·as²b, its dropout mask as²b, the dropout output e·as²b:
 *   as²b·(2e + 1) = 5·as²b; a fused (flash) attention keeps instead its row logsumexp, 4·asb.
 * Tensor parallelism splits the attention and MLP parts by t and leaves the layer norms' inputs,
 * the two matmul inputs and the masks (sbh·(4e + 2) = 10·sbh) whole: sbh·(10 + 24/t); sequence
 * parallelism splits those too, so everything is over t.
 */
export function activationBytesPerLayer(cfg: GPTRunConfig, layout: ParallelLayout): number {
  const r = resolve('activationBytesPerLayer', cfg, layout);
  return layerActivations(cfg, r);
}

function layerActivations(cfg: GPTRunConfig, r: Resolved): number {
  const e = actBytes(r.precision);
  const { seqLen: s, microBatch: b, nEmbd: h, nHead: a } = cfg;
  const t = r.tp;
  const sbh = s * b * h;
  const scores = r.flash ? 4 * a * s * b : a * s * s * b * (2 * e + 1);
  if (r.sp || t === 1) return (sbh * (16 * e + 2) + scores) / t;
  return sbh * (4 * e + 2) + (sbh * 12 * e) / t + scores / t;
}

/** Parameters held by one rank of the given stage (tensor-parallel share; before ZeRO). */
function stageParams(cfg: GPTRunConfig, r: Resolved, stage: 'first' | 'last'): number {
  const { nLayer: L, nEmbd: h, vocabSize: V, seqLen: s } = cfg;
  const t = r.tp;
  // Megatron splits the matmul weights and the biases of the column-parallel layers by t
  // (12h² + 7h); the row-parallel layers' biases and the layer norms stay whole on every rank (6h).
  const perLayer = (12 * h * h + 7 * h) / t + 6 * h;
  const wte = Math.ceil(V / t) * h; // vocab-parallel embedding (and the tied head)
  const layers = (L / r.pp) * perLayer;
  if (r.pp === 1) return layers + wte + s * h + 2 * h;
  // The first stage has both embeddings; the last a copy of wte for the tied head, and ln_f.
  return stage === 'first' ? layers + wte + s * h : layers + wte + 2 * h;
}

function stageMemory(cfg: GPTRunConfig, r: Resolved, stage: 'first' | 'last'): MemoryBreakdown {
  const psi = stageParams(cfg, r, stage);
  const d = r.dp;
  // Bytes per parameter (ZeRO, section 3.1): mixed precision keeps 2 (bf16 weights) + 2 (bf16
  // gradients) + 12 (fp32 master weights and Adam's m and v); fp32 keeps 4 + 4 + 8.
  const pb = r.precision === 'bf16' ? 2 : 4;
  const gb = pb;
  const mb = r.precision === 'bf16' ? 4 : 0;
  // ZeRO stage k shards, over the d replicas: ≥1 the optimizer state (moments and master), ≥2 the
  // gradients, 3 the parameters.
  const parameters = (pb * psi) / (r.zero === 3 ? d : 1);
  const gradients = (gb * psi) / (r.zero >= 2 ? d : 1);
  const optimizerState = (8 * psi) / (r.zero >= 1 ? d : 1);
  const masterWeights = (mb * psi) / (r.zero >= 1 ? d : 1);
  // ZeRO-3 gathers a block's parameters before using it and prefetches the next one.
  const perLayerRank = (12 * cfg.nEmbd ** 2 + 7 * cfg.nEmbd) / r.tp + 6 * cfg.nEmbd;
  const workspace = r.zero === 3 && d > 1 ? 2 * perLayerRank * pb : 0;

  // Activations. Micro-batches in flight (Narayanan et al. 2021; Korthikanti et al. 2022, 4.2.3):
  // GPipe holds all m; 1F1B holds p − i on stage i (p on the first, 1 on the last); without a
  // pipeline each micro-batch's activations go with its backward (gradient accumulation).
  const p = r.pp;
  const inFlight = p === 1 ? 1 : r.schedule === 'gpipe' ? r.m : stage === 'first' ? Math.min(p, r.m) : 1;
  const full = layerActivations(cfg, r);
  const e = actBytes(r.precision);
  const { seqLen: s, microBatch: b, nEmbd: h, vocabSize: V } = cfg;
  // Full recomputation keeps each block's input, e·sbh (split by t with sequence parallelism),
  // and during the backward one block's full activations at a time (Korthikanti et al. 2022, 4.3).
  const kept = r.ckpt ? (e * s * b * h) / (r.sp ? r.tp : 1) : full;
  const layersHeld = (cfg.nLayer / p) * kept * inFlight + (r.ckpt ? full : 0);
  // The output layer, its softmax and cross-entropy: 4·sbh·(1 + V/h)/t at e = 2 (Korthikanti et
  // al. 2022, eq. 5's last term), here 2e·sb·(h + V)/t; on the stage that ends the model.
  const output = p === 1 || stage === 'last' ? (2 * e * s * b * (h + V) * inFlight) / r.tp : 0;
  const activations = layersHeld + output;
  const total = parameters + gradients + optimizerState + masterWeights + activations + workspace;
  return { parameters, gradients, optimizerState, masterWeights, activations, workspace, total, stage: p === 1 ? 'only' : stage, params: psi, inFlightMicroBatches: inFlight };
}

/**
 * Memory of the rank that holds the most, broken down (see {@link MemoryBreakdown}). Activations
 * follow Korthikanti et al. 2022: per block and micro-batch s·b·h·(34 + 5·a·s/h) bytes with
 * 16-bit values (s·b·h·(10 + 24/t) + 5·a·s²·b/t with tensor parallelism t, all of it over t with
 * sequence parallelism; a fused attention keeps a row logsumexp instead of the s×s scores; full
 * recomputation keeps only each block's input), times the micro-batches in flight, plus the
 * output layer; model state follows ZeRO's accounting. Not counted:
 * the CUDA context and library workspaces (about 0.5–1 GiB), allocator fragmentation,
 * communication buffers (DDP's buckets), and temporary buffers of the backward pass.
 */
export function memoryPerRank(cfg: GPTRunConfig, layout: ParallelLayout): MemoryBreakdown {
  const r = resolve('memoryPerRank', cfg, layout);
  const first = stageMemory(cfg, r, 'first');
  if (r.pp === 1) return first;
  const last = stageMemory(cfg, r, 'last');
  return last.total > first.total ? last : first;
}

/**
 * Step time (see {@link StepTimeBreakdown}):
 * - Compute of one micro-batch on one rank of a stage: forward FLOPs
 *   b·s·(L/p)·(24h² + 4sh)/t (+ b·s·2hV/t for the output head on the last stage), over the
 *   achieved FLOP/s; the backward is twice that, plus one more forward of the blocks when
 *   recomputing. The slowest stage (the last, which also has the head) sets the pace.
 * - Tensor parallelism: 2 allreduces of b·s·h activations per block in the forward (after
 *   attention and after the MLP) and 2 in the backward, 2 more when recomputing; with sequence
 *   parallelism each becomes a reduce-scatter plus an all-gather, the same cost. Not overlapped.
 * - Pipeline: (m + p − 1) forward and backward slots, of which p − 1 are the bubble, so the idle
 *   fraction is (p − 1)/(m + p − 1); each slot sends b·s·h/t activations (or their gradients) to
 *   the next stage (Megatron's scatter/gather), α + bytes/β, not overlapped.
 * - Data parallelism (over the dp group, gradients of the rank's Ψ parameters):
 *   ZeRO-0 one allreduce of the gradients; ZeRO-1 a reduce-scatter of them and an all-gather of
 *   the updated parameters (the same volume, ZeRO section 7); ZeRO-2 reduce-scatters each
 *   micro-batch's gradients (they are not kept whole) and all-gathers once; ZeRO-3 also gathers
 *   the parameters before each micro-batch's forward and again before its backward (3Ψ per
 *   micro-batch). With `overlap`, a gradient reduction hides behind the backward that produces
 *   it, and a gather behind the forward, except the last bucket of each.
 * - The optimizer streams 28 bytes per parameter it updates (reads gradient, master weight, m,
 *   v; writes master, m, v and the working copy), over the achieved memory bandwidth.
 */
export function stepTime(cfg: GPTRunConfig, layout: ParallelLayout, device: DeviceSpec): StepTimeBreakdown {
  const r = resolve('stepTime', cfg, layout);
  checkDevice('stepTime', device);
  return stepTimeOf(cfg, r, device);
}

function stepTimeOf(cfg: GPTRunConfig, r: Resolved, device: DeviceSpec): StepTimeBreakdown {
  const { nLayer: L, nEmbd: h, vocabSize: V, seqLen: s, microBatch: b } = cfg;
  const { tp: t, pp: p, dp: d, m } = r;
  const F = device.achievedFlops[r.precision];
  const e = actBytes(r.precision);
  const Ls = L / p;

  // FLOPs of one micro-batch on one rank of the last stage (Narayanan et al. 2021, section 5.1).
  const blockFwd = (b * s * Ls * (24 * h * h + 4 * s * h)) / t;
  const headFwd = (b * s * 2 * h * V) / t;
  const fwdFlops = blockFwd + headFwd;
  const bwdFlops = 2 * fwdFlops + (r.ckpt ? blockFwd : 0);

  // Tensor parallelism: the group is t consecutive ranks.
  const tpLink = groupLink(device, t, 1);
  const tpOne = collectiveTime('allReduce', b * s * h * e, t, tpLink);
  const tpFwd = 2 * Ls * tpOne;
  const tpBwd = (r.ckpt ? 4 : 2) * Ls * tpOne;

  const tf = fwdFlops / F + tpFwd;
  const tb = bwdFlops / F + tpBwd;

  // Pipeline point-to-point: stages are dp·tp ranks apart (pp outermost), so some boundary
  // crosses nodes as soon as the whole job does.
  const world = d * t * p;
  const p2pLink = world <= device.gpusPerNode ? device.intraNode : device.interNode;
  const p2p = p === 1 ? 0 : p2pLink.latency + (b * s * h * e) / t / p2pLink.busBandwidth;
  const slot = tf + tb + 2 * p2p;
  const pipeline = p === 1 ? m * (tf + tb) : (m + p - 1) * slot;
  const bubble = p === 1 ? 0 : (p - 1) * slot;

  // Data parallelism over d ranks, t apart.
  const memFirst = stageMemory(cfg, r, 'first');
  const memLast = p === 1 ? memFirst : stageMemory(cfg, r, 'last');
  const psi = Math.max(memFirst.params, memLast.params);
  const pb = r.precision === 'bf16' ? 2 : 4;
  const gradBytes = psi * pb;
  const paramBytes = psi * pb;
  const dpLink = groupLink(device, d, t);
  const B = r.bucket;
  const lastBucket = (kind: Collective, bytes: number): number => bucketed(kind, Math.min(B, bytes), d, dpLink, B);
  // A collective that can run under `window` seconds of compute: what is left over, and never
  // less than its last bucket (which is ready only when the compute ends).
  const exposed = (kind: Collective, bytes: number, window: number, extra = 0): number => {
    const c = bucketed(kind, bytes, d, dpLink, B) + extra;
    if (!r.overlap) return c;
    return Math.max(c - window, Math.min(c, lastBucket(kind, bytes)));
  };
  let dpComm = 0;
  let dpExposed = 0;
  if (d > 1) {
    if (r.zero === 0) {
      dpComm = bucketed('allReduce', gradBytes, d, dpLink, B);
      dpExposed = exposed('allReduce', gradBytes, tb);
    } else if (r.zero === 1) {
      const rs = bucketed('reduceScatter', gradBytes, d, dpLink, B);
      const ag = bucketed('allGather', paramBytes, d, dpLink, B);
      dpComm = rs + ag;
      dpExposed = exposed('reduceScatter', gradBytes, tb) + exposed('allGather', paramBytes, tf);
    } else if (r.zero === 2) {
      const rs = bucketed('reduceScatter', gradBytes, d, dpLink, B);
      const ag = bucketed('allGather', paramBytes, d, dpLink, B);
      dpComm = m * rs + ag;
      dpExposed = m * exposed('reduceScatter', gradBytes, tb) + exposed('allGather', paramBytes, tf);
    } else {
      const rs = bucketed('reduceScatter', gradBytes, d, dpLink, B);
      const ag = bucketed('allGather', paramBytes, d, dpLink, B);
      dpComm = m * (2 * ag + rs);
      dpExposed = m * (exposed('allGather', paramBytes, tf) + exposed('reduceScatter', gradBytes, tb, ag));
    }
  }

  // Optimizer: 28 bytes per updated parameter, sharded by ZeRO ≥ 1.
  const updated = r.zero >= 1 ? psi / d : psi;
  const optimizer = (28 * updated) / device.memoryBandwidth;

  return {
    microBatches: m,
    forward: tf,
    backward: tb,
    compute: (m * (fwdFlops + bwdFlops)) / F,
    bubble,
    bubbleFraction: (p - 1) / (m + p - 1),
    tpComm: m * (tpFwd + tpBwd),
    ppComm: p === 1 ? 0 : 2 * (m + p - 1) * p2p,
    dpComm,
    dpExposed,
    optimizer,
    total: pipeline + dpExposed + optimizer,
  };
}

/**
 * Memory per rank, step time, tokens per second and MFU of `cfg` trained with `layout` on
 * `device` (see {@link memoryPerRank} and {@link stepTime} for the formulas).
 *
 * @example
 * const cfg = { ...GPT2_SIZES['124M'], vocabSize: 50257, seqLen: 1024, microBatch: 8, globalBatch: 512 };
 * const est = estimate(cfg, { dp: 8, tp: 1, pp: 1, zeroStage: 1 }, H100_SXM);
 * est.memory.total / 2 ** 30; // GiB on each GPU
 * est.tokensPerSecond;
 */
export function estimate(cfg: GPTRunConfig, layout: ParallelLayout, device: DeviceSpec): CostEstimate {
  const r = resolve('estimate', cfg, layout);
  checkDevice('estimate', device);
  const first = stageMemory(cfg, r, 'first');
  const memory = r.pp === 1 ? first : [first, stageMemory(cfg, r, 'last')].sort((x, y) => y.total - x.total)[0]!;
  const time = stepTimeOf(cfg, r, device);
  const tokensPerStep = cfg.globalBatch * cfg.seqLen;
  const modelFlopsPerToken = flopsPerToken(cfg).model;
  const world = r.dp * r.tp * r.pp;
  return {
    memory,
    time,
    tokensPerStep,
    tokensPerSecond: tokensPerStep / time.total,
    modelFlopsPerToken,
    mfu: (modelFlopsPerToken * tokensPerStep) / time.total / (world * device.peakFlops[r.precision]),
    fits: memory.total <= device.memoryBytes,
  };
}

// ---- published devices and models ----------------------------------------------------------

/**
 * Fraction of the dense bf16 peak a well-tuned GPT training step achieves, assumed for the
 * published devices: Megatron-LM reports 52% of A100 peak at scale (Narayanan et al. 2021) and
 * 54–56% with sequence parallelism and selective recomputation (Korthikanti et al. 2022), both
 * for models of 100B+ parameters whose matmuls are large; GPT-2 sizes have smaller matmuls and
 * proportionally more memory-bound work (layer norms, GeLU, the optimizer), so less is assumed.
 * 0.45 is an assumption, not a measurement.
 */
export const ASSUMED_MFU = 0.45;

/** Fraction of peak HBM bandwidth a streaming kernel reaches (an assumption; STREAM-like kernels reach 80–90%). */
export const ASSUMED_HBM_EFFICIENCY = 0.85;

/**
 * The links of an 8-GPU HGX/DGX H100 or H200 node on NDR InfiniBand, as NCCL sees them:
 * - NVLink 4 is 900 GB/s per GPU (450 each way); NCCL's ring collectives reach a bus bandwidth
 *   of about 370 GB/s on it (an NCCL maintainer in NVIDIA/nccl-tests issue 212: ~20%
 *   protocol overhead; allreduce with NVLink SHARP reaches ~480 GB/s, and H200 ~475 GB/s in
 *   nccl-tests issue 272, but reduce-scatter and all-gather do not), so 370 GB/s for all.
 * - NDR InfiniBand is 400 Gb/s = 50 GB/s per GPU (one ConnectX-7 per GPU); NVIDIA's
 *   NCCL maintainers give 46–48 GB/s busbw per NIC for all_reduce_perf (NVIDIA/nccl-tests issue 290).
 * - Latencies per ring step: 2 µs within a node, 5 µs across (assumed, from nccl-tests'
 *   small-message times of ~10–30 µs per collective).
 */
const HOPPER_LINKS = {
  gpusPerNode: 8,
  intraNode: { busBandwidth: 370e9, latency: 2e-6 },
  interNode: { busBandwidth: 46e9, latency: 5e-6 },
} as const;

/**
 * NVIDIA H100 SXM5 80 GB (NVIDIA H100 datasheet): dense bf16 989.4 TFLOP/s, TF32 494.7 (fp32
 * runs are taken to use TF32 tensor cores, as PyTorch's `set_float32_matmul_precision('high')`),
 * HBM3 3.35 TB/s, 80 GB, NVLink 4 900 GB/s; achieved numbers are {@link ASSUMED_MFU} and
 * {@link ASSUMED_HBM_EFFICIENCY} of those.
 */
export const H100_SXM: DeviceSpec = {
  name: 'H100 SXM 80GB',
  peakFlops: { bf16: 989.4e12, fp32: 494.7e12 },
  achievedFlops: { bf16: 989.4e12 * ASSUMED_MFU, fp32: 494.7e12 * ASSUMED_MFU },
  memoryBandwidth: 3.35e12 * ASSUMED_HBM_EFFICIENCY,
  memoryBytes: 80 * 2 ** 30,
  ...HOPPER_LINKS,
};

/** NVIDIA H200 SXM 141 GB (NVIDIA H200 datasheet): the H100's compute and NVLink, HBM3e 4.8 TB/s, 141 GB. */
export const H200_SXM: DeviceSpec = {
  ...H100_SXM,
  name: 'H200 SXM 141GB',
  memoryBandwidth: 4.8e12 * ASSUMED_HBM_EFFICIENCY,
  memoryBytes: 141e9,
};

/**
 * The machine kiln's benches ran on (bench/RESULTS.md): 2 cores of an Intel Xeon (AMX,
 * AVX-512), kiln's `cpu` backend with one thread per process, 2 processes under Open MPI on
 * shared memory (`--mca btl self,vader`). MEASURED on 2026-12-03, not published:
 * - achievedFlops.fp32: a 1-process GPT 128x4 forward+backward (batch 8 × 64, f32), the model's
 *   FLOPs over its time: 93–100 GFLOP/s over three runs of `npm run bench -- scaling`
 *   (124–135 at width 256);
 * - memoryBandwidth: that model's AdamW step, 28 bytes per parameter: 8.7–9.4 GB/s;
 * - intraNode: kiln's allreduce between the 2 processes (`npm run bench -- ddp --sizes
 *   1048576,4194304` at a load average of 0.1): 0.524 ms for 4 MiB, 2.05 ms for 16 MiB, so
 *   β = 16 MiB / 2.05 ms = 8.2 GB/s and α = (0.524 ms − 4 MiB/β)/2 ≈ 6 µs.
 * bf16 is set to the fp32 numbers (not measured); peaks are the achieved numbers (a cpu has no
 * published peak for this use); interNode (TCP between machines) is a placeholder, not measured:
 * 10 GbE's 1.25 GB/s and 50 µs. `npm run bench -- scaling` measures all of it again.
 */
export const KILN_CPU_2PROC: DeviceSpec = {
  name: 'kiln cpu, 1 thread/process, 2 processes (this machine)',
  peakFlops: { bf16: 100e9, fp32: 100e9 },
  achievedFlops: { bf16: 100e9, fp32: 100e9 },
  memoryBandwidth: 9e9,
  memoryBytes: 11 * 2 ** 30, // half of the machine's 23 GiB per process
  gpusPerNode: 2,
  intraNode: { busBandwidth: 8.2e9, latency: 6e-6 },
  interNode: { busBandwidth: 1.25e9, latency: 50e-6 },
};

/** GPT-2's four sizes (Radford et al. 2019): layers, width, heads; vocabulary 50257, context 1024. */
export const GPT2_SIZES: Readonly<Record<'124M' | '350M' | '774M' | '1.5B', { nLayer: number; nEmbd: number; nHead: number }>> = {
  '124M': { nLayer: 12, nEmbd: 768, nHead: 12 },
  '350M': { nLayer: 24, nEmbd: 1024, nHead: 16 },
  '774M': { nLayer: 36, nEmbd: 1280, nHead: 20 },
  '1.5B': { nLayer: 48, nEmbd: 1600, nHead: 25 },
};
