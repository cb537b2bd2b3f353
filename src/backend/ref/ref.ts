/**
 * `ref`: the pure-TypeScript reference backend, the specification every other backend is tested
 * against. Storage is a typed array on the JS heap; kernels compute in f64 and f32 (and i32/bool
 * where integers make sense) with plain loops. It is always available.
 * @module
 */
import type {
  AttentionArgs,
  Backend,
  BinaryOp,
  CopyArgs,
  IndexArgs,
  KernelFamily,
  MatmulArgs,
  OptimizerArgs,
  RandomDist,
  ReduceOp,
  Storage,
  UnaryOp,
} from '../backend.js';
import { decode, encode, isHalf, storageArray, type DType, type StorageArray } from '../dtype.js';
import { philoxFill } from '../philox.js';
import { binaryFn, forEachStrided, matmulRef, reduceRef, unaryDerivative, unaryFn } from './kernels.js';

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
function store(out: Storage, values: ArrayLike<number>): void {
  const o = out as RefStorage;
  if (isHalf(o.dtype) || o.dtype === 'bool') o.data.set(encode(values, o.dtype));
  else (o.data as Float64Array).set(values);
}

function values(s: Storage): ArrayLike<number> {
  const r = s as RefStorage;
  return decode(r.data, r.dtype);
}

export class RefBackend implements Backend {
  /** @param name Registry name; another name lets a second instance stand in for a backend in tests. */
  constructor(readonly name: string = 'ref') {}

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
    return Promise.resolve(this.readSync(s));
  }

  readSync(s: Storage): StorageArray {
    return (s as RefStorage).data.slice();
  }

  computes(family: KernelFamily, dtype: DType): boolean {
    if (dtype === 'f32' || dtype === 'f64') return true;
    return family === 'elementwise' || family === 'reduce' ? dtype === 'i32' || dtype === 'bool' : false;
  }

  fill(out: Storage, value: number): void {
    const o = out as RefStorage;
    const v = encode([value], o.dtype)[0]!;
    o.data.fill(v);
  }

  random(out: Storage, dist: RandomDist, seed: number, offset: number): void {
    const tmp = new Float64Array(out.size);
    philoxFill(tmp, dist, seed, offset);
    store(out, tmp);
  }

  cast(x: Storage, out: Storage): void {
    store(out, out.dtype === 'i32' ? Int32Array.from(values(x), Math.trunc) : values(x));
  }

  copy(a: CopyArgs): void {
    const src = arr(a.src);
    const dst = arr(a.dst);
    forEachStrided(a.shape, a.srcStrides, a.dstStrides, a.srcStrides, (_i, s, d) => {
      dst[a.dstOffset + d] = src[a.srcOffset + s]!;
    });
  }

  unary(op: UnaryOp, x: Storage, out: Storage): void {
    const f = unaryFn(op);
    const xs = arr(x);
    const o = arr(out);
    for (let i = 0; i < out.size; i++) o[i] = f(xs[i]!);
  }

  unaryGrad(op: UnaryOp, x: Storage, dy: Storage, out: Storage): void {
    const f = unaryDerivative(op);
    const xs = arr(x);
    const g = arr(dy);
    const o = arr(out);
    for (let i = 0; i < out.size; i++) o[i] = g[i]! * f(xs[i]!);
  }

  binary(
    op: BinaryOp,
    a: Storage,
    aStrides: readonly number[],
    b: Storage,
    bStrides: readonly number[],
    out: Storage,
    shape: readonly number[],
  ): void {
    const f = binaryFn(op, a.dtype === 'i32');
    const as = arr(a);
    const bs = arr(b);
    const o = arr(out);
    forEachStrided(shape, aStrides, bStrides, aStrides, (i, ia, ib) => {
      o[i] = f(as[ia]!, bs[ib]!);
    });
  }

  where(
    cond: Storage,
    condStrides: readonly number[],
    a: Storage,
    aStrides: readonly number[],
    b: Storage,
    bStrides: readonly number[],
    out: Storage,
    shape: readonly number[],
  ): void {
    const c = arr(cond);
    const as = arr(a);
    const bs = arr(b);
    const o = arr(out);
    forEachStrided(shape, condStrides, aStrides, bStrides, (i, ic, ia, ib) => {
      o[i] = c[ic] ? as[ia]! : bs[ib]!;
    });
  }

  reduce(op: ReduceOp, x: Storage, outer: number, r: number, inner: number, out: Storage): void {
    reduceRef(op, arr(x), outer, r, inner, arr(out));
  }

  matmul(p: MatmulArgs): void {
    const a = arr(p.a);
    const b = arr(p.b);
    const out = arr(p.out);
    const bias = p.bias ? arr(p.bias) : null;
    const zeros = p.batchShape.map(() => 0);
    forEachStrided(p.batchShape, p.aBatchStrides, p.bBatchStrides, zeros, (bi, ao, bo) => {
      matmulRef(a, ao, b, bo, out, bi * p.m * p.n, p.m, p.n, p.k, p.transA, p.transB, bias);
    });
  }

  gather(x: Storage, out: Storage, p: IndexArgs): void {
    const xs = arr(x);
    const o = arr(out);
    const idx = arr(p.index);
    const [so, sj, si] = p.indexStrides;
    for (let oo = 0; oo < p.outer; oo++)
      for (let j = 0; j < p.n; j++)
        for (let i = 0; i < p.inner; i++) {
          const t = idx[oo * so + j * sj + i * si]!;
          o[(oo * p.n + j) * p.inner + i] = xs[(oo * p.srcDim + t) * p.inner + i]!;
        }
  }

  scatterAdd(dst: Storage, src: Storage, p: IndexArgs): void {
    const d = arr(dst);
    const s = arr(src);
    const idx = arr(p.index);
    const [so, sj, si] = p.indexStrides;
    for (let oo = 0; oo < p.outer; oo++)
      for (let j = 0; j < p.n; j++)
        for (let i = 0; i < p.inner; i++) {
          const t = idx[oo * so + j * sj + i * si]!;
          d[(oo * p.srcDim + t) * p.inner + i] += s[(oo * p.n + j) * p.inner + i]!;
        }
  }

  softmax(x: Storage, out: Storage, rows: number, cols: number, log: boolean): void {
    const xs = arr(x);
    const o = arr(out);
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      const lse = rowLogSumExp(xs, base, cols);
      for (let c = 0; c < cols; c++) {
        const z = xs[base + c]! - lse;
        o[base + c] = log ? z : Math.exp(z);
      }
    }
  }

  layerNorm(
    x: Storage,
    weight: Storage | null,
    bias: Storage | null,
    out: Storage,
    mean: Storage,
    rstd: Storage,
    rows: number,
    cols: number,
    eps: number,
    rms: boolean,
  ): void {
    const xs = arr(x);
    const w = weight ? arr(weight) : null;
    const b = bias ? arr(bias) : null;
    const o = arr(out);
    const mu = arr(mean);
    const rs = arr(rstd);
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
      const s = 1 / Math.sqrt(v / cols + eps);
      rs[r] = s;
      for (let c = 0; c < cols; c++) {
        let y = (xs[base + c]! - m) * s;
        if (w) y *= w[c]!;
        if (b) y += b[c]!;
        o[base + c] = y;
      }
    }
  }

  layerNormBackward(
    dy: Storage,
    x: Storage,
    weight: Storage | null,
    mean: Storage,
    rstd: Storage,
    dx: Storage,
    dWeight: Storage | null,
    dBias: Storage | null,
    rows: number,
    cols: number,
    rms: boolean,
  ): void {
    const g = arr(dy);
    const xs = arr(x);
    const w = weight ? arr(weight) : null;
    const mu = arr(mean);
    const rs = arr(rstd);
    const dxs = arr(dx);
    const dw = dWeight ? new Float64Array(cols) : null;
    const db = dBias ? new Float64Array(cols) : null;
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
    if (dw && dWeight) store(dWeight, dw);
    if (db && dBias) store(dBias, db);
  }

  crossEntropy(
    logits: Storage,
    targets: Storage,
    loss: Storage,
    lse: Storage,
    rows: number,
    classes: number,
    ignoreIndex: number,
    smoothing: number,
  ): void {
    const x = arr(logits);
    const t = arr(targets);
    const l = arr(loss);
    const ls = arr(lse);
    for (let r = 0; r < rows; r++) {
      const base = r * classes;
      const z = rowLogSumExp(x, base, classes);
      ls[r] = z;
      if (t[r] === ignoreIndex) {
        l[r] = 0;
        continue;
      }
      let sum = 0;
      if (smoothing > 0) for (let c = 0; c < classes; c++) sum += x[base + c]!;
      l[r] = z - (1 - smoothing) * x[base + t[r]!]! - (smoothing / classes) * sum;
    }
  }

  crossEntropyBackward(
    logits: Storage,
    targets: Storage,
    lse: Storage,
    dloss: Storage,
    dlogits: Storage,
    rows: number,
    classes: number,
    ignoreIndex: number,
    smoothing: number,
  ): void {
    const x = arr(logits);
    const t = arr(targets);
    const ls = arr(lse);
    const g = arr(dloss);
    const d = arr(dlogits);
    for (let r = 0; r < rows; r++) {
      const base = r * classes;
      const ignored = t[r] === ignoreIndex;
      for (let c = 0; c < classes; c++) {
        if (ignored) {
          d[base + c] = 0;
          continue;
        }
        const p = Math.exp(x[base + c]! - ls[r]!);
        const target = (c === t[r] ? 1 - smoothing : 0) + smoothing / classes;
        d[base + c] = g[r]! * (p - target);
      }
    }
  }

  attention(p: AttentionArgs, out: Storage, lse: Storage): void {
    const q = arr(p.q);
    const k = arr(p.k);
    const v = arr(p.v);
    const o = arr(out);
    const ls = arr(lse);
    const scores = new Float64Array(p.tk);
    const acc = new Float64Array(p.dv);
    for (let b = 0; b < p.batch; b++)
      for (let i = 0; i < p.tq; i++) {
        const z = this.attentionScores(p, b, i, q, k, scores);
        ls[b * p.tq + i] = z;
        acc.fill(0);
        if (z !== -Infinity)
          for (let j = 0; j < p.tk; j++) {
            const pj = Math.exp(scores[j]! - z);
            const vRow = (b * p.tk + j) * p.dv;
            for (let c = 0; c < p.dv; c++) acc[c]! += pj * v[vRow + c]!;
          }
        const oRow = (b * p.tq + i) * p.dv;
        for (let c = 0; c < p.dv; c++) o[oRow + c] = acc[c]!;
      }
  }

  attentionBackward(
    p: AttentionArgs,
    out: Storage,
    lse: Storage,
    dout: Storage,
    dq: Storage,
    dk: Storage,
    dv: Storage,
  ): void {
    const q = arr(p.q);
    const k = arr(p.k);
    const v = arr(p.v);
    const o = arr(out);
    const ls = arr(lse);
    const g = arr(dout);
    const dQ = new Float64Array(dq.size);
    const dK = new Float64Array(dk.size);
    const dV = new Float64Array(dv.size);
    const scores = new Float64Array(p.tk);
    for (let b = 0; b < p.batch; b++)
      for (let i = 0; i < p.tq; i++) {
        const z = ls[b * p.tq + i]!;
        if (z === -Infinity) continue;
        this.attentionScores(p, b, i, q, k, scores);
        const qRow = (b * p.tq + i) * p.d;
        const oRow = (b * p.tq + i) * p.dv;
        // Dᵢ = dOᵢ·Oᵢ = Σⱼ Pᵢⱼ·dPᵢⱼ
        let di = 0;
        for (let c = 0; c < p.dv; c++) di += g[oRow + c]! * o[oRow + c]!;
        for (let j = 0; j < p.tk; j++) {
          const pj = Math.exp(scores[j]! - z);
          if (pj === 0) continue;
          const vRow = (b * p.tk + j) * p.dv;
          const kRow = (b * p.tk + j) * p.d;
          let dp = 0;
          for (let c = 0; c < p.dv; c++) {
            dV[vRow + c]! += pj * g[oRow + c]!;
            dp += g[oRow + c]! * v[vRow + c]!;
          }
          const ds = pj * (dp - di) * p.scale;
          for (let c = 0; c < p.d; c++) {
            dQ[qRow + c]! += ds * k[kRow + c]!;
            dK[kRow + c]! += ds * q[qRow + c]!;
          }
        }
      }
    store(dq, dQ);
    store(dk, dK);
    store(dv, dV);
  }

  adamUpdate(a: OptimizerArgs): void {
    const p = arr(a.param);
    const g = arr(a.grad);
    const m = arr(a.m);
    const v = arr(a.v);
    const bc1 = 1 - a.beta1 ** a.step;
    const bc2 = 1 - a.beta2 ** a.step;
    const decoupled = a.decoupled ?? true;
    for (let i = 0; i < p.length; i++) {
      let w = p[i]!;
      let gi = g[i]!;
      if (decoupled) w -= a.lr * a.weightDecay * w;
      else gi += a.weightDecay * w;
      m[i] = a.beta1 * m[i]! + (1 - a.beta1) * gi;
      v[i] = a.beta2 * v[i]! + (1 - a.beta2) * gi * gi;
      // read back the stored moments, so f32 state rounds as a native kernel's does
      p[i] = w - (a.lr * (m[i]! / bc1)) / (Math.sqrt(v[i]! / bc2) + a.eps);
    }
  }

  lambUpdate(a: OptimizerArgs): number {
    const p = arr(a.param);
    const g = arr(a.grad);
    const m = arr(a.m);
    const v = arr(a.v);
    const bc = a.biasCorrection ?? true;
    const bc1 = bc ? 1 - a.beta1 ** a.step : 1;
    const bc2 = bc ? 1 - a.beta2 ** a.step : 1;
    const r = new Float64Array(p.length);
    let wNorm = 0;
    let rNorm = 0;
    for (let i = 0; i < p.length; i++) {
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
    for (let i = 0; i < p.length; i++) p[i] = p[i]! - a.lr * trust * r[i]!;
    return trust;
  }

  // Scores of query (b, i) against every key, masked entries −∞; returns their log-sum-exp.
  private attentionScores(p: AttentionArgs, b: number, i: number, q: Num, k: Num, scores: Float64Array): number {
    const mask = p.mask ? arr(p.mask) : null;
    const boolMask = p.mask?.dtype === 'bool';
    const mBase = b * (p.maskBatchStride ?? 0) + i * p.tk;
    const qRow = (b * p.tq + i) * p.d;
    for (let j = 0; j < p.tk; j++) {
      if ((p.causal && j > i) || (boolMask && !mask![mBase + j])) {
        scores[j] = -Infinity;
        continue;
      }
      const kRow = (b * p.tk + j) * p.d;
      let s = 0;
      for (let c = 0; c < p.d; c++) s += q[qRow + c]! * k[kRow + c]!;
      s *= p.scale;
      if (mask && !boolMask) s += mask[mBase + j]!;
      scores[j] = s;
    }
    return rowLogSumExp(scores, 0, p.tk);
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
