// matmulInt8 (kernels/ops.mjs): out = quant(a) @ Wᵀ · scale + bias with int8 weights packed four
// to an i32 word (word (q, j) of w [⌈k/4⌉, n] holds W[j, 4q … 4q + 3], byte b = element 4q + b).
// Two passes, as the cpu kernel (kernels/cpu/isa/quantized.cc): `quant` turns each row of a into
// int8 words xq [m, ⌈k/4⌉] with its factor amax/127 (NaN for a row with a non-finite element),
// then `main` takes one output per invocation: an exact 32-bit sum of the products of the bytes
// (extractBits sign-extends), scaled in f32.
// Params: [0] m, [1] n, [2] k, [3] kq = ⌈k/4⌉.

// @kernel quant
// One invocation per row of a.
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> xq: array<i32>;
@group(0) @binding(4) var<storage, read_write> factor: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_id(gid, nwg);
  let m = pu(0u);
  let k = pu(2u);
  let kq = pu(3u);
  if (i >= m) { return; }
  var amax = 0.0;
  var finite = true;
  for (var p = 0u; p < k; p++) {
    let v = abs(a[i * k + p]);
    finite = finite && (bitcast<u32>(v) < 0x7f800000u);
    amax = max(amax, v);
  }
  var inv = 0.0;
  if (amax > 0.0) { inv = 127.0 / amax; }
  for (var q = 0u; q < kq; q++) {
    var word = 0u;
    for (var b = 0u; b < 4u; b++) {
      let p = 4u * q + b;
      if (p < k) { word |= (bitcast<u32>(i32(round(a[i * k + p] * inv))) & 0xffu) << (8u * b); }
    }
    xq[i * kq + q] = bitcast<i32>(word);
  }
  var f = amax / 127.0;
  // NaN as a runtime value (a constant expression may not be NaN in WGSL)
  var nan_bits = 0x7fc00000u;
  if (!finite) { f = bitcast<f32>(nan_bits); }
  factor[i] = f;
}

// @kernel main
// One invocation per output element (i, j).
@group(0) @binding(2) var<storage, read> xq: array<i32>;
@group(0) @binding(3) var<storage, read> w: array<i32>;
@group(0) @binding(4) var<storage, read> scale: array<f32>;
@group(0) @binding(5) var<storage, read> factor: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read> bias: array<f32>;

fn dot4(x: i32, y: i32) -> i32 {
  var s = 0;
  for (var b = 0u; b < 4u; b++) { s += extractBits(x, 8u * b, 8u) * extractBits(y, 8u * b, 8u); }
  return s;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat_id(gid, nwg);
  let m = pu(0u);
  let n = pu(1u);
  let kq = pu(3u);
  if (e >= m * n) { return; }
  let i = e / n;
  let j = e % n;
  var acc = 0;
  for (var q = 0u; q < kq; q++) { acc += dot4(xq[i * kq + q], w[q * n + j]); }
  var y = f32(acc) * (factor[i] * scale[j]);
  if (HAS_BIAS) { y += bias[j]; }
  out[e] = y;
}
