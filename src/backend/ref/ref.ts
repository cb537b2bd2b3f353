/**
 * `ref`: the pure-TypeScript reference backend, the specification every other backend is tested
 * against. Storage is a typed array on the JS heap; kernels compute in doubles with plain loops
 * and round once when they store. Work runs at once (so it can read synchronously), but faults
 * wait for the next read or sync like everywhere else. It is always available.
 * @module
 */
import type {
  AdamUpdateArgs,
  AttentionArgs,
  AttentionBackwardArgs,
  Backend,
  BinaryArgs,
  CastArgs,
  CheckArgs,
  CopyArgs,
  CrossEntropyArgs,
  CrossEntropyBackwardArgs,
  FillArgs,
  GatherArgs,
  KernelFamily,
  LambUpdateArgs,
  LayerNormArgs,
  LayerNormBackwardArgs,
  MatmulArgs,
  MatmulInt8Args,
  MultiNormArgs,
  MultiScaleArgs,
  RandomArgs,
  ReduceArgs,
  ScatterAddArgs,
  SoftmaxArgs,
  Storage,
  UnaryArgs,
  UnaryGradArgs,
  WhereArgs,
} from '../backend.js';
import { DTYPES, decode, encode, isHalf, storageArray, type DType, type StorageArray } from '../dtype.js';
import { FaultLatch, settled } from '../faults.js';
import { philoxFill, PhiloxWords } from '../philox.js';
import { binaryFn, forEachStrided, matmulInt8Ref, matmulRef, reduceRef, unaryDerivative, unaryFn } from './kernels.js';
import { show } from '../../tensor/validate.js';

type Num = { [i: number]: number; readonly length: number };

/** A reference storage: the typed array itself. */
export class RefStorage implements Storage {
  constructor(
    readonly dtype: DType,
    readonly data: StorageArray,
  ) {}
  get size(): number {
    return this.data.length;
  }
}

function arr(s: Storage): Num {
  return (s as RefStorage).data;
}

// Write computed values into a storage, rounding for halves.
function store(out: Storage, values: ArrayLike<number>, offset = 0): void {
  const o = out as RefStorage;
  if (isHalf(o.dtype) || o.dtype === 'bool') o.data.set(encode(values, o.dtype), offset);
  else (o.data as Float64Array).set(values, offset);
}

function values(s: Storage): ArrayLike<number> {
  const r = s as RefStorage;
  return decode(r.data, r.dtype);
}

// Offset of (b, h, t) in a strided [B, H, T, ·] view.
const at3 = (offset: number, st: readonly number[], b: number, h: number, t: number): number => offset + b * st[0]! + h * st[1]! + t * st[2]!;

// The kv head that query head h reads (grouped-query attention: heads/kvHeads query heads each).
const kvHead = (a: { heads: number; kvHeads: number }, h: number): number => Math.floor(h / (a.heads / a.kvHeads));

export class RefBackend implements Backend {
  readonly dtypes: readonly DType[] = DTYPES;
  /** Faults found by kernels, thrown by the next read or sync. */
  readonly faults = new FaultLatch();

  /** @param name Registry name; another name lets a second instance stand in for a backend in tests. */
  constructor(readonly name: string = 'ref') {
    if (typeof name !== 'string' || !name) throw new Error(`RefBackend: name must be a non-empty string, got ${show(name)}`);
  }

  maxElements(_dtype: DType): number {
    return 2 ** 32; // V8's longest typed array
  }

  alloc(dtype: DType, size: number): Storage {
    return new RefStorage(dtype, storageArray(dtype, size));
  }

  free(s: Storage): void {
    // the typed array goes with the handle; nothing to release early
    void s;
  }

  write(s: Storage, data: StorageArray): void {
    (s as RefStorage).data.set(data);
  }

  read(s: Storage): Promise<StorageArray> {
    return settled(() => this.readSync(s));
  }

  readSync(s: Storage): StorageArray {
    this.faults.throwIfAny();
    return (s as RefStorage).data.slice();
  }

  flush(): void {}

  sync(): Promise<void> {
    return settled(() => this.faults.throwIfAny());
  }

  computes(family: KernelFamily, dtype: DType): boolean {
    if (dtype === 'f32' || dtype === 'f64') return true;
    return family === 'elementwise' || family === 'reduce' ? dtype === 'i32' || dtype === 'bool' : false;
  }

  // ---- elementwise ---------------------------------------------------------------------------

  fill(a: FillArgs): void {
    const o = a.out as RefStorage;
    o.data.fill(encode([a.value], o.dtype)[0]!);
  }

  random(a: RandomArgs): void {
    const tmp = new Float64Array(a.out.size);
    const dist =
      a.dist === 'normal' ? { kind: a.dist, mean: a.p0, std: a.p1 } : { kind: a.dist, low: a.p0, high: a.p1 };
    philoxFill(tmp, dist as Parameters<typeof philoxFill>[1], a.seed, a.offset);
    store(a.out, tmp);
  }

  cast(a: CastArgs): void {
    store(a.out, a.out.dtype === 'i32' ? Int32Array.from(values(a.x), Math.trunc) : values(a.x));
  }

  copy(a: CopyArgs): void {
    const src = arr(a.src);
    const dst = arr(a.dst);
    forEachStrided(a.shape, a.srcStrides, a.dstStrides, a.srcStrides, (_i, s, d) => {
      dst[a.dstOffset + d] = src[a.srcOffset + s]!;
    });
  }

  unary(a: UnaryArgs): void {
    const f = unaryFn(a.op);
    const xs = arr(a.x);
    const o = arr(a.out);
    for (let i = 0; i < a.out.size; i++) o[i] = f(xs[i]!);
  }

  unaryGrad(a: UnaryGradArgs): void {
    const f = unaryDerivative(a.op);
    const xs = arr(a.x);
    const g = arr(a.dy);
    const o = arr(a.out);
    for (let i = 0; i < a.out.size; i++) o[i] = g[i]! * f(xs[i]!);
  }

  binary(a: BinaryArgs): void {
    const f = binaryFn(a.op, a.a.dtype === 'i32');
    const as = arr(a.a);
    const bs = arr(a.b);
    const o = arr(a.out);
    forEachStrided(a.shape, a.aStrides, a.bStrides, a.aStrides, (i, ia, ib) => {
      o[i] = f(as[ia]!, bs[ib]!);
    });
  }

  where(a: WhereArgs): void {
    const c = arr(a.cond);
    const as = arr(a.a);
    const bs = arr(a.b);
    const o = arr(a.out);
    forEachStrided(a.shape, a.condStrides, a.aStrides, a.bStrides, (i, ic, ia, ib) => {
      o[i] = c[ic] ? as[ia]! : bs[ib]!;
    });
  }

  gather(a: GatherArgs): void {
    const xs = arr(a.x);
    const o = arr(a.out);
    const idx = arr(a.index);
    const [so, sj, si] = a.indexStrides as [number, number, number];
    for (let oo = 0; oo < a.outer; oo++)
      for (let j = 0; j < a.n; j++)
        for (let i = 0; i < a.inner; i++) {
          const t = idx[oo * so + j * sj + i * si]!;
          const dst = (oo * a.n + j) * a.inner + i;
          if (t >= 0 && t < a.srcDim) o[dst] = xs[(oo * a.srcDim + t) * a.inner + i]!;
          else {
            this.faults.record('index', a.op, t, a.srcDim);
            o[dst] = 0;
          }
        }
  }

  scatterAdd(a: ScatterAddArgs): void {
    const d = arr(a.dst);
    const s = arr(a.src);
    const idx = arr(a.index);
    const [so, sj, si] = a.indexStrides as [number, number, number];
    for (let oo = 0; oo < a.outer; oo++)
      for (let j = 0; j < a.n; j++)
        for (let i = 0; i < a.inner; i++) {
          const t = idx[oo * so + j * sj + i * si]!;
          if (t >= 0 && t < a.srcDim) d[(oo * a.srcDim + t) * a.inner + i] += s[(oo * a.n + j) * a.inner + i]!;
          else this.faults.record('index', a.op, t, a.srcDim);
        }
  }

  check(a: CheckArgs): void {
    const c = arr(a.cond);
    for (let i = 0; i < a.cond.size; i++)
      if (!c[i]) {
        this.faults.record('check', a.op, a.values ? values(a.values)[i]! : i, 0, a.message);
        return;
      }
  }

  // ---- reduce, matmul ------------------------------------------------------------------------

  reduce(a: ReduceArgs): void {
    const overflow = reduceRef(a.reduceOp, arr(a.x), a.outer, a.r, a.inner, arr(a.out));
    if (overflow !== null) this.faults.record('overflow', a.op, overflow, 0);
  }

  matmul(p: MatmulArgs): void {
    const a = arr(p.a);
    const b = arr(p.b);
    const out = arr(p.out);
    const bias = p.bias ? arr(p.bias) : null;
    const zeros = p.batchShape.map(() => 0);
    forEachStrided(p.batchShape, p.aBatchStrides, p.bBatchStrides, zeros, (bi, ao, bo) => {
      matmulRef(a, ao, b, bo, out, bi * p.m * p.n, p.m, p.n, p.k, p.transA, p.transB, bias, p.accumulate);
    });
    if (p.activation !== 'none') {
      if (p.preact) {
        const pre = arr(p.preact);
        for (let i = 0; i < p.out.size; i++) pre[i] = out[i]!;
      }
      const f = unaryFn(p.activation);
      for (let i = 0; i < p.out.size; i++) out[i] = f(out[i]!);
    }
  }

  matmulInt8(p: MatmulInt8Args): void {
    matmulInt8Ref(arr(p.a), arr(p.w), arr(p.scale), arr(p.out), p.bias ? arr(p.bias) : null, p.m, p.n, p.k);
  }

  // ---- softmax, norm, cross-entropy ----------------------------------------------------------

  softmax(a: SoftmaxArgs): void {
    const xs = arr(a.x);
    const o = arr(a.out);
    for (let r = 0; r < a.rows; r++) {
      const base = r * a.cols;
      const lse = rowLogSumExp(xs, base, a.cols);
      for (let c = 0; c < a.cols; c++) {
        const z = xs[base + c]! - lse;
        o[base + c] = a.log ? z : Math.exp(z);
      }
    }
  }

  layerNorm(a: LayerNormArgs): void {
    const { rows, cols, rms } = a;
    let xs = arr(a.x);
    if (a.residual && a.sum) {
      // the rows normalized are x + residual, each rounded once into sum
      const [x0, res, sm] = [xs, arr(a.residual), arr(a.sum)];
      for (let i = 0; i < rows * cols; i++) sm[i] = x0[i]! + res[i]!;
      xs = sm;
    }
    const w = a.weight ? arr(a.weight) : null;
    const b = a.bias ? arr(a.bias) : null;
    const o = arr(a.out);
    const mu = arr(a.mean);
    const rs = arr(a.rstd);
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      let m = 0;
      if (!rms) {
        for (let c = 0; c < cols; c++) m += xs[base + c]!;
        m /= cols;
        mu[r] = m;
      }
      let v = 0;
      for (let c = 0; c < cols; c++) v += (xs[base + c]! - m) ** 2;
      const s = 1 / Math.sqrt(v / cols + a.eps);
      rs[r] = s;
      for (let c = 0; c < cols; c++) {
        let y = (xs[base + c]! - m) * s;
        if (w) y *= w[c]!;
        if (b) y += b[c]!;
        o[base + c] = y;
      }
    }
  }

  layerNormBackward(a: LayerNormBackwardArgs): void {
    const { rows, cols, rms } = a;
    const g = arr(a.dy);
    const xs = arr(a.x);
    const w = a.weight ? arr(a.weight) : null;
    const mu = arr(a.mean);
    const rs = arr(a.rstd);
    const dxs = arr(a.dx);
    const dw = a.dWeight ? new Float64Array(cols) : null;
    const db = a.dBias ? new Float64Array(cols) : null;
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      const m = rms ? 0 : mu[r]!;
      const s = rs[r]!;
      // dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = dy·w (the mean(ĝ) term only for LayerNorm)
      let sumG = 0;
      let sumGX = 0;
      for (let c = 0; c < cols; c++) {
        const xh = (xs[base + c]! - m) * s;
        const gh = g[base + c]! * (w ? w[c]! : 1);
        sumG += gh;
        sumGX += gh * xh;
        if (dw) dw[c]! += g[base + c]! * xh;
        if (db) db[c]! += g[base + c]!;
      }
      const meanG = rms ? 0 : sumG / cols;
      const meanGX = sumGX / cols;
      for (let c = 0; c < cols; c++) {
        const xh = (xs[base + c]! - m) * s;
        const gh = g[base + c]! * (w ? w[c]! : 1);
        dxs[base + c] = s * (gh - meanG - xh * meanGX);
      }
    }
    if (dw && a.dWeight) store(a.dWeight, dw);
    if (db && a.dBias) store(a.dBias, db);
  }

  // A target is valid when it is ignoreIndex or a class; a bad one is a fault.
  private badTarget(t: number, classes: number, ignoreIndex: number, op: string): boolean {
    if (t === ignoreIndex || (t >= 0 && t < classes)) return false;
    this.faults.record('target', op, t, classes);
    return true;
  }

  crossEntropy(a: CrossEntropyArgs): void {
    const { rows, classes, ignoreIndex, smoothing } = a;
    const x = arr(a.logits);
    const t = arr(a.targets);
    const l = arr(a.loss);
    const ls = arr(a.lse);
    for (let r = 0; r < rows; r++) {
      const base = r * classes;
      const z = rowLogSumExp(x, base, classes);
      ls[r] = z;
      const tr = t[r]!;
      if (this.badTarget(tr, classes, ignoreIndex, a.op)) {
        l[r] = NaN;
        continue;
      }
      if (tr === ignoreIndex) {
        l[r] = 0;
        continue;
      }
      let sum = 0;
      if (smoothing > 0) for (let c = 0; c < classes; c++) sum += x[base + c]!;
      l[r] = z - (1 - smoothing) * x[base + tr]! - (smoothing / classes) * sum;
    }
  }

  crossEntropyBackward(a: CrossEntropyBackwardArgs): void {
    const { rows, classes, ignoreIndex, smoothing } = a;
    const x = arr(a.logits);
    const t = arr(a.targets);
    const ls = arr(a.lse);
    const g = arr(a.dloss);
    const d = arr(a.dlogits);
    for (let r = 0; r < rows; r++) {
      const base = r * classes;
      const tr = t[r]!;
      const skip = this.badTarget(tr, classes, ignoreIndex, a.op) || tr === ignoreIndex;
      for (let c = 0; c < classes; c++) {
        if (skip) {
          d[base + c] = 0;
          continue;
        }
        const p = Math.exp(x[base + c]! - ls[r]!);
        const target = (c === tr ? 1 - smoothing : 0) + smoothing / classes;
        d[base + c] = g[r]! * (p - target);
      }
    }
  }

  // ---- attention -----------------------------------------------------------------------------
  // Query head h reads kv head ⌊h / (heads/kvHeads)⌋ (grouped-query attention); with causal
  // masking and a window w > 0, query i sees keys i + causalOffset − w < j ≤ i + causalOffset.

  attention(a: AttentionArgs): void {
    const q = arr(a.q);
    const k = arr(a.k);
    const v = arr(a.v);
    const ls = arr(a.lse);
    const scores = new Float64Array(a.tk);
    const acc = new Float64Array(a.vDim);
    const keep = this.dropoutMask(a);
    for (let b = 0; b < a.batch; b++)
      for (let h = 0; h < a.heads; h++)
        for (let i = 0; i < a.tq; i++) {
          const z = this.attentionScores(a, b, h, i, q, k, scores);
          const row = (b * a.heads + h) * a.tq + i;
          ls[row] = z;
          acc.fill(0);
          if (z !== -Infinity)
            for (let j = 0; j < a.tk; j++) {
              const pj = Math.exp(scores[j]! - z) * keep(row, j);
              if (pj === 0) continue;
              const vRow = at3(a.vOffset, a.vStrides, b, kvHead(a, h), j);
              for (let c = 0; c < a.vDim; c++) acc[c]! += pj * v[vRow + c]!;
            }
          store(a.out, acc, at3(a.outOffset, a.outStrides, b, h, i));
        }
  }

  attentionBackward(a: AttentionBackwardArgs): void {
    const q = arr(a.q);
    const k = arr(a.k);
    const v = arr(a.v);
    const o = arr(a.out);
    const ls = arr(a.lse);
    const g = arr(a.dout);
    const { batch: B, heads: H, kvHeads: Hk, tq, tk, qkDim: d, vDim: dv } = a;
    // gradients accumulate in doubles, [B, H, Tq, ·] and [B, Hkv, Tk, ·] (dk, dv summed over the
    // query heads of each kv head), and are stored into their views at the end
    const dQ = new Float64Array(B * H * tq * d);
    const dK = new Float64Array(B * Hk * tk * d);
    const dV = new Float64Array(B * Hk * tk * dv);
    const scores = new Float64Array(tk);
    const keep = this.dropoutMask(a);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let i = 0; i < tq; i++) {
          const row = (b * H + h) * tq + i;
          const z = ls[row]!;
          if (z === -Infinity) continue;
          this.attentionScores(a, b, h, i, q, k, scores);
          const qRow = at3(a.qOffset, a.qStrides, b, h, i);
          const oRow = at3(a.outOffset, a.outStrides, b, h, i);
          const gRow = at3(a.doutOffset, a.doutStrides, b, h, i);
          // Dᵢ = dOᵢ·Oᵢ = Σⱼ Pᵢⱼ·dPᵢⱼ (dropout included: O already holds the kept, scaled terms)
          let di = 0;
          for (let c = 0; c < dv; c++) di += g[gRow + c]! * o[oRow + c]!;
          const hk = kvHead(a, h);
          for (let j = 0; j < tk; j++) {
            const pj = Math.exp(scores[j]! - z);
            if (pj === 0) continue;
            const zj = keep(row, j);
            const vRow = at3(a.vOffset, a.vStrides, b, hk, j);
            const kRow = at3(a.kOffset, a.kStrides, b, hk, j);
            const kvRow = (b * Hk + hk) * tk + j;
            let dp = 0;
            for (let c = 0; c < dv; c++) {
              dV[kvRow * dv + c]! += pj * zj * g[gRow + c]!;
              dp += g[gRow + c]! * v[vRow + c]!;
            }
            const ds = pj * (dp * zj - di) * a.scale;
            for (let c = 0; c < d; c++) {
              dQ[row * d + c]! += ds * k[kRow + c]!;
              dK[kvRow * d + c]! += ds * q[qRow + c]!;
            }
          }
        }
    const put = (dst: Storage, offset: number, st: readonly number[], src: Float64Array, heads: number, t: number, w: number): void => {
      for (let b = 0; b < B; b++)
        for (let h = 0; h < heads; h++)
          for (let r = 0; r < t; r++) {
            const from = ((b * heads + h) * t + r) * w;
            store(dst, src.subarray(from, from + w), at3(offset, st, b, h, r));
          }
    };
    put(a.dq, a.dqOffset, a.dqStrides, dQ, H, tq, d);
    put(a.dk, a.dkOffset, a.dkStrides, dK, Hk, tk, d);
    put(a.dv, a.dvOffset, a.dvStrides, dV, Hk, tk, dv);
  }

  // The dropout factor of (row, key): 0 or 1/(1 − p) from the Philox word, or 1 without dropout.
  private dropoutMask(a: AttentionArgs | AttentionBackwardArgs): (row: number, j: number) => number {
    if (a.dropoutThreshold === 0) return () => 1;
    const words = new PhiloxWords(a.seed, a.dropoutOffset);
    return (row, j) => (words.word(row * a.tk + j) >= a.dropoutThreshold ? a.dropoutScale : 0);
  }

  // Scores of query (b, h, i) against every key, masked entries −∞; returns their log-sum-exp.
  private attentionScores(a: AttentionArgs | AttentionBackwardArgs, b: number, h: number, i: number, q: Num, k: Num, scores: Float64Array): number {
    const mask = a.mask ? arr(a.mask) : null;
    const boolMask = a.mask?.dtype === 'bool';
    const ms = a.maskStrides;
    const mBase = mask ? b * ms[0]! + h * ms[1]! + i * ms[2]! : 0;
    const qRow = at3(a.qOffset, a.qStrides, b, h, i);
    const hk = kvHead(a, h);
    for (let j = 0; j < a.tk; j++) {
      const hidden = a.causal && (j > i + a.causalOffset || (a.window > 0 && j <= i + a.causalOffset - a.window));
      if (hidden || (boolMask && !mask![mBase + j * ms[3]!])) {
        scores[j] = -Infinity;
        continue;
      }
      const kRow = at3(a.kOffset, a.kStrides, b, hk, j);
      let s = 0;
      for (let c = 0; c < a.qkDim; c++) s += q[qRow + c]! * k[kRow + c]!;
      s *= a.scale;
      if (mask && !boolMask) s += mask[mBase + j * ms[3]!]!;
      scores[j] = s;
    }
    return rowLogSumExp(scores, 0, a.tk);
  }

  // ---- optimizers ----------------------------------------------------------------------------

  multiNorm(a: MultiNormArgs): void {
    const norms = a.xs.map((x) => {
      const xs = arr(x);
      let acc = 0;
      for (let i = 0; i < x.size; i++) {
        const m = Math.abs(xs[i]!);
        if (a.ord === Infinity) acc = m > acc || m !== m ? m : acc;
        else acc += a.ord === 1 ? m : a.ord === 2 ? m * m : m ** a.ord;
      }
      return a.ord === Infinity || a.ord === 1 ? acc : a.ord === 2 ? Math.sqrt(acc) : acc ** (1 / a.ord);
    });
    store(a.out, norms);
  }

  multiScale(a: MultiScaleArgs): void {
    const s = arr(a.scale)[0]!;
    for (const x of a.xs) {
      const xs = arr(x);
      for (let i = 0; i < x.size; i++) xs[i] = xs[i]! * s;
    }
  }

  adamUpdate(a: AdamUpdateArgs): void {
    a.params.forEach((param, t) => {
      const p = arr(param);
      const g = arr(a.grads[t]!);
      const m = arr(a.m[t]!);
      const v = arr(a.v[t]!);
      const step = a.steps[t]!;
      const bc1 = 1 - a.beta1 ** step;
      const bc2 = 1 - a.beta2 ** step;
      for (let i = 0; i < param.size; i++) {
        let w = p[i]!;
        let gi = g[i]!;
        if (a.decoupled) w -= a.lr * a.weightDecay * w;
        else gi += a.weightDecay * w;
        m[i] = a.beta1 * m[i]! + (1 - a.beta1) * gi;
        v[i] = a.beta2 * v[i]! + (1 - a.beta2) * gi * gi;
        // read back the stored moments, so f32 state rounds as a native kernel's does
        p[i] = w - (a.lr * (m[i]! / bc1)) / (Math.sqrt(v[i]! / bc2) + a.eps);
      }
    });
  }

  lambUpdate(a: LambUpdateArgs): void {
    const trusts = a.params.map((param, t) => {
      const p = arr(param);
      const g = arr(a.grads[t]!);
      const m = arr(a.m[t]!);
      const v = arr(a.v[t]!);
      const step = a.steps[t]!;
      const bc1 = a.biasCorrection ? 1 - a.beta1 ** step : 1;
      const bc2 = a.biasCorrection ? 1 - a.beta2 ** step : 1;
      const r = new Float64Array(param.size);
      let wNorm = 0;
      let rNorm = 0;
      for (let i = 0; i < param.size; i++) {
        const gi = g[i]!;
        m[i] = a.beta1 * m[i]! + (1 - a.beta1) * gi;
        v[i] = a.beta2 * v[i]! + (1 - a.beta2) * gi * gi;
        const ri = m[i]! / bc1 / (Math.sqrt(v[i]! / bc2) + a.eps) + a.weightDecay * p[i]!;
        r[i] = ri;
        wNorm += p[i]! * p[i]!;
        rNorm += ri * ri;
      }
      wNorm = Math.sqrt(wNorm);
      rNorm = Math.sqrt(rNorm);
      const trust = wNorm > 0 && rNorm > 0 ? wNorm / rNorm : 1;
      for (let i = 0; i < param.size; i++) p[i] = p[i]! - a.lr * trust * r[i]!;
      return trust;
    });
    if (a.trust) store(a.trust, trusts);
  }
}

// log Σ exp over a row; −∞ for an empty or all −∞ row.
function rowLogSumExp(x: Num, base: number, n: number): number {
  let m = -Infinity;
  for (let c = 0; c < n; c++) m = Math.max(m, x[base + c]!);
  if (m === -Infinity || Number.isNaN(m)) return m;
  if (m === Infinity) return Infinity;
  let s = 0;
  for (let c = 0; c < n; c++) s += Math.exp(x[base + c]! - m);
  return m + Math.log(s);
}
