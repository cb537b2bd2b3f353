// attention and attentionBackward, flash-style (FlashAttention-2): a workgroup owns WG·RQ rows of
// one (batch, head), RQ per invocation, and streams the rows of the other side in tiles of TS,
// never forming the Tq×Tk scores.
//   forward  rows: queries; tiles: keys and values. Online softmax: running max m, sum l and
//            acc = Σ exp(s − m)·z·v, rescaled by exp(m − m') when the max grows; out = acc/l and
//            lse = m + log l (lse before dropout; −∞ and out = 0 for a row with nothing to attend).
//   dq       rows: queries; tiles: keys and values. P = exp(s − lse) recomputed,
//            dS = P∘(dP∘Z − Dᵢ)·scale with dP = dO·vᵀ and Dᵢ = dOᵢ·Oᵢ; dq = Σⱼ dSᵢⱼ·kⱼ. Also
//            writes Dᵢ to `delta` for dkdv, which runs after it.
//   dkdv     rows: keys; tiles: queries with their dO, lse and Dᵢ. dv = Σᵢ Pᵢⱼ·Zᵢⱼ·dOᵢ,
//            dk = Σᵢ dSᵢⱼ·qᵢ.
// Each output element is written once, by the invocation owning its row: no atomics, and dq, dk,
// dv may be views into one packed gradient. With causal masking, tiles wholly past the diagonal
// are never visited (the forward and dq stop at the last visible key, dkdv starts at the first
// query that sees its keys), and with a sliding window (params [57] > 0: query i sees keys
// i + causalOffset − window < j ≤ i + causalOffset) neither are tiles wholly before it (the
// forward and dq start at the first key the tile's first query sees, dkdv stops after the last
// query whose window reaches its keys), so the work is O(Tq·window).
// Grouped-query attention: k and v have heads/G heads (G = params [56]); query head h reads kv
// head h / G. The forward and dq run a workgroup per query head as before; dkdv runs one per kv
// head and loops over its G query heads, so dk and dv sum over the group with no race.
//
// The tile rows are read straight from the storage buffers, each element once per invocation
// (or, with LANES, once per subgroup) and used for RQ rows. GPUs serve such reads from cache; on
// lavapipe (Mesa 25, LLVM 15) every load whose address is not a constant, from storage or
// workgroup memory alike, becomes a branch and a scalar load per SIMD lane, so staging tiles in
// workgroup memory only adds barriers (measured: no faster than direct reads) and the cost is
// set by the multiply-adds each loaded element feeds. With LANES (CPU drivers with subgroups:
// WG = SG, one subgroup per workgroup) lane ℓ loads tile rows ℓ, ℓ + SG, … and `share` (in defs:
// subgroupBroadcast from each of the SG lanes, a vector shuffle there) hands every row to every
// lane: SG times fewer loads, and SG times fewer load sites for LLVM to compile. Only the dropout
// factors go through workgroup memory: one Philox block serves four elements, so the workgroup
// computes each block once for the whole tile.
//
// Operands of any width: the per-row operands (q, or k and v; and dO for dq) sit in private
// arrays of R1/R2 words per row when the host found them narrow enough (≤ 256), else are read
// from memory; the accumulators hold the columns [c0, c0 + cn) (and [e0, e0 + en)) of one pass
// of at most 256, the host running more passes for wider rows (each recomputes the scores).
//
// Specialisation (defs): WG, TS, RQ, R1, R2, A1, A2 (sizes above), LANES, SG and `share` (a
// placeholder without LANES), CAUSAL, MASK (0 none, 1 bool as u32 words 0/1, 2 float as f32
// bits), DROPOUT, ZS (WG·RQ·TS with dropout, else 1).
// Params: [0] heads, [1] tq, [2] tk, [3] qkDim, [4] vDim, [5] scale (f32), [6] causalOffset
// (i32), [7] −∞ (f32; WGSL has no infinite literal), [8..9] seed, [10..11] dropoutOffset,
// [12] dropoutThreshold (u32), [13] dropoutScale (f32), [14..17] mask strides, [18] c0, [19] cn,
// [20] e0, [21] en, [22] batch·heads (batch·kv heads for dkdv), [23] RQ·TS (see pairs()); views
// (offset, batch, head and row strides) of q [24], k [28], v [32], out [36], dout [40], dq [44],
// dk [48], dv [52] (k, v, dk, dv indexed by kv head); [56] G, query heads per kv head; [57] window
// (0: none). Workgroups: x the row tile, y + z·(groups in y) the batch·head (batch·kv head).

const VQ = 24u;
const VK = 28u;
const VV = 32u;
const VO = 36u;
const VG = 40u;
const VDQ = 44u;
const VDK = 48u;
const VDV = 52u;

fn heads() -> u32 { return pu(0u); }
fn tq() -> u32 { return pu(1u); }
fn tk() -> u32 { return pu(2u); }
fn dqk() -> u32 { return pu(3u); }
fn dvv() -> u32 { return pu(4u); }
fn ninf() -> f32 { return pf(7u); }
fn group() -> u32 { return pu(56u); }
fn window() -> i32 { return pi(57u); }

// The first element of row t of (b, h) in the view whose words start at w.
fn row_at(w: u32, b: u32, h: u32, t: u32) -> u32 {
  return pu(w) + b * pu(w + 1u) + h * pu(w + 2u) + t * pu(w + 3u);
}

// The row stride of the view at w.
fn row_stride(w: u32) -> u32 { return pu(w + 3u); }

// Row t0 + g + lane of a tile, clamped: rows past `last` read row `last` again (bias() hides
// them). With LANES, lane ℓ loads rows ℓ, ℓ + SG, … of the tile for the whole subgroup.
fn tile_row(t0: u32, g: u32, lane: u32, last: u32) -> u32 { return min(t0 + g + lane, last); }

// Keys past the last one the queries [i0, i0 + n) can see (causal), else tk.
fn key_end(i0: u32, n: u32) -> u32 {
  if (!CAUSAL) { return tk(); }
  let last = min(i0 + n, tq()) - 1u;
  return u32(clamp(i32(last) + pi(6u) + 1, 0, i32(tk())));
}

// The first query that can see key j0 (causal), else 0.
fn query_start(j0: u32) -> u32 {
  if (!CAUSAL) { return 0u; }
  return u32(clamp(i32(j0) - pi(6u), 0, i32(tq())));
}

// The first key query i0 sees (a window), else 0.
fn key_start(i0: u32) -> u32 {
  if (!CAUSAL || window() == 0) { return 0u; }
  return u32(clamp(i32(i0) + pi(6u) - window() + 1, 0, i32(tk())));
}

// Queries past the last one whose window reaches keys [j0, j0 + n), else tq.
fn query_end(j0: u32, n: u32) -> u32 {
  if (!CAUSAL || window() == 0) { return tq(); }
  let last = min(j0 + n, tk()) - 1u;
  return u32(clamp(i32(last) - pi(6u) + window(), 0, i32(tq())));
}

// The additive bias of query i and key j: 0, or the float mask, or −∞ where the bool mask, causal
// masking, the window or the padding of an edge tile (past tq or tk) hides the key.
fn bias(b: u32, h: u32, i: u32, j: u32) -> f32 {
  if (i >= tq() || j >= tk()) { return ninf(); }
  if (CAUSAL && (i32(j) > i32(i) + pi(6u) || (window() > 0 && i32(j) <= i32(i) + pi(6u) - window()))) { return ninf(); }
  if (MASK == 0u) { return 0.0; }
  let m = mask[b * pu(14u) + h * pu(15u) + i * pu(16u) + j * pu(17u)];
  if (MASK == 1u) { return select(ninf(), 0.0, m != 0u); }
  return bitcast<f32>(m);
}

// The score from q·k and the bias (a hidden key stays −∞ whatever q·k is, as in ref).
fn score(dot: f32, bias: f32) -> f32 { return select(dot * pf(5u) + bias, ninf(), bias == ninf()); }

// The biases and dropout factors of a tile's RQ·TS pairs are gathered by a loop whose trip count
// comes from params ([23] = RQ·TS), so that the compiler keeps it rolled: a load whose address
// differs per invocation is, on lavapipe, a branch and a scalar load per SIMD lane, and unrolled
// across the tile those sites made the pipeline compile take 15–20 s (mask and dropout on).
fn pairs() -> u32 { return pu(23u); }

// Dropout factors (dropoutScale where the element's Philox word is ≥ the threshold, else 0) of
// queries [qa, qa + nq) × keys [ka, ka + nk) of (b, h) = bh, into zs[r·nk + c], between two
// barriers. Element e = (bh·tq + i)·tk + j (64-bit) takes word e mod 4 of block
// dropoutOffset + ⌊e/4⌋; a row's nk keys span nk/4 + 1 blocks (nk a multiple of 4), which the
// invocations share.
var<workgroup> zs: array<f32, ZS>;

fn dropout_tile(lid: u32, bh: u32, qa: u32, nq: u32, ka: u32, nk: u32) {
  workgroupBarrier(); // the previous tile's factors are read
  let nb = nk / 4u + 1u;
  for (var t = lid; t < nq * nb; t += WG) {
    let r = t / nb;
    let blk = t % nb;
    let rowk = mulhilo(bh * tq() + qa + r, tk()); // (hi, lo) of the row's first element
    let lo = rowk.y + ka;
    let hi = rowk.x + select(0u, 1u, lo < ka);
    let phase = lo & 3u;
    var c0 = ((lo >> 2u) | (hi << 30u)) + blk;
    var c1 = (hi >> 2u) + select(0u, 1u, c0 < blk);
    c0 += pu(10u);
    c1 += pu(11u) + select(0u, 1u, c0 < pu(10u));
    let w = philox(c0, c1, pu(8u), pu(9u));
    for (var u = 0u; u < 4u; u++) {
      let c = i32(blk * 4u + u) - i32(phase);
      if (c >= 0 && c < i32(nk)) { zs[r * nk + u32(c)] = select(0.0, pf(13u), w[u] >= pu(12u)); }
    }
  }
  workgroupBarrier();
}

// Column c of key (value) rows j0 … j0 + TS − 1 of (b, h), whose rows start at kb (vb), for the
// forward and dq kernels (every kernel binds q, k and v; dkdv streams q and dO instead: q_col, g_col).
fn k_col(kb: u32, j0: u32, c: u32, lane: u32) -> array<f32, TS> {
  var x: array<f32, TS>;
  if (LANES) {
    for (var g = 0u; g < TS; g += SG) {
      let y = share(k[kb + tile_row(j0, g, lane, tk() - 1u) * row_stride(VK) + c]);
      for (var r = 0u; r < SG; r++) { x[g + r] = y[r]; }
    }
  } else {
    for (var r = 0u; r < TS; r++) { x[r] = k[kb + tile_row(j0, r, 0u, tk() - 1u) * row_stride(VK) + c]; }
  }
  return x;
}

fn v_col(vb: u32, j0: u32, c: u32, lane: u32) -> array<f32, TS> {
  var x: array<f32, TS>;
  if (LANES) {
    for (var g = 0u; g < TS; g += SG) {
      let y = share(v[vb + tile_row(j0, g, lane, tk() - 1u) * row_stride(VV) + c]);
      for (var r = 0u; r < SG; r++) { x[g + r] = y[r]; }
    }
  } else {
    for (var r = 0u; r < TS; r++) { x[r] = v[vb + tile_row(j0, r, 0u, tk() - 1u) * row_stride(VV) + c]; }
  }
  return x;
}

// @kernel forward
// Bindings: q, k, v, out, lse, mask. Invocation lid owns queries i0 + u·WG + lid, u < RQ: each
// key and value element read serves RQ rows.
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;
@group(0) @binding(7) var<storage, read> mask: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let bh = wid.z * nwg.y + wid.y;
  if (bh >= pu(22u)) { return; }
  let b = bh / heads();
  let h = bh % heads();
  let Tq = tq();
  let D = dqk();
  let i0 = wid.x * WG * RQ;
  var qrow: array<u32, RQ>;
  var qr: array<f32, RQ * R1>;
  for (var u = 0u; u < RQ; u++) {
    qrow[u] = row_at(VQ, b, h, min(i0 + u * WG + lid, Tq - 1u));
    if (R1 > 1u) { for (var c = 0u; c < D; c++) { qr[u * R1 + c] = q[qrow[u] + c]; } }
  }
  let kb = row_at(VK, b, h / group(), 0u);
  let vb = row_at(VV, b, h / group(), 0u);
  let c0 = pu(18u);
  let cn = pu(19u);
  var acc: array<f32, RQ * A1>;
  var m: array<f32, RQ>;
  var l: array<f32, RQ>;
  var alpha: array<f32, RQ>;
  for (var u = 0u; u < RQ; u++) { m[u] = ninf(); }
  let kend = key_end(i0, WG * RQ);
  for (var j0 = key_start(i0); j0 < kend; j0 += TS) {
    if (DROPOUT) { dropout_tile(lid, bh, i0, WG * RQ, j0, TS); }
    // s = q·kᵀ for the tile
    var s: array<f32, RQ * TS>;
    for (var t = 0u; t < RQ * TS; t++) { s[t] = 0.0; } // zeroed explicitly: on Dawn + lavapipe an array var declared without initialiser in a loop body keeps the last iteration's values
    for (var c = 0u; c < D; c++) {
      let kc = k_col(kb, j0, c, lid);
      for (var u = 0u; u < RQ; u++) {
        var x: f32;
        if (R1 > 1u) { x = qr[u * R1 + c]; } else { x = q[qrow[u] + c]; }
        for (var r = 0u; r < TS; r++) { s[u * TS + r] += x * kc[r]; }
      }
    }
    var mb: array<f32, RQ * TS>;
    var zf: array<f32, RQ * TS>;
    for (var t = 0u; t < pairs(); t++) {
      let u = t / TS;
      mb[t] = bias(b, h, i0 + u * WG + lid, j0 + t % TS);
      if (DROPOUT) { zf[t] = zs[(u * WG + lid) * TS + t % TS]; }
    }
    for (var u = 0u; u < RQ; u++) {
      var mt = ninf();
      for (var r = 0u; r < TS; r++) {
        s[u * TS + r] = score(s[u * TS + r], mb[u * TS + r]);
        mt = max(mt, s[u * TS + r]);
      }
      // m' = max(m, max s); l and acc rescale by exp(m − m') (1 while nothing is visible yet)
      let mn = max(m[u], mt);
      alpha[u] = select(exp(m[u] - mn), 1.0, m[u] == mn);
      var rs = 0.0;
      for (var r = 0u; r < TS; r++) {
        let p = select(exp(s[u * TS + r] - mn), 0.0, s[u * TS + r] == ninf());
        rs += p;
        var z = 1.0;
        if (DROPOUT) { z = zf[u * TS + r]; }
        s[u * TS + r] = p * z;
      }
      l[u] = l[u] * alpha[u] + rs;
      m[u] = mn;
    }
    for (var e = 0u; e < cn; e++) {
      let ve = v_col(vb, j0, c0 + e, lid);
      for (var u = 0u; u < RQ; u++) {
        var a = acc[u * A1 + e] * alpha[u];
        for (var r = 0u; r < TS; r++) { a += s[u * TS + r] * ve[r]; }
        acc[u * A1 + e] = a;
      }
    }
  }
  for (var u = 0u; u < RQ; u++) {
    let i = i0 + u * WG + lid;
    if (i < Tq) {
      let orow = row_at(VO, b, h, i) + c0;
      let live = m[u] != ninf();
      let inv = select(0.0, 1.0 / l[u], live);
      for (var e = 0u; e < cn; e++) { out[orow + e] = acc[u * A1 + e] * inv; }
      if (c0 == 0u) { lse[bh * Tq + i] = select(ninf(), m[u] + log(l[u]), live); }
    }
  }
}

// @kernel dq
// Bindings: q, k, v, out, lse, dout, mask, dq, delta (Dᵢ, [batch·heads·tq], for dkdv). Invocation
// lid owns queries i0 + u·WG + lid, u < RQ.
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read> out: array<f32>;
@group(0) @binding(6) var<storage, read> lse: array<f32>;
@group(0) @binding(7) var<storage, read> dout: array<f32>;
@group(0) @binding(8) var<storage, read> mask: array<u32>;
@group(0) @binding(9) var<storage, read_write> dq: array<f32>;
@group(0) @binding(10) var<storage, read_write> delta: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let bh = wid.z * nwg.y + wid.y;
  if (bh >= pu(22u)) { return; }
  let b = bh / heads();
  let h = bh % heads();
  let Tq = tq();
  let D = dqk();
  let Dv = dvv();
  let i0 = wid.x * WG * RQ;
  var qrow: array<u32, RQ>;
  var grow: array<u32, RQ>;
  var qr: array<f32, RQ * R1>;
  var gr: array<f32, RQ * R2>;
  var di: array<f32, RQ>;
  var L: array<f32, RQ>;
  for (var u = 0u; u < RQ; u++) {
    let i = i0 + u * WG + lid;
    let ic = min(i, Tq - 1u);
    qrow[u] = row_at(VQ, b, h, ic);
    grow[u] = row_at(VG, b, h, ic);
    let orow = row_at(VO, b, h, ic);
    if (R1 > 1u) { for (var c = 0u; c < D; c++) { qr[u * R1 + c] = q[qrow[u] + c]; } }
    if (R2 > 1u) { for (var c = 0u; c < Dv; c++) { gr[u * R2 + c] = dout[grow[u] + c]; } }
    // Dᵢ = dOᵢ·Oᵢ (= Σⱼ Pᵢⱼ·Zᵢⱼ·dPᵢⱼ: out holds the kept, scaled terms)
    var d = 0.0;
    for (var c = 0u; c < Dv; c++) { d += dout[grow[u] + c] * out[orow + c]; }
    di[u] = d;
    // a row past tq or with nothing to attend gets P = 0
    L[u] = select(lse[bh * Tq + ic], ninf(), i >= Tq);
  }
  let kb = row_at(VK, b, h / group(), 0u);
  let vb = row_at(VV, b, h / group(), 0u);
  let c0 = pu(18u);
  let cn = pu(19u);
  let scale = pf(5u);
  var acc: array<f32, RQ * A1>;
  let kend = key_end(i0, WG * RQ);
  for (var j0 = key_start(i0); j0 < kend; j0 += TS) {
    if (DROPOUT) { dropout_tile(lid, bh, i0, WG * RQ, j0, TS); }
    // s = q·kᵀ and dp = dO·vᵀ for the tile
    var s: array<f32, RQ * TS>;
    var dp: array<f32, RQ * TS>;
    for (var t = 0u; t < RQ * TS; t++) { s[t] = 0.0; dp[t] = 0.0; } // explicitly: see the forward
    for (var c = 0u; c < D; c++) {
      let kc = k_col(kb, j0, c, lid);
      for (var u = 0u; u < RQ; u++) {
        var x: f32;
        if (R1 > 1u) { x = qr[u * R1 + c]; } else { x = q[qrow[u] + c]; }
        for (var r = 0u; r < TS; r++) { s[u * TS + r] += x * kc[r]; }
      }
    }
    for (var c = 0u; c < Dv; c++) {
      let vc = v_col(vb, j0, c, lid);
      for (var u = 0u; u < RQ; u++) {
        var x: f32;
        if (R2 > 1u) { x = gr[u * R2 + c]; } else { x = dout[grow[u] + c]; }
        for (var r = 0u; r < TS; r++) { dp[u * TS + r] += x * vc[r]; }
      }
    }
    // s becomes dS = P∘(dP∘Z − Dᵢ)·scale
    var mb: array<f32, RQ * TS>;
    var zf: array<f32, RQ * TS>;
    for (var t = 0u; t < pairs(); t++) {
      let u = t / TS;
      mb[t] = bias(b, h, i0 + u * WG + lid, j0 + t % TS);
      if (DROPOUT) { zf[t] = zs[(u * WG + lid) * TS + t % TS]; }
    }
    for (var u = 0u; u < RQ; u++) {
      for (var r = 0u; r < TS; r++) {
        let sc = score(s[u * TS + r], mb[u * TS + r]);
        let p = select(exp(sc - L[u]), 0.0, sc == ninf() || L[u] == ninf());
        var z = 1.0;
        if (DROPOUT) { z = zf[u * TS + r]; }
        s[u * TS + r] = p * (dp[u * TS + r] * z - di[u]) * scale;
      }
    }
    // dq += dS·K over this pass's columns
    for (var c = 0u; c < cn; c++) {
      let kc = k_col(kb, j0, c0 + c, lid);
      for (var u = 0u; u < RQ; u++) {
        var a = acc[u * A1 + c];
        for (var r = 0u; r < TS; r++) { a += s[u * TS + r] * kc[r]; }
        acc[u * A1 + c] = a;
      }
    }
  }
  for (var u = 0u; u < RQ; u++) {
    let i = i0 + u * WG + lid;
    if (i < Tq) {
      let drow = row_at(VDQ, b, h, i) + c0;
      for (var c = 0u; c < cn; c++) { dq[drow + c] = acc[u * A1 + c]; }
      if (c0 == 0u) { delta[bh * Tq + i] = di[u]; }
    }
  }
}

// @kernel dkdv
// Bindings: q, k, v, lse, dout, delta (written by dq), mask, dk, and dv (declared in defs, with
// `st_dv`) unless dk and dv are one storage: two writable bindings of one buffer would alias,
// which WebGPU forbids. 9 storage bindings: past WebGPU's default 8 per stage but within
// lavapipe's 16 (the device asks for the adapter's limit). Invocation lid owns keys
// j0 + u·WG + lid, u < RQ.
@group(0) @binding(2) var<storage, read> q: array<f32>;
@group(0) @binding(3) var<storage, read> k: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read> lse: array<f32>;
@group(0) @binding(6) var<storage, read> dout: array<f32>;
@group(0) @binding(7) var<storage, read> delta: array<f32>;
@group(0) @binding(8) var<storage, read> mask: array<u32>;
@group(0) @binding(9) var<storage, read_write> dk: array<f32>;

// Column c of query (dO) rows i0 … i0 + TS − 1 of (b, h), whose rows start at qb (gb).
fn q_col(qb: u32, i0: u32, c: u32, lane: u32) -> array<f32, TS> {
  var x: array<f32, TS>;
  if (LANES) {
    for (var g = 0u; g < TS; g += SG) {
      let y = share(q[qb + tile_row(i0, g, lane, tq() - 1u) * row_stride(VQ) + c]);
      for (var r = 0u; r < SG; r++) { x[g + r] = y[r]; }
    }
  } else {
    for (var r = 0u; r < TS; r++) { x[r] = q[qb + tile_row(i0, r, 0u, tq() - 1u) * row_stride(VQ) + c]; }
  }
  return x;
}

fn g_col(gb: u32, i0: u32, c: u32, lane: u32) -> array<f32, TS> {
  var x: array<f32, TS>;
  if (LANES) {
    for (var g = 0u; g < TS; g += SG) {
      let y = share(dout[gb + tile_row(i0, g, lane, tq() - 1u) * row_stride(VG) + c]);
      for (var r = 0u; r < SG; r++) { x[g + r] = y[r]; }
    }
  } else {
    for (var r = 0u; r < TS; r++) { x[r] = dout[gb + tile_row(i0, r, 0u, tq() - 1u) * row_stride(VG) + c]; }
  }
  return x;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let bhk = wid.z * nwg.y + wid.y;
  if (bhk >= pu(22u)) { return; }
  let G = group();
  let b = bhk / (heads() / G);
  let hk = bhk % (heads() / G);
  let Tq = tq();
  let Tk = tk();
  let D = dqk();
  let Dv = dvv();
  let j0 = wid.x * WG * RQ;
  var krow: array<u32, RQ>;
  var vrow: array<u32, RQ>;
  var kr: array<f32, RQ * R1>;
  var vr: array<f32, RQ * R2>;
  for (var u = 0u; u < RQ; u++) {
    let jc = min(j0 + u * WG + lid, Tk - 1u);
    krow[u] = row_at(VK, b, hk, jc);
    vrow[u] = row_at(VV, b, hk, jc);
    if (R1 > 1u) { for (var c = 0u; c < D; c++) { kr[u * R1 + c] = k[krow[u] + c]; } }
    if (R2 > 1u) { for (var c = 0u; c < Dv; c++) { vr[u * R2 + c] = v[vrow[u] + c]; } }
  }
  let c0 = pu(18u);
  let cn = pu(19u);
  let e0 = pu(20u);
  let en = pu(21u);
  let scale = pf(5u);
  var dka: array<f32, RQ * A1>;
  var dva: array<f32, RQ * A2>;
  let iend = query_end(j0, WG * RQ);
  for (var hq = 0u; hq < G; hq++) {
  let h = hk * G + hq;
  let bh = b * heads() + h;
  let qb = row_at(VQ, b, h, 0u);
  let gb = row_at(VG, b, h, 0u);
  for (var i0 = query_start(j0); i0 < iend; i0 += TS) {
    if (DROPOUT) { dropout_tile(lid, bh, i0, TS, j0, WG * RQ); }
    // s = q·kᵀ and dp = dO·vᵀ for the tile (rows past tq read the last row again)
    var s: array<f32, RQ * TS>;
    var dp: array<f32, RQ * TS>;
    for (var t = 0u; t < RQ * TS; t++) { s[t] = 0.0; dp[t] = 0.0; } // explicitly: see the forward
    for (var c = 0u; c < D; c++) {
      let qc = q_col(qb, i0, c, lid);
      for (var u = 0u; u < RQ; u++) {
        var x: f32;
        if (R1 > 1u) { x = kr[u * R1 + c]; } else { x = k[krow[u] + c]; }
        for (var r = 0u; r < TS; r++) { s[u * TS + r] += qc[r] * x; }
      }
    }
    for (var c = 0u; c < Dv; c++) {
      let gc = g_col(gb, i0, c, lid);
      for (var u = 0u; u < RQ; u++) {
        var x: f32;
        if (R2 > 1u) { x = vr[u * R2 + c]; } else { x = v[vrow[u] + c]; }
        for (var r = 0u; r < TS; r++) { dp[u * TS + r] += gc[r] * x; }
      }
    }
    // s becomes dS = P∘(dP∘Z − Dᵢ)·scale and dp becomes P∘Z
    var L: array<f32, TS>;
    var di: array<f32, TS>;
    for (var r = 0u; r < pairs() / RQ; r++) { // TS, rolled: see pairs()
      let ir = min(i0 + r, Tq - 1u);
      L[r] = lse[bh * Tq + ir];
      di[r] = delta[bh * Tq + ir];
    }
    var mb: array<f32, RQ * TS>;
    var zf: array<f32, RQ * TS>;
    for (var t = 0u; t < pairs(); t++) {
      let u = t / TS;
      mb[t] = bias(b, h, i0 + t % TS, j0 + u * WG + lid);
      if (DROPOUT) { zf[t] = zs[(t % TS) * WG * RQ + u * WG + lid]; }
    }
    for (var u = 0u; u < RQ; u++) {
      for (var r = 0u; r < TS; r++) {
        let sc = score(s[u * TS + r], mb[u * TS + r]);
        let p = select(exp(sc - L[r]), 0.0, sc == ninf() || L[r] == ninf());
        var z = 1.0;
        if (DROPOUT) { z = zf[u * TS + r]; }
        s[u * TS + r] = p * (dp[u * TS + r] * z - di[r]) * scale;
        dp[u * TS + r] = p * z;
      }
    }
    // dv += (P∘Z)ᵀ·dO and dk += dSᵀ·Q over this pass's columns
    for (var c = 0u; c < en; c++) {
      let gc = g_col(gb, i0, e0 + c, lid);
      for (var u = 0u; u < RQ; u++) {
        var a = dva[u * A2 + c];
        for (var r = 0u; r < TS; r++) { a += dp[u * TS + r] * gc[r]; }
        dva[u * A2 + c] = a;
      }
    }
    for (var c = 0u; c < cn; c++) {
      let qc = q_col(qb, i0, c0 + c, lid);
      for (var u = 0u; u < RQ; u++) {
        var a = dka[u * A1 + c];
        for (var r = 0u; r < TS; r++) { a += s[u * TS + r] * qc[r]; }
        dka[u * A1 + c] = a;
      }
    }
  }
  } // query heads of the group
  for (var u = 0u; u < RQ; u++) {
    let j = j0 + u * WG + lid;
    if (j < Tk) {
      let krw = row_at(VDK, b, hk, j) + c0;
      for (var c = 0u; c < cn; c++) { dk[krw + c] = dka[u * A1 + c]; }
      let vrw = row_at(VDV, b, hk, j) + e0;
      for (var c = 0u; c < en; c++) { st_dv(vrw + c, dva[u * A2 + c]); }
    }
  }
}
