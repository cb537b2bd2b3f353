// kiln's one table of ops, dtypes and kernel signatures.
//
// Everything that names an op or a kernel argument in more than one language is generated from
// this file by scripts/gen-ops.mjs (`npm run gen`; `npm test` checks the generated files are up
// to date):
//   src/backend/ops.gen.ts          dtype codes, op unions and lists, every kernel's Args interface
//   src/backend/cpu/marshal.gen.ts  each kernel's arguments in the order the addon reads them
//   kernels/ops.gen.h               C++ enums, one Args struct per kernel, the kernel Table
//   native/bindings.gen.cc          one N-API binding per kernel: positional arguments → Args struct
//   native/cuda/bindings.gen.cc     the same for the CUDA table (device storages, on addon.cuda)
//
// Adding a kernel: add it to `kernels` below, run `npm run gen`, implement it in the reference
// backend (src/backend/ref), in kernels/cpu/isa/<family>.cc (and set it in that family's fill_*),
// and in every other backend; the type checker lists what is missing.

/** Element types: name, code (shared by every language), bytes, and what kind of number. */
export const dtypes = [
  { name: 'f32', code: 0, bytes: 4, kind: 'float', doc: 'IEEE single precision (the default floating type)' },
  { name: 'f64', code: 1, bytes: 8, kind: 'float', doc: 'IEEE double precision (gradient checks; not every backend has it)' },
  { name: 'i32', code: 2, bytes: 4, kind: 'int', doc: '32-bit signed integer (indices, class ids, integer arithmetic)' },
  { name: 'bf16', code: 3, bytes: 2, kind: 'float', doc: 'bfloat16: f32 range, 8-bit significand' },
  { name: 'f16', code: 4, bytes: 2, kind: 'float', doc: 'IEEE half precision' },
  { name: 'bool', code: 5, bytes: 1, kind: 'bool', doc: 'one byte per element, 0 or 1' },
];

/**
 * Enumerations shared by TypeScript and C++. `prefix` names the C++ constants (`U_NEG`);
 * TypeScript uses the names themselves as string literal types.
 */
export const enums = {
  UnaryOp: {
    prefix: 'U_',
    doc: 'Elementwise functions of one argument.',
    values: [
      { name: 'neg', grad: true, integral: true },
      { name: 'abs', grad: true, integral: true },
      { name: 'sign', grad: true, integral: true, doc: '−1, 0 or 1; NaN stays NaN' },
      { name: 'exp', grad: true },
      { name: 'log', grad: true },
      { name: 'sqrt', grad: true },
      { name: 'rsqrt', grad: true, doc: '1/√x' },
      { name: 'sin', grad: true },
      { name: 'cos', grad: true },
      { name: 'tanh', grad: true },
      { name: 'sigmoid', grad: true },
      { name: 'relu', grad: true, integral: true },
      { name: 'gelu', grad: true, doc: 'x·Φ(x), with the exact erf' },
      { name: 'gelu_tanh', grad: true, doc: '0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))' },
      { name: 'silu', grad: true },
      { name: 'erf', grad: true },
      { name: 'floor', grad: true, integral: true },
      { name: 'ceil', grad: true, integral: true },
      { name: 'round', grad: true, integral: true, doc: 'half to even' },
      { name: 'isfinite', grad: false, doc: 'output dtype is bool' },
    ],
  },
  BinaryOp: {
    prefix: 'B_',
    doc: 'Elementwise functions of two arguments. Comparisons and and/or produce `bool`.',
    values: [
      { name: 'add', grad: true },
      { name: 'sub', grad: true },
      { name: 'mul', grad: true },
      { name: 'div', grad: true },
      { name: 'pow', grad: true },
      { name: 'maximum', grad: true, doc: 'NaN propagates' },
      { name: 'minimum', grad: true, doc: 'NaN propagates' },
      { name: 'eq', bool: true },
      { name: 'ne', bool: true },
      { name: 'lt', bool: true },
      { name: 'le', bool: true },
      { name: 'gt', bool: true },
      { name: 'ge', bool: true },
      { name: 'and', bool: true },
      { name: 'or', bool: true },
    ],
  },
  ReduceOp: {
    prefix: 'R_',
    doc: 'Reductions along one axis. `argmax`/`argmin` produce `i32` (first index of the extreme; NaN wins).',
    values: [{ name: 'sum' }, { name: 'max' }, { name: 'min' }, { name: 'argmax' }, { name: 'argmin' }],
  },
  RandomDist: {
    prefix: 'DIST_',
    doc: 'Distributions of the `random` kernel (see src/backend/philox.ts for the mapping from Philox words).',
    values: [
      { name: 'uniform', doc: 'in [p0, p1)' },
      { name: 'normal', doc: 'mean p0, standard deviation p1' },
      { name: 'randint', doc: 'integers in [p0, p1)' },
    ],
  },
  Activation: {
    prefix: 'ACT_',
    doc: "Epilogues of `matmul`, applied after the bias (the UnaryOp of the same name's math).",
    values: [{ name: 'none' }, { name: 'relu' }, { name: 'gelu' }, { name: 'gelu_tanh' }, { name: 'silu' }],
  },
};

/** Kernel families: a backend reports per family which dtypes it computes in natively. */
export const families = [
  { name: 'elementwise', doc: 'fill, random, cast, copy, unary, binary, where, gather/scatter' },
  { name: 'reduce', doc: 'reduce' },
  { name: 'matmul', doc: 'matmul' },
  { name: 'softmax', doc: 'softmax' },
  { name: 'norm', doc: 'layerNorm and its backward' },
  { name: 'crossEntropy', doc: 'crossEntropy and its backward' },
  { name: 'attention', doc: 'attention and its backward' },
  { name: 'optim', doc: 'multiNorm, multiScale, adamUpdate, lambUpdate' },
];

/**
 * Faults a kernel finds in its data (values the TypeScript layer cannot see without a sync). A
 * kernel that faults skips the bad element (writing zeros where it would have written) and the
 * backend turns the first fault into an Error at the next read or sync. `{op}`, `{value}` and
 * `{limit}` are filled in; `op` is the public op the kernel ran for.
 */
export const faults = [
  { name: 'index', code: 1, message: '{op}: index {value} is out of range [0, {limit})' },
  { name: 'target', code: 2, message: '{op}: target {value} is out of range [0, {limit}) and is not ignoreIndex' },
  { name: 'check', code: 3, message: '{op}: {message}' },
  { name: 'overflow', code: 4, message: '{op}: the sum {value} does not fit i32 (range [-2147483648, 2147483647]); cast to a floating dtype first' },
];

/**
 * Argument types:
 *   in, out, inout   one storage (read, written, or both); `?` after the type: may be null
 *   ins, inouts      a list of storages
 *   int              an integer (int64_t in C++; exact up to 2⁵³ in TypeScript)
 *   float            a double
 *   bool             a flag
 *   ints             up to 16 integers (shapes and strides; C++ `Ints`)
 *   intlist          any number of integers (C++ `IntList`)
 *   label            a string for error messages, kept in TypeScript (never passed to native code)
 *   <Enum name>      one of `enums`
 * A storage's C++ form is a `Buf`: data pointer, element count and dtype.
 */
export const kernels = [
  // ---- elementwise ----------------------------------------------------------------------------
  {
    name: 'fill',
    family: 'elementwise',
    doc: '`out[i] = value` for every element (converted to out\'s dtype as a cast would).',
    args: [['out', 'out'], ['value', 'float']],
  },
  {
    name: 'random',
    family: 'elementwise',
    doc: 'Fill `out` from the counter-based generator: element i uses Philox4x32-10 with key `seed` at counter `offset + ⌊i/4⌋`, word i mod 4 (src/backend/philox.ts defines the mapping, so every backend draws the same words).',
    args: [['out', 'out'], ['dist', 'RandomDist'], ['p0', 'float'], ['p1', 'float'], ['seed', 'int', 'a non-negative integer below 2⁵³'], ['offset', 'int', 'the first Philox counter']],
  },
  {
    name: 'cast',
    family: 'elementwise',
    doc: '`out[i] = x[i]` converted to out\'s dtype (halves round to nearest even; floats truncate toward zero to i32; bool is x ≠ 0, NaN true).',
    args: [['x', 'in'], ['out', 'out']],
  },
  {
    name: 'copy',
    family: 'elementwise',
    doc: 'Strided copy of one dtype: `dst[dstOffset + Σ i_d·dstStrides[d]] = src[srcOffset + Σ i_d·srcStrides[d]]` over `shape`. Elements of dst outside the region keep their values. The regions may not overlap.',
    args: [['src', 'in'], ['srcOffset', 'int'], ['srcStrides', 'ints'], ['dst', 'inout'], ['dstOffset', 'int'], ['dstStrides', 'ints'], ['shape', 'ints']],
  },
  {
    name: 'unary',
    family: 'elementwise',
    doc: '`out[i] = op(x[i])`; x and out share a dtype (out is bool for `isfinite`).',
    args: [['op', 'UnaryOp'], ['x', 'in'], ['out', 'out']],
  },
  {
    name: 'unaryGrad',
    family: 'elementwise',
    doc: "`out[i] = dy[i]·op′(x[i])`: the backward of every differentiable UnaryOp.",
    args: [['op', 'UnaryOp'], ['x', 'in'], ['dy', 'in'], ['out', 'out']],
  },
  {
    name: 'binary',
    family: 'elementwise',
    doc: 'Broadcasting binary op: for every index of `shape` (row-major), `out[idx] = op(a[Σ idx·aStrides], b[Σ idx·bStrides])`. a and b share a dtype; out has it too, or bool for comparisons and and/or.',
    args: [['op', 'BinaryOp'], ['a', 'in'], ['aStrides', 'ints'], ['b', 'in'], ['bStrides', 'ints'], ['out', 'out'], ['shape', 'ints']],
  },
  {
    name: 'where',
    family: 'elementwise',
    doc: '`out[idx] = cond[idx] ? a[idx] : b[idx]` with broadcasting strides as `binary`; cond is bool.',
    args: [['cond', 'in'], ['condStrides', 'ints'], ['a', 'in'], ['aStrides', 'ints'], ['b', 'in'], ['bStrides', 'ints'], ['out', 'out'], ['shape', 'ints']],
  },
  {
    name: 'gather',
    family: 'elementwise',
    faults: true,
    doc: '`out[o, j, i] = x[o, index(o, j, i), i]` with x viewed as `[outer, srcDim, inner]` and out as `[outer, n, inner]`; `index(o, j, i) = index[o·indexStrides[0] + j·indexStrides[1] + i·indexStrides[2]]` (i32; strides of 0 broadcast it). An index outside [0, srcDim) faults and its output is 0.',
    args: [['x', 'in'], ['out', 'out'], ['index', 'in'], ['indexStrides', 'ints'], ['outer', 'int'], ['srcDim', 'int'], ['n', 'int'], ['inner', 'int'], ['op', 'label']],
  },
  {
    name: 'scatterAdd',
    family: 'elementwise',
    faults: true,
    doc: '`dst[o, index(o, j, i), i] += src[o, j, i]`, accumulating duplicates; indexing as `gather`. An index outside [0, srcDim) faults and its element is skipped.',
    args: [['dst', 'inout'], ['src', 'in'], ['index', 'in'], ['indexStrides', 'ints'], ['outer', 'int'], ['srcDim', 'int'], ['n', 'int'], ['inner', 'int'], ['op', 'label']],
  },
  {
    name: 'check',
    family: 'elementwise',
    faults: true,
    doc: 'Fault when any element of the bool `cond` is false (a deferred assertion: the error surfaces at the next read or sync). The fault\'s value is `values[i]` of the first failing element i when `values` is given.',
    args: [['cond', 'in'], ['values', 'in?'], ['op', 'label'], ['message', 'label', 'the text after `op: `; `{value}` is replaced']],
  },
  // ---- reduce ---------------------------------------------------------------------------------
  {
    name: 'reduce',
    family: 'reduce',
    faults: true,
    doc: 'Reduce x viewed as `[outer, r, inner]` over the middle axis into out `[outer, inner]`. r ≥ 1 for max/min/arg*. out is i32 for arg* and for sums of bool, else x\'s dtype. An integer sum outside i32 faults (its output wraps).',
    args: [['reduceOp', 'ReduceOp'], ['x', 'in'], ['outer', 'int'], ['r', 'int'], ['inner', 'int'], ['out', 'out'], ['op', 'label']],
  },
  // ---- matmul ---------------------------------------------------------------------------------
  {
    name: 'matmul',
    family: 'matmul',
    doc: [
      'Batched matrix product: for each batch index (row-major over `batchShape`), `out[b] = act(op(a[b]) @ op(b[b]) + bias)`, or with accumulate `out[b] = act(out[b] + op(a[b]) @ op(b[b]) + bias)` (BLAS\'s β = 1: a sum of products built in place), where op transposes when asked and a[b] starts at `Σ b_d·aBatchStrides[d]` (0 broadcasts). op(a) is `[m, k]` (stored `[k, m]` when transA), op(b) is `[k, n]` (stored `[n, k]` when transB); out is contiguous `[...batchShape, m, n]`; bias has n elements. k ≥ 1.',
      'a and b share a dtype; out and bias have it too, or are f32 when a and b are bf16/f16 (the f32 sums stored without rounding, as a weight gradient summed over chunks wants). Halves are summed in f32 and rounded once, after the old out (read in f32) is added.',
      'preact (with an activation other than none): also store the value before the activation, `op(a) @ op(b) + bias` (plus the old out), in out\'s dtype and layout, each rounded on its own from the same f32 (or f64) value: what the activation\'s backward needs, written in the same pass (bias+GELU fused into the MLP\'s first projection).',
    ].join('\n\n'),
    args: [['a', 'in'], ['b', 'in'], ['out', 'inout'], ['bias', 'in?'], ['batchShape', 'ints'], ['aBatchStrides', 'ints'], ['bBatchStrides', 'ints'], ['m', 'int'], ['n', 'int'], ['k', 'int'], ['transA', 'bool'], ['transB', 'bool'], ['activation', 'Activation'], ['accumulate', 'bool'], ['preact', 'out?']],
  },
  {
    name: 'matmulInt8',
    family: 'matmul',
    doc: [
      'Dynamically quantized product with int8 weights (inference): `out = quant(a) @ Wᵀ · scales + bias` for a `[m, k]` f32, W `[n, k]` int8 in [−127, 127], scale and bias `[n]` f32, out `[m, n]` f32.',
      'W is packed four to a word: w is i32 `[⌈k/4⌉, n]`, word (q, j) holding W[j, 4q + b] in its byte b (two\'s complement, little-endian; 0 past k), so each step q of four k reads one contiguous row of words.',
      'Each row i of a is quantized on its own, symmetrically: amax = max_p |a[i, p]|, inv = 127/amax (an f32 division; 0 when amax is 0), x_p = round-half-even(a[i, p]·inv) (an f32 product), integers in [−127, 127]; acc_j = Σ_p x_p·W[j, p], exact in 32-bit integers (k ≤ 131072); `out[i, j] = f32(acc_j)·(amax/127·scale[j]) + bias[j]` in f32. A row with a non-finite element is NaN throughout.',
    ].join('\n\n'),
    args: [['a', 'in'], ['w', 'in'], ['scale', 'in'], ['out', 'out'], ['bias', 'in?'], ['m', 'int'], ['n', 'int'], ['k', 'int']],
  },
  // ---- softmax, norm, cross-entropy -----------------------------------------------------------
  {
    name: 'softmax',
    family: 'softmax',
    doc: 'Softmax (or log-softmax) of each row of x `[rows, cols]`.',
    args: [['x', 'in'], ['out', 'out'], ['rows', 'int'], ['cols', 'int'], ['log', 'bool']],
  },
  {
    name: 'layerNorm',
    family: 'norm',
    doc: 'Layer norm of each row of x `[rows, cols]`: `y = (x − μ)·rstd·w + b`, rstd = 1/√(var + eps) (biased variance); writes mean and rstd `[rows]` for the backward. With `rms`, μ is 0 (RMSNorm) and `mean` is left untouched. With residual (and sum), the rows normalized are `sum = x + residual` (each element one rounding of the add), stored in sum in the same pass: a transformer\'s residual add fused with the next norm.',
    args: [['x', 'in'], ['weight', 'in?'], ['bias', 'in?'], ['out', 'out'], ['mean', 'out'], ['rstd', 'out'], ['rows', 'int'], ['cols', 'int'], ['eps', 'float'], ['rms', 'bool'], ['residual', 'in?'], ['sum', 'out?']],
  },
  {
    name: 'layerNormBackward',
    family: 'norm',
    doc: 'Backward of `layerNorm`: writes dx, and dWeight/dBias (summed over rows) when given.',
    args: [['dy', 'in'], ['x', 'in'], ['weight', 'in?'], ['mean', 'in'], ['rstd', 'in'], ['dx', 'out'], ['dWeight', 'out?'], ['dBias', 'out?'], ['rows', 'int'], ['cols', 'int'], ['rms', 'bool']],
  },
  {
    name: 'crossEntropy',
    family: 'crossEntropy',
    faults: true,
    doc: 'Per-row cross-entropy of logits `[rows, classes]` against i32 targets `[rows]`: `loss = lse − (1−ε)·x[t] − ε/C·Σ_c x[c]`, 0 where `t == ignoreIndex`; writes lse `[rows]`. A target outside [0, classes) that is not ignoreIndex faults (its loss is NaN).',
    args: [['logits', 'in'], ['targets', 'in'], ['loss', 'out'], ['lse', 'out'], ['rows', 'int'], ['classes', 'int'], ['ignoreIndex', 'int'], ['smoothing', 'float'], ['op', 'label']],
  },
  {
    name: 'crossEntropyBackward',
    family: 'crossEntropy',
    faults: true,
    doc: '`dlogits = dloss[r]·(softmax(x) − (1−ε)·onehot(t) − ε/C)`, zero rows where ignored. Targets are checked again (they may have changed since the forward): a bad one faults and its row is 0.',
    args: [['logits', 'in'], ['targets', 'in'], ['lse', 'in'], ['dloss', 'in'], ['dlogits', 'out'], ['rows', 'int'], ['classes', 'int'], ['ignoreIndex', 'int'], ['smoothing', 'float'], ['op', 'label']],
  },
  // ---- attention ------------------------------------------------------------------------------
  {
    name: 'attention',
    family: 'attention',
    doc: [
      '`out = dropout(softmax(q·kᵀ·scale + mask)) · v` per batch entry b and head h, and `lse` `[batch, heads, tq]` (contiguous; the log-sum-exp of each row of scores before dropout, −∞ for a row with nothing to attend, whose output is 0). Fast backends never materialise the `[tq, tk]` scores.',
      'Layout: element (b, h, t, c) of q is at `qOffset + b·qStrides[0] + h·qStrides[1] + t·qStrides[2] + c` (the last axis is contiguous); k, v, out likewise, except that k and v have `kvHeads` heads (dividing `heads`; grouped-query attention): query head h reads kv head ⌊h / (heads / kvHeads)⌋ (q and k have qkDim columns, v and out vDim). So q, k and v can be views into one packed projection `[B, T, 3·H·D]`, and out can be written as `[B, T, H·D]`, with no copies.',
      'Masking: with `causal`, query i attends key j only where j ≤ i + causalOffset (0: top-left aligned, as PyTorch\'s is_causal; tk − tq: bottom-right, for a chunk of queries after cached keys), and with `window` > 0 (sliding-window attention; only with `causal`) also only where j > i + causalOffset − window: the window keys ending at the diagonal (Mistral\'s sliding_window; flash-attention\'s window_size = (window − 1, 0)). Kernels skip key tiles wholly outside the window. `mask` (bool: attend where true; float: added to the scores) is read at `b·maskStrides[0] + h·maskStrides[1] + i·maskStrides[2] + j·maskStrides[3]` (strides of 0 broadcast).',
      'Dropout: the probability of key j for query i is kept, scaled by 1/(1 − p), where the Philox word for element e = ((b·heads + h)·tq + i)·tk + j (key `seed`, counter `dropoutOffset + ⌊e/4⌋`, word e mod 4) is ≥ `dropoutThreshold` (= ⌈p·2³²⌉; 0 turns dropout off).',
    ].join('\n\n'),
    args: [
      ['q', 'in'], ['qOffset', 'int'], ['qStrides', 'ints'],
      ['k', 'in'], ['kOffset', 'int'], ['kStrides', 'ints'],
      ['v', 'in'], ['vOffset', 'int'], ['vStrides', 'ints'],
      ['out', 'inout'], ['outOffset', 'int'], ['outStrides', 'ints'],
      ['lse', 'out'],
      ['batch', 'int'], ['heads', 'int'], ['kvHeads', 'int', 'heads of k and v (divides heads)'], ['tq', 'int'], ['tk', 'int'], ['qkDim', 'int', 'd: the width of q and k'], ['vDim', 'int', 'the width of v and out'],
      ['scale', 'float'], ['causal', 'bool'], ['causalOffset', 'int'], ['window', 'int', 'keys each query sees ending at its causal diagonal (0: all)'],
      ['mask', 'in?'], ['maskStrides', 'ints'],
      ['dropoutThreshold', 'int'], ['dropoutScale', 'float', '1/(1 − p)'], ['seed', 'int'], ['dropoutOffset', 'int'],
    ],
  },
  {
    name: 'attentionBackward',
    family: 'attention',
    doc: 'Backward of `attention` from its `out`, `lse` and the output gradient `dout` (laid out with doutOffset/doutStrides), with the same masking and dropout; writes dq, dk, dv (dk and dv summed over the heads/kvHeads query heads of each kv head; every element of their views, with their own offsets and strides, so they can be views into one packed gradient).',
    args: [
      ['q', 'in'], ['qOffset', 'int'], ['qStrides', 'ints'],
      ['k', 'in'], ['kOffset', 'int'], ['kStrides', 'ints'],
      ['v', 'in'], ['vOffset', 'int'], ['vStrides', 'ints'],
      ['out', 'in'], ['outOffset', 'int'], ['outStrides', 'ints'],
      ['lse', 'in'],
      ['dout', 'in'], ['doutOffset', 'int'], ['doutStrides', 'ints'],
      ['dq', 'inout'], ['dqOffset', 'int'], ['dqStrides', 'ints'],
      ['dk', 'inout'], ['dkOffset', 'int'], ['dkStrides', 'ints'],
      ['dv', 'inout'], ['dvOffset', 'int'], ['dvStrides', 'ints'],
      ['batch', 'int'], ['heads', 'int'], ['kvHeads', 'int'], ['tq', 'int'], ['tk', 'int'], ['qkDim', 'int'], ['vDim', 'int'],
      ['scale', 'float'], ['causal', 'bool'], ['causalOffset', 'int'], ['window', 'int'],
      ['mask', 'in?'], ['maskStrides', 'ints'],
      ['dropoutThreshold', 'int'], ['dropoutScale', 'float'], ['seed', 'int'], ['dropoutOffset', 'int'],
    ],
  },
  // ---- optimizers: many tensors per call ------------------------------------------------------
  {
    name: 'multiNorm',
    family: 'optim',
    doc: '`out[i] = ‖xs[i]‖_ord` for every tensor of the list (ord > 0, Infinity for the largest magnitude); the tensors share a float dtype; out has `xs.length` elements (f32, or f64 for f64 tensors).',
    args: [['xs', 'ins'], ['ord', 'float'], ['out', 'out']],
  },
  {
    name: 'multiScale',
    family: 'optim',
    doc: '`xs[i] *= scale[0]` in place for every tensor of the list (scale is one element, read on the device: no sync).',
    args: [['xs', 'inouts'], ['scale', 'in']],
  },
  {
    name: 'adamUpdate',
    family: 'optim',
    doc: 'Adam/AdamW step of every parameter of a list, in place: `g += wd·p` (Adam) or `p −= lr·wd·p` (AdamW); `m = β1·m + (1−β1)·g`; `v = β2·v + (1−β2)·g²`; `p −= lr·(m/(1−β1ᵗ))/(√(v/(1−β2ᵗ)) + ε)` with t = steps[i]. Parameters and gradients share a float dtype; m and v are f32 (f64 for f64 parameters).',
    args: [['params', 'inouts'], ['grads', 'ins'], ['m', 'inouts'], ['v', 'inouts'], ['steps', 'intlist'], ['lr', 'float'], ['beta1', 'float'], ['beta2', 'float'], ['eps', 'float'], ['weightDecay', 'float'], ['decoupled', 'bool']],
  },
  {
    name: 'lambUpdate',
    family: 'optim',
    doc: 'LAMB step (You et al. 2019) of every parameter of a list: moments as Adam (divided by 1 − βᵗ when biasCorrection), `r = m̂/(√v̂ + ε) + wd·p`, `p −= lr·φ·r` with the trust ratio φ = ‖p‖/‖r‖ (1 when either norm is 0), written to `trust[i]` when trust is given (f32, or f64 for f64 parameters).',
    args: [['params', 'inouts'], ['grads', 'ins'], ['m', 'inouts'], ['v', 'inouts'], ['steps', 'intlist'], ['lr', 'float'], ['beta1', 'float'], ['beta2', 'float'], ['eps', 'float'], ['weightDecay', 'float'], ['biasCorrection', 'bool'], ['trust', 'out?']],
  },
];

/**
 * Ops the tensor layer records on the autograd tape (`record(op, …)`); each needs a backward
 * rule in src/autograd/grads.ts (a test checks every one has it). Differentiable UnaryOps and
 * BinaryOps (`grad: true` above) are recorded under their own names and are added to this list
 * by the generator.
 */
export const recorded = [
  'where', 'cast', 'clone', 'to',
  'sum', 'max', 'min', 'norm',
  'reshape', 'permute', 'expand', 'slice', 'concat', 'indexSelect', 'gather', 'scatterAdd',
  'matmul', 'linear', 'softmax', 'logSoftmax', 'crossEntropy', 'linearCrossEntropy', 'layerNorm', 'rmsNorm', 'attention', 'packedAttention',
  // a function run again in the backward (src/autograd/checkpoint.ts, which holds its rule)
  'checkpoint',
  // a function with a backward of its own (src/autograd/function.ts)
  'function',
];
