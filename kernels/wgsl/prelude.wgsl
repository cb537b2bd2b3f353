// kiln's WGSL prelude: prepended to every kernel module (src/backend/webgpu/runtime.ts), after
// the specialisation constants and before the per-binding load/store functions the runtime writes
// for each storage's dtype (`ld_<name>(i)` returns the compute type, `st_<name>(i, v)` rounds).
//
// Storage: every dtype is one 32-bit word per element (f32, i32 as themselves; bool as 0 or 1;
// f16 and bf16 as their 16-bit pattern in the low half), so copies are dtype-blind and no two
// invocations ever write the same word.
//
// Parameters: each dispatch has 128 words of a uniform arena (P), read with pu/pi/pf; 64-bit
// integers (seeds, offsets) are two words, low first.
// Faults: binding 1 (kernels that fault): [taken, code, value bits, value kind, tag, high word]; the first
// fault of a dispatch batch wins; the runtime maps the tag back to the public op's name.

struct Params { v: array<vec4u, 32> }
@group(0) @binding(0) var<uniform> P: Params;

fn pu(i: u32) -> u32 { return P.v[i / 4u][i % 4u]; }
fn pi(i: u32) -> i32 { return bitcast<i32>(pu(i)); }
fn pf(i: u32) -> f32 { return bitcast<f32>(pu(i)); }

// The flat invocation index of a 2-D grid of 256-wide workgroups (the runtime's `grid`).
fn flat_id(gid: vec3u, nwg: vec3u) -> u32 { return gid.y * nwg.x * 256u + gid.x; }

// ---- 16-bit floats, bit-exact as the reference backend rounds them (nearest even) ----------------

fn f16_to_f32(h: u32) -> f32 {
  let s = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  if (e == 0x1fu) { return bitcast<f32>(s | 0x7f800000u | (m << 13u)); }
  if (e == 0u) {
    // subnormal: m · 2^-24, exact in f32
    let v = f32(m) * 5.9604644775390625e-8;
    return select(v, -v, s != 0u);
  }
  return bitcast<f32>(s | ((e + 112u) << 23u) | (m << 13u));
}

fn f32_to_f16(v: f32) -> u32 {
  let x = bitcast<u32>(v);
  let s = (x >> 16u) & 0x8000u;
  let a = x & 0x7fffffffu;
  if (a > 0x7f800000u) { return 0x7e00u; } // NaN: the canonical quiet NaN, as the reference encodes it
  if (a >= 0x477ff000u) { return s | 0x7c00u; } // rounds past 65504: infinity
  if (a < 0x38800000u) {
    // subnormal or zero in f16: round a·2^24 to an integer, nearest even
    if (a < 0x33000000u) { return s; } // below half the smallest subnormal
    let e = a >> 23u;
    let m = (a & 0x7fffffu) | 0x800000u;
    let shift = 126u - e; // 14..24: the mantissa (24 bits) scaled to units of 2^-24
    let q = m >> shift;
    let rem = m & ((1u << shift) - 1u);
    let half = 1u << (shift - 1u);
    let up = select(0u, 1u, rem > half || (rem == half && (q & 1u) == 1u));
    return s | (q + up);
  }
  let r = a + 0xfffu + ((a >> 13u) & 1u); // round to nearest even at bit 13
  return s | ((r - 0x38000000u) >> 13u);
}

fn bf16_to_f32(h: u32) -> f32 { return bitcast<f32>(h << 16u); }

fn f32_to_bf16(v: f32) -> u32 {
  let x = bitcast<u32>(v);
  if ((x & 0x7fffffffu) > 0x7f800000u) { return 0x7fc0u; } // NaN: the canonical quiet NaN
  return (x + 0x7fffu + ((x >> 16u) & 1u)) >> 16u;
}

// ---- Philox4x32-10 (src/backend/philox.ts defines the stream) -------------------------------------

fn mulhilo(a: u32, b: u32) -> vec2u {
  let a0 = a & 0xffffu; let a1 = a >> 16u;
  let b0 = b & 0xffffu; let b1 = b >> 16u;
  let p00 = a0 * b0; let p01 = a0 * b1; let p10 = a1 * b0; let p11 = a1 * b1;
  let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
  return vec2u(hi, a * b);
}

// The four words of counter (c0, c1, 0, 0) under key (k0, k1).
fn philox(c0: u32, c1: u32, k0: u32, k1: u32) -> vec4u {
  var c = vec4u(c0, c1, 0u, 0u);
  var k = vec2u(k0, k1);
  for (var r = 0u; r < 10u; r++) {
    let p0 = mulhilo(0xD2511F53u, c.x);
    let p1 = mulhilo(0xCD9E8D57u, c.z);
    c = vec4u(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    k = k + vec2u(0x9E3779B9u, 0xBB67AE85u);
  }
  return c;
}

// ---- faults -----------------------------------------------------------------------------------

@group(0) @binding(1) var<storage, read_write> F: array<atomic<u32>, 8>;

// Report a fault (the first of the batch is kept): code (ops.gen.ts FAULTS), the bad value as
// bits and its kind (0: i32, 1: f32, 2: u32, 3: i64 whose high word is `hi`); the runtime names
// the op from the dispatch's tag.
fn report_wide(code: u32, bits: u32, kind: u32, hi: u32) {
  if (atomicCompareExchangeWeak(&F[0], 0u, 1u).exchanged) {
    atomicStore(&F[1], code);
    atomicStore(&F[2], bits);
    atomicStore(&F[3], kind);
    atomicStore(&F[4], pu(127u));
    atomicStore(&F[5], hi);
  }
}

fn report(code: u32, bits: u32, kind: u32) { report_wide(code, bits, kind, 0u); }
