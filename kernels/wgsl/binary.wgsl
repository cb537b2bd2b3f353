// binary and where (the `elementwise` family): broadcasting over `shape` (row-major) with a
// stride per operand (0 broadcasts). binary.ts collapses the shape first (dims of size 1
// dropped, neighbours that are contiguous in every operand merged), so a contiguous or
// scalar-broadcast operand costs one division per element.
//
// Params of both: [0] n (elements of out), [1] rank, [2..17] shape, [18..33] the strides of the
// first operand, [34..49] of the second, [50..65] of the third (cond, a, b for where; a, b and
// zeros for binary).

// Offsets of element i of the shape in the three operands.
fn strided(i: u32) -> vec3i {
  var rest = i;
  var o = vec3i(0);
  for (var k = i32(pu(1u)) - 1; k >= 0; k--) {
    let d = u32(k);
    let dim = pu(2u + d);
    let c = i32(rest % dim);
    rest = rest / dim;
    o += c * vec3i(pi(18u + d), pi(34u + d), pi(50u + d));
  }
  return o;
}

// @kernel binary
// out[i] = op(a[·], b[·]). Defs: ld_a, ld_b, st_out and `apply`, which calls the op's function
// here for the compute type: bf_<op> in f32 (float operands), bi_<op> in i32 (i32 and bool); f32
// pow calls the math library's m_pow instead, and only its defs include the library (kept out of
// the others, whose defs are their pipeline's cache key). Comparisons and and/or give 1 or 0,
// which st_out stores as bool.
@group(0) @binding(2) var<storage, read> a: array<u32>;
@group(0) @binding(3) var<storage, read> b: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

// NaN by its bits, as the math library does (f32 `!=` may be an ordered comparison, false for
// NaN); a constant NaN is a WGSL error, hence the private variable.
var<private> B_NAN_BITS: u32 = 0x7fc00000u;
fn b_nan() -> f32 { return bitcast<f32>(B_NAN_BITS); }
fn b_is_nan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn unordered(x: f32, y: f32) -> bool { return b_is_nan(x) || b_is_nan(y); }
fn flag(c: bool) -> f32 { return select(0.0, 1.0, c); }
// The reference's truthiness of a number (JavaScript's: NaN is false).
fn truthy(x: f32) -> bool { return x != 0.0 && !b_is_nan(x); }

fn bf_add(x: f32, y: f32) -> f32 { return x + y; }
fn bf_sub(x: f32, y: f32) -> f32 { return x - y; }
fn bf_mul(x: f32, y: f32) -> f32 { return x * y; }
// IEEE's x/±0 spelled out: WebGPU leaves division by zero to the implementation
fn bf_div(x: f32, y: f32) -> f32 {
  if (y == 0.0) {
    if (x == 0.0 || b_is_nan(x)) { return b_nan(); }
    return bitcast<f32>(((bitcast<u32>(x) ^ bitcast<u32>(y)) & 0x80000000u) | 0x7f800000u);
  }
  return x / y;
}
// NaN propagates; otherwise exactly the reference's choice between ±0
fn bf_maximum(x: f32, y: f32) -> f32 { return select(select(y, x, x > y), b_nan(), unordered(x, y)); }
fn bf_minimum(x: f32, y: f32) -> f32 { return select(select(y, x, x < y), b_nan(), unordered(x, y)); }
// comparisons with NaN false (true for ne) whatever the compiler assumes about NaN
fn bf_eq(x: f32, y: f32) -> f32 { return flag(!unordered(x, y) && x == y); }
fn bf_ne(x: f32, y: f32) -> f32 { return flag(unordered(x, y) || !(x == y)); }
fn bf_lt(x: f32, y: f32) -> f32 { return flag(!unordered(x, y) && x < y); }
fn bf_le(x: f32, y: f32) -> f32 { return flag(!unordered(x, y) && x <= y); }
fn bf_gt(x: f32, y: f32) -> f32 { return flag(!unordered(x, y) && x > y); }
fn bf_ge(x: f32, y: f32) -> f32 { return flag(!unordered(x, y) && x >= y); }
fn bf_and(x: f32, y: f32) -> f32 { return flag(truthy(x) && truthy(y)); }
fn bf_or(x: f32, y: f32) -> f32 { return flag(truthy(x) || truthy(y)); }

// i32 as the reference's integer arithmetic: +, −, · wrap (as WGSL's do).
fn bi_add(x: i32, y: i32) -> i32 { return x + y; }
fn bi_sub(x: i32, y: i32) -> i32 { return x - y; }
fn bi_mul(x: i32, y: i32) -> i32 { return x * y; }
// truncating; x/0 = 0; WGSL defines (−2³¹)/(−1) as −2³¹, the wrapped quotient the reference gives
fn bi_div(x: i32, y: i32) -> i32 { return select(x / y, 0, y == 0); }
// x^y = 0 for y < 0, else wrapping repeated squaring
fn bi_pow(x: i32, y: i32) -> i32 {
  if (y < 0) { return 0; }
  var r = 1;
  var base = x;
  var e = u32(y);
  while (e > 0u) {
    if ((e & 1u) == 1u) { r = r * base; }
    base = base * base;
    e = e >> 1u;
  }
  return r;
}
fn bi_maximum(x: i32, y: i32) -> i32 { return select(y, x, x > y); }
fn bi_minimum(x: i32, y: i32) -> i32 { return select(y, x, x < y); }
fn bi_eq(x: i32, y: i32) -> i32 { return i32(x == y); }
fn bi_ne(x: i32, y: i32) -> i32 { return i32(x != y); }
fn bi_lt(x: i32, y: i32) -> i32 { return i32(x < y); }
fn bi_le(x: i32, y: i32) -> i32 { return i32(x <= y); }
fn bi_gt(x: i32, y: i32) -> i32 { return i32(x > y); }
fn bi_ge(x: i32, y: i32) -> i32 { return i32(x >= y); }
fn bi_and(x: i32, y: i32) -> i32 { return i32(x != 0 && y != 0); }
fn bi_or(x: i32, y: i32) -> i32 { return i32(x != 0 || y != 0); }

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_id(gid, nwg);
  if (i >= pu(0u)) { return; }
  let o = strided(i);
  st_out(i, apply(ld_a(u32(o.x)), ld_b(u32(o.y))));
}

// @kernel where
// out[i] = cond[·] ? a[·] : b[·], copying words (dtype-blind); cond is bool (0 or 1).
@group(0) @binding(2) var<storage, read> cond: array<u32>;
@group(0) @binding(3) var<storage, read> a: array<u32>;
@group(0) @binding(4) var<storage, read> b: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat_id(gid, nwg);
  if (i >= pu(0u)) { return; }
  let o = strided(i);
  // both reads stay in bounds whichever is taken, so no branch is needed
  out[i] = select(b[u32(o.z)], a[u32(o.y)], cond[u32(o.x)] != 0u);
}
