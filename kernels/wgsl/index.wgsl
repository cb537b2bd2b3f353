// gather, scatterAdd and check (the `elementwise` family): the kernels that fault on bad data.
//
// gather and scatterAdd view x (dst) as [outer, srcDim, inner] and out (src) as [outer, n, inner];
// the index of element (o, j, i) is index[o·s0 + j·s1 + i·s2] (strides of 0 broadcast it).
// Their params: [0] elements of out (src), [1] n, [2] inner, [3] srcDim, [4..6] index strides.
// Bindings: 2 x (dst), 3 out (src), 4 index (i32).

@group(0) @binding(4) var<storage, read> idx: array<u32>;

// The index in the word w, or −1 after reporting it when it is outside [0, srcDim).
fn index_of(w: u32) -> i32 {
  let t = bitcast<i32>(w);
  if (t < 0 || t >= i32(pu(3u))) {
    report(1u, w, 0u);
    return -1;
  }
  return t;
}

// The index word of element e.
fn index_word(e: u32) -> u32 {
  let inner = pu(2u);
  let n = pu(1u);
  let i = e % inner;
  let q = e / inner;
  return idx[(q / n) * pu(4u) + (q % n) * pu(5u) + i * pu(6u)];
}

// The word of x (dst) that element e reads (adds to) at index t.
fn x_word(e: u32, t: u32) -> u32 {
  let inner = pu(2u);
  let o = e / inner / pu(1u);
  return (o * pu(3u) + t) * inner + e % inner;
}

// @kernel gather
// gather: dtype-blind, one invocation per out element; a bad index gives 0.
@group(0) @binding(2) var<storage, read> x: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat_id(gid, nwg);
  if (e >= pu(0u)) { return; }
  let t = index_of(index_word(e));
  if (t < 0) {
    out[e] = 0u;
    return;
  }
  out[e] = x[x_word(e, u32(t))];
}

// @kernel scatter_add
// scatter_add: one invocation per src element, adding into its dst word atomically (duplicates
// meet there). `const MODE` (defs): 0 f32, by compare-exchange on the bits (no float atomics);
// 1 i32, wrapping as the reference's Int32Array does; 2 bool, as a logical or.
@group(0) @binding(2) var<storage, read_write> dst: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read> src: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = flat_id(gid, nwg);
  if (e >= pu(0u)) { return; }
  let t = index_of(index_word(e));
  if (t < 0) { return; }
  let k = x_word(e, u32(t));
  let v = src[e];
  if (MODE == 1u) {
    atomicAdd(&dst[k], v);
  } else if (MODE == 2u) {
    atomicOr(&dst[k], v);
  } else {
    var old = atomicLoad(&dst[k]);
    loop {
      let r = atomicCompareExchangeWeak(&dst[k], old, bitcast<u32>(bitcast<f32>(old) + bitcast<f32>(v)));
      if (r.exchanged) { break; }
      old = r.old_value;
    }
  }
}

// @kernel check_init
// check_init: no element has failed yet. Params: [0] 0xffffffff. Bindings: 2 first (the lowest
// failing element).
@group(0) @binding(2) var<storage, read_write> first: array<atomic<u32>>;

@compute @workgroup_size(1)
fn main() {
  atomicStore(&first[0], pu(0u));
}

// @kernel check_scan
// check_scan: the lowest i with cond[i] false, into first[0] (one atomic per workgroup).
// Params: [0] n. Bindings: 2 first, 3 cond (bool words).
@group(0) @binding(2) var<storage, read_write> first: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read> cond: array<u32>;

var<workgroup> lowest: atomic<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) t: u32) {
  if (t == 0u) { atomicStore(&lowest, 0xffffffffu); }
  workgroupBarrier();
  let i = flat_id(gid, nwg);
  if (i < pu(0u) && cond[i] == 0u) { atomicMin(&lowest, i); }
  workgroupBarrier();
  if (t == 0u) {
    let f = atomicLoad(&lowest);
    if (f != 0xffffffffu) { atomicMin(&first[0], f); }
  }
}

// @kernel check_report
// check_report: fault `check` for the lowest failing element i, with values[i] (or i when
// HAS_VALUES is false). defs: `const HAS_VALUES`, `const KIND` (the report's value kind) and
// `value_bits(i)`, values[i] as bits of that kind. Bindings: 2 first, 3 values.
@group(0) @binding(2) var<storage, read_write> first: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read> values: array<u32>;

@compute @workgroup_size(1)
fn main() {
  let i = atomicLoad(&first[0]);
  if (i == 0xffffffffu) { return; }
  if (HAS_VALUES) {
    report(3u, value_bits(i), KIND);
  } else {
    report(3u, i, 2u);
  }
}
