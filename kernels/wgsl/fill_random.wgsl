// fill and random (the `elementwise` family). Params: [0] n.

@group(0) @binding(2) var<storage, read_write> out: array<u32>;

// @kernel fill
// fill: every word is params[1], the value already encoded as out's dtype.
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_id(gid, nwg);
  if (i >= pu(0u)) { return; }
  out[i] = pu(1u);
}

// @kernel random
// random: params [1] dist (0 uniform, 1 normal, 2 randint), [2] p0, [3] p1 (f32; for randint
// i32 low and u32 span), [4..5] seed, [6..7] offset. One invocation per Philox block of four
// elements (src/backend/philox.ts maps words to values). `st_out` is written by the runtime.
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = flat_id(gid, nwg);
  let n = pu(0u);
  if (j * 4u >= n) { return; }
  let lo = pu(6u) + j;
  let hi = pu(7u) + select(0u, 1u, lo < j); // 64-bit counter: offset + j
  let w = philox(lo, hi, pu(4u), pu(5u));
  let dist = pu(1u);
  for (var k = 0u; k < 4u; k++) {
    let i = j * 4u + k;
    if (i >= n) { break; }
    var v: f32;
    if (dist == 0u) {
      v = pf(2u) + (pf(3u) - pf(2u)) * (f32(w[k] >> 8u) * 5.9604644775390625e-8);
    } else if (dist == 1u) {
      let p = k & 2u; // the pair (0, 1) or (2, 3)
      let u0 = f32(w[p] >> 8u) * 5.9604644775390625e-8;
      let u1 = f32(w[p + 1u] >> 8u) * 5.9604644775390625e-8;
      // the math library of unary.wgsl (in defs): WGSL's own log/sin/cos may be far less accurate
      let r = m_sqrt(-2.0 * m_log(1.0 - u0));
      let t = 6.283185307179586 * u1;
      v = pf(2u) + pf(3u) * r * select(m_cos(t), m_sin(t), (k & 1u) == 1u);
    } else {
      st_out_int(i, pi(2u) + bitcast<i32>(mulhilo(w[k], pu(3u)).x));
      continue;
    }
    st_out(i, v);
  }
}
