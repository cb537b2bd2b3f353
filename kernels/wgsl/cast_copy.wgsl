// cast and copy (the `elementwise` family).

// @kernel cast
// cast: params [0] n. The runtime writes ld_x and st_out for the two dtypes, in i32 when both
// are integers or bool, else in f32 (the prelude's f16/bf16 rounding is the reference's).
@group(0) @binding(2) var<storage, read> x: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_id(gid, nwg);
  if (i >= pu(0u)) { return; }
  st_out(i, ld_x(i));
}

// @kernel copy
// copy: strided, dtype-blind (every element is one word). Params: [0] n, [1] rank,
// [2] srcOffset, [3] dstOffset, [4..19] shape, [20..35] srcStrides, [36..51] dstStrides.
@group(0) @binding(2) var<storage, read> src: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_id(gid, nwg);
  if (i >= pu(0u)) { return; }
  var rest = i;
  var s = pi(2u);
  var d = pi(3u);
  for (var k = i32(pu(1u)) - 1; k >= 0; k--) {
    let dim = pu(4u + u32(k));
    let c = i32(rest % dim);
    rest = rest / dim;
    s += c * pi(20u + u32(k));
    d += c * pi(36u + u32(k));
  }
  dst[u32(d)] = src[u32(s)];
}
