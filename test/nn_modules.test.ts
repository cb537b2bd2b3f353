/**
 * Module machinery and the basic layers: registration and dotted names, ModuleList, state
 * dicts (round trip, strict and non-strict errors, in-place loading, casts), train/eval,
 * to(backend), freezing, zeroGrad, and Linear/Embedding/LayerNorm/RMSNorm/Dropout/activations/MLP
 * against the functional ops.
 */
import { expect, it } from 'vitest';
import {
  Generator,
  RefBackend,
  dropout,
  embedding,
  gelu,
  layerNorm,
  linear,
  memory,
  noGrad,
  ones,
  randn,
  registerBackend,
  relu,
  rmsNorm,
  silu,
  tensor,
  tidy,
  zeros,
  type Tensor,
} from '../src/index.js';
import {
  Dropout,
  Embedding,
  GELU,
  LayerNorm,
  Linear,
  MLP,
  Module,
  ModuleList,
  RMSNorm,
  ReLU,
  SiLU,
  constant_,
  normal_,
  ones_,
  uniform_,
  zeros_,
  type StateDict,
} from '../src/nn/index.js';
import { describeBackends, expectClose, stored, stores, values, tol, syncReadable } from './harness.js';

/** A two-layer perceptron with a module list, for the machinery tests. */
class Net extends Module {
  readonly layers: ModuleList<Linear>;
  readonly drop: Dropout;
  readonly norm: LayerNorm;

  constructor(opts: { backend?: string; seed?: number; dtype?: 'f32' | 'f64' | 'bf16' } = {}) {
    super();
    const p = { generator: new Generator(opts.seed ?? 0), ...(opts.backend ? { backend: opts.backend } : {}), ...(opts.dtype ? { dtype: opts.dtype } : {}) };
    this.layers = this.registerModule('layers', new ModuleList([new Linear(4, 8, p), new Linear(8, 3, { ...p, bias: false })]));
    this.drop = this.registerModule('drop', new Dropout(0.5, { generator: p.generator }));
    this.norm = this.registerModule('norm', new LayerNorm(3, p));
  }

  forward(x: Tensor): Tensor {
    const h = this.drop.forward(this.layers.at(0).forward(x).relu());
    return this.norm.forward(this.layers.at(1).forward(h));
  }
}

const NET_NAMES = ['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'norm.weight', 'norm.bias'];


describeBackends('nn modules', (backend) => {
  it('names parameters by dotted paths through children and module lists, in registration order', () => {
    const net = new Net({ backend });
    expect(net.namedParameters().map(([n]) => n)).toEqual(NET_NAMES);
    expect(net.parameters().length).toBe(5);
    expect(net.namedChildren().map(([n]) => n)).toEqual(['layers', 'drop', 'norm']);
    expect(net.namedModules().map(([n]) => n)).toEqual(['', 'layers', 'layers.0', 'layers.1', 'drop', 'norm']);
    expect(net.layers.length).toBe(2);
    expect([...net.layers]).toEqual([net.layers.at(0), net.layers.at(1)]);
    expect(net.layers.at(-1)).toBe(net.layers.at(1));
    expect(() => net.layers.at(2)).toThrow(/ModuleList.at: index 2 is out of range for 2 modules/);
    expect(() => net.layers.forward()).toThrow(/ModuleList.forward/);
    expect(net.numParameters()).toBe(4 * 8 + 8 + 8 * 3 + 3 + 3);
    for (const p of net.parameters()) {
      expect(p.requiresGrad).toBe(true);
      expect(p.isLeaf).toBe(true);
      expect(p.backend.name).toBe(backend);
    }
    net.dispose();
  });

  it('rejects bad registrations with the module and name in the message', () => {
    class Bad extends Module {
      forward(): void {}
    }
    const m = new Bad();
    expect(() => m.registerParameter('a.b', zeros([1], { backend }))).toThrow(/Bad.registerParameter: name must be a non-empty string without '.'/);
    expect(() => m.registerParameter('', zeros([1], { backend }))).toThrow(/without '.'/);
    expect(() => m.registerParameter('ids', tensor([1], { backend, dtype: 'i32' }))).toThrow(/'ids' must be floating, got i32/);
    m.registerModule('child', new ReLU());
    expect(() => m.registerParameter('child', zeros([1], { backend }))).toThrow(/'child' is already registered as another kind of member/);
    expect(() => m.getParameter('nope')).toThrow(/Bad.getParameter: no parameter 'nope'/);
    expect(() => m.getBuffer('nope')).toThrow(/Bad.getBuffer: no buffer 'nope'/);
    const nonLeaf = zeros([2], { backend, requiresGrad: true }).mul(2);
    expect(() => m.registerParameter('w', nonLeaf)).toThrow(/must be a leaf tensor/);
  });

  it('parameters are kept out of tidy scopes', () => {
    const net = tidy(() => new Net({ backend }));
    for (const p of net.parameters()) expect(p.disposed).toBe(false);
    net.dispose();
    for (const p of net.parameters()) expect(p.disposed).toBe(true);
  });

  it('call is forward', async () => {
    const lin = new Linear(3, 2, { backend, generator: new Generator(1) });
    const x = randn([2, 3], { backend, generator: new Generator(2) });
    expect(await values(lin.call(x))).toEqual(await values(lin.forward(x)));
  });

  it('stateDict round-trips into a fresh module, in place (the parameter tensors stay the same objects)', async () => {
    const a = new Net({ backend, seed: 1 }).eval();
    const b = new Net({ backend, seed: 2 }).eval();
    const x = randn([5, 4], { backend, generator: new Generator(3) });
    const before = b.parameters();
    expect(await values(a.forward(x))).not.toEqual(await values(b.forward(x)));
    const sd = a.stateDict();
    expect(Object.keys(sd)).toEqual(NET_NAMES);
    expect(sd['layers.0.weight']).toBe(a.layers.at(0).weight);
    const res = b.loadStateDict(sd);
    expect(res).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect(b.parameters()).toEqual(before);
    for (const [i, p] of b.parameters().entries()) {
      expect(p).toBe(before[i]);
      expect(p.requiresGrad).toBe(true);
      expect(await values(p)).toEqual(await values(a.parameters()[i]!));
    }
    expect(await values(b.forward(x))).toEqual(await values(a.forward(x)));
    // a Map works too, and later changes to a do not reach b
    b.loadStateDict(new Map(Object.entries(sd)));
    noGrad(() => a.layers.at(0).weight.copy_(0));
    expect((await values(b.layers.at(0).weight)).some((v) => v !== 0)).toBe(true);
  });

  it('loadStateDict casts values to the parameter dtype', async () => {
    // f64 values into f32 parameters; where f64 is not stored, f32 values into bf16 parameters
    const [from, to] = stores(backend, 'f64') ? (['f64', 'f32'] as const) : (['f32', 'bf16'] as const);
    const a = new Net({ backend, seed: 1, dtype: from });
    const b = new Net({ backend, seed: 2, dtype: to === 'f32' ? undefined : to });
    b.loadStateDict(a.stateDict());
    for (const [i, p] of b.parameters().entries()) {
      expect(p.dtype).toBe(to);
      expectClose(await values(p), (await values(a.parameters()[i]!)).map(stored(to)), { rtol: 0, atol: 0 });
    }
  });

  it('strict loading names every missing, unexpected and mis-shaped entry, and loads nothing on error', async () => {
    const a = new Net({ backend, seed: 1 });
    const b = new Net({ backend, seed: 2 });
    const snapshot = await Promise.all(b.parameters().map((p) => values(p)));
    const sd = { ...a.stateDict() };
    delete sd['norm.bias'];
    sd['extra.weight'] = zeros([2], { backend });
    expect(() => b.loadStateDict(sd)).toThrow(/Net.loadStateDict: missing keys: norm.bias; unexpected keys: extra.weight \(pass \{ strict: false \}/);
    const bad = { ...a.stateDict(), 'layers.1.weight': zeros([3, 9], { backend }) };
    expect(() => b.loadStateDict(bad)).toThrow(/shape mismatch for layers.1.weight \(state \[3,9\], module \[3,8\]\)/);
    // mis-shaped entries throw even when not strict, as in PyTorch
    expect(() => b.loadStateDict(bad, { strict: false })).toThrow(/shape mismatch for layers.1.weight/);
    for (const [i, p] of b.parameters().entries()) expect(await values(p)).toEqual(snapshot[i]);
    expect(() => b.loadStateDict({ 'norm.bias': [1, 2, 3] as unknown as Tensor }, { strict: false })).toThrow(/entry 'norm.bias' is not a Tensor/);
  });

  it('non-strict loading loads what matches and reports the rest', async () => {
    const a = new Net({ backend, seed: 1 });
    const b = new Net({ backend, seed: 2 });
    const bias = await values(b.norm.bias!);
    const sd: StateDict = { ...a.stateDict(), 'extra.weight': zeros([2], { backend }) };
    delete sd['norm.bias'];
    const res = b.loadStateDict(sd, { strict: false });
    expect(res).toEqual({ missingKeys: ['norm.bias'], unexpectedKeys: ['extra.weight'] });
    expect(await values(b.layers.at(0).weight)).toEqual(await values(a.layers.at(0).weight));
    expect(await values(b.norm.bias!)).toEqual(bias);
  });

  it('train()/eval() set the mode on the whole tree, and dropout follows it', async () => {
    const net = new Net({ backend });
    expect(net.modules().every((m) => m.training)).toBe(true);
    expect(net.eval()).toBe(net);
    expect(net.modules().every((m) => !m.training)).toBe(true);
    const x = ones([64, 8], { backend });
    expect(await values(net.drop.forward(x))).toEqual(await values(x));
    net.train();
    expect(net.drop.training).toBe(true);
    const y = await values(net.drop.forward(x));
    expect(y.filter((v) => v === 0).length).toBeGreaterThan(100);
    expect(y.filter((v) => v !== 0).every((v) => v === 2)).toBe(true);
    net.train(false);
    expect(net.layers.at(1).training).toBe(false);
  });

  it('Dropout is the functional dropout with its generator', async () => {
    const x = randn([10, 10], { backend, generator: new Generator(4) });
    const d = new Dropout(0.3, { generator: new Generator(9) });
    expect(await values(d.forward(x))).toEqual(await values(dropout(x, 0.3, true, new Generator(9))));
    expect(() => new Dropout(1.5)).toThrow(/^Dropout: p must be a number in \[0, 1\], got 1.5/);
  });

  it("to() on the module's own backend is a no-op that returns the module", () => {
    const net = new Net({ backend });
    const ps = net.parameters();
    expect(net.to(backend)).toBe(net);
    expect(net.parameters()).toEqual(ps);
    net.parameters().forEach((p, i) => expect(p).toBe(ps[i]));
  });

  // to() copies synchronously (toAsync() is its asynchronous form, tested below): only from a backend that reads synchronously
  it('to() (toAsync from a backend without synchronous reads) moves every parameter to another backend, keeping requiresGrad, grads and values, and frees the old ones', async () => {
    registerBackend({ name: 'nnmove', priority: -1, create: () => new RefBackend('nnmove') });
    const net = new Net({ backend, seed: 5 }).eval();
    net.freeze('norm');
    const x = randn([3, 4], { backend, generator: new Generator(6) });
    tidy(() => net.forward(x).sum().backward());
    const old = net.parameters();
    const vals = await Promise.all(old.map((p) => values(p)));
    const grad0 = await values(net.layers.at(0).weight.grad!);
    const expected = await values(net.forward(x));
    const before = memory().backends[backend]!.tensors;
    if (!syncReadable(backend)) expect(() => net.to('nnmove')).toThrow(/^Net.to: backend '.*' cannot read synchronously; use await toAsync\(name\)/);
    expect(syncReadable(backend) ? net.to('nnmove') : await net.toAsync('nnmove')).toBe(net);
    // 5 parameters and the 3 grads of the trainable ones left the source backend
    expect(memory().backends[backend]!.tensors).toBe(before - 8);
    for (const p of old) expect(p.disposed).toBe(true);
    for (const [i, p] of net.parameters().entries()) {
      expect(p.backend.name).toBe('nnmove');
      expect(p.requiresGrad).toBe(i < 3);
      expect(await values(p)).toEqual(vals[i]);
    }
    expect(await values(net.layers.at(0).weight.grad!)).toEqual(grad0);
    expect(net.layers.at(0).weight.grad!.backend.name).toBe('nnmove');
    const x2 = await x.toAsync('nnmove');
    // the destination is the reference backend: a native source agrees to f32 rounding, not bit for bit
    expectClose(await values(net.forward(x2)), expected, tol('f32'));
    expect(() => net.forward(x)).toThrow(/different backends/);
  });

  it('toAsync() moves like to()', async () => {
    registerBackend({ name: 'nnmove2', priority: -1, create: () => new RefBackend('nnmove2') });
    const net = new Net({ backend, seed: 5 });
    const vals = await Promise.all(net.parameters().map((p) => values(p)));
    expect(await net.toAsync('nnmove2')).toBe(net);
    for (const [i, p] of net.parameters().entries()) {
      expect(p.backend.name).toBe('nnmove2');
      expect(p.requiresGrad).toBe(true);
      expect(await values(p)).toEqual(vals[i]);
    }
  });

  it('freeze()/unfreeze() by name or module path: frozen parameters get no gradient', () => {
    const net = new Net({ backend, seed: 3 }).eval();
    const x = randn([3, 4], { backend, generator: new Generator(7) });
    const step = (): void => tidy(() => net.forward(x).pow(2).sum().backward());
    expect(net.freeze('layers.0', 'norm.bias')).toBe(net);
    step();
    const has = (): boolean[] => net.parameters().map((p) => p.grad !== null);
    expect(has()).toEqual([false, false, true, true, false]);
    expect(net.numParameters(true)).toBe(24 + 3);
    net.zeroGrad();
    expect(has()).toEqual([false, false, false, false, false]);
    net.unfreeze('layers.0.bias');
    step();
    expect(has()).toEqual([false, true, true, true, false]);
    // freezing drops a gradient already there
    net.freeze('layers.1');
    expect(has()).toEqual([false, true, false, true, false]);
    net.freeze();
    expect(net.parameters().every((p) => !p.requiresGrad)).toBe(true);
    net.unfreeze();
    expect(net.parameters().every((p) => p.requiresGrad)).toBe(true);
    net.requiresGrad_(false);
    expect(net.numParameters(true)).toBe(0);
    expect(() => net.freeze('layers.2')).toThrow(/Net.freeze: 'layers.2' names no parameter/);
    expect(() => net.freeze('layers.0.w')).toThrow(/names no parameter/);
  });

  it('buffers move with the module; persistent ones are in the state dict', async () => {
    class WithBuffers extends Module {
      constructor() {
        super();
        this.registerBuffer('count', zeros([1], { backend }));
        this.registerBuffer('table', ones([2], { backend }), { persistent: false });
      }
      forward(): void {}
    }
    const m = new WithBuffers();
    expect(m.namedBuffers().map(([n]) => n)).toEqual(['count', 'table']);
    expect(Object.keys(m.stateDict())).toEqual(['count']);
    expect(m.parameters()).toEqual([]);
    m.loadStateDict({ count: tensor([7], { backend }) });
    expect(await values(m.getBuffer('count'))).toEqual([7]);
  });

  it('Linear is x·Wᵀ + b; default init is U(−1/√in, 1/√in), std init N(0, std) with zero bias', async () => {
    const lin = new Linear(16, 8, { backend, generator: new Generator(1) });
    expect(lin.weight.shape).toEqual([8, 16]);
    expect(lin.bias!.shape).toEqual([8]);
    for (const v of [...(await values(lin.weight)), ...(await values(lin.bias!))]) expect(Math.abs(v)).toBeLessThanOrEqual(0.25);
    const x = randn([2, 3, 16], { backend, generator: new Generator(2) });
    expect(await values(lin.forward(x))).toEqual(await values(linear(x, lin.weight, lin.bias)));
    const nb = new Linear(16, 8, { backend, bias: false, std: 0.02 });
    expect(nb.bias).toBeNull();
    expect(nb.namedParameters().map(([n]) => n)).toEqual(['weight']);
    const g = new Linear(4, 2, { backend, std: 0.5, generator: new Generator(3) });
    expect(await values(g.bias!)).toEqual([0, 0]);
    expect(await values(g.weight)).toEqual(await values(randn([2, 4], { backend, generator: new Generator(3) }).mul(0.5)));
    const tied = new Linear(4, 2, { backend, weight: g.weight });
    expect(tied.weight).toBe(g.weight);
    expect(() => new Linear(3, 2, { backend, weight: g.weight })).toThrow(/Linear: weight must be \[2, 3\], got \[2,4\]/);
    expect(() => new Linear(-1, 2)).toThrow(/^Linear: inFeatures must be an integer ≥ 0, got -1/);
    expect(() => lin.forward(randn([2, 5], { backend }))).toThrow(/^Linear.forward: input \[2,5\] does not match weight \[8,16\]/);
    // a dtype option other than the default f32 (bf16 where f64 is not stored)
    const other = stores(backend, 'f64') ? 'f64' : 'bf16';
    const wide = new Linear(3, 2, { backend, dtype: other });
    expect([wide.weight.dtype, wide.bias!.dtype]).toEqual([other, other]);
  });

  it('Embedding looks up rows; default init N(0, 1)', async () => {
    const emb = new Embedding(10, 4, { backend, generator: new Generator(1) });
    expect(await values(emb.weight)).toEqual(await values(randn([10, 4], { backend, generator: new Generator(1) })));
    const ids = tensor([[1, 9], [0, 1]], { backend, dtype: 'i32' });
    expect(emb.forward(ids).shape).toEqual([2, 2, 4]);
    expect(await values(emb.forward(ids))).toEqual(await values(embedding(ids, emb.weight)));
    // an id out of range is found by the kernel: the next read throws, naming embedding
    const bad = emb.forward(tensor([10], { backend, dtype: 'i32' }));
    await expect(bad.data()).rejects.toThrow(/^embedding: index 10 is out of range \[0, 10\)/);
  });

  it('LayerNorm and RMSNorm match the functional ops and honour their options', async () => {
    const x = randn([3, 5], { backend, generator: new Generator(1) });
    const ln = new LayerNorm(5, { backend, eps: 1e-3 });
    expect(ln.namedParameters().map(([n]) => n)).toEqual(['weight', 'bias']);
    expect(await values(ln.weight!)).toEqual([1, 1, 1, 1, 1]);
    expect(await values(ln.bias!)).toEqual([0, 0, 0, 0, 0]);
    noGrad(() => normal_(ln.weight!, 1, 0.5, new Generator(2)));
    expectClose(await values(ln.forward(x)), await values(layerNorm(x, [5], ln.weight, ln.bias, 1e-3)), { rtol: 0, atol: 0 });
    expect(new LayerNorm(5, { bias: false }).namedParameters().map(([n]) => n)).toEqual(['weight']);
    const plain = new LayerNorm(5, { backend, elementwiseAffine: false });
    expect(plain.parameters()).toEqual([]);
    expect(await values(plain.forward(x))).toEqual(await values(layerNorm(x, [5])));
    const rms = new RMSNorm(5, { backend, eps: 1e-6 });
    expect(await values(rms.forward(x))).toEqual(await values(rmsNorm(x, [5], rms.weight, 1e-6)));
    expect(new RMSNorm(5, { elementwiseAffine: false }).parameters()).toEqual([]);
    expect(() => new LayerNorm(0)).toThrow(/^LayerNorm: dim must be an integer ≥ 1, got 0/);
    expect(() => ln.forward(randn([3, 4], { backend }))).toThrow(/^LayerNorm.forward: /);
  });

  it('activation modules are the functional ops', async () => {
    const x = randn([4, 6], { backend, generator: new Generator(1) });
    expect(await values(new GELU().forward(x))).toEqual(await values(gelu(x)));
    expect(await values(new GELU({ approximate: 'tanh' }).forward(x))).toEqual(await values(gelu(x, { approximate: 'tanh' })));
    expect(await values(new SiLU().forward(x))).toEqual(await values(silu(x)));
    expect(await values(new ReLU().forward(x))).toEqual(await values(relu(x)));
    expect(() => new GELU({ approximate: 'fast' as 'tanh' })).toThrow(/^GELU: approximate must be one of 'none', 'tanh', got 'fast'/);
  });

  it('MLP is c_fc → tanh-GELU → c_proj with 4× width by default', async () => {
    const mlp = new MLP(6, { backend, generator: new Generator(1) });
    expect(mlp.namedParameters().map(([n, p]) => `${n} ${p.shape.join('x')}`)).toEqual([
      'c_fc.weight 24x6',
      'c_fc.bias 24',
      'c_proj.weight 6x24',
      'c_proj.bias 6',
    ]);
    const x = randn([2, 3, 6], { backend, generator: new Generator(2) });
    const h = gelu(linear(x, mlp.c_fc.weight, mlp.c_fc.bias), { approximate: 'tanh' });
    // the GELU runs in c_fc's matmul epilogue: the same function, its own kernel code (webgpu's
    // epilogue and unary kernels differ by a few f32 units)
    expectClose(await values(mlp.forward(x)), await values(linear(h, mlp.c_proj.weight, mlp.c_proj.bias)), { rtol: 1e-6, atol: 1e-7 });
    expect(new MLP(6, { hidden: 10, bias: false }).namedParameters().map(([n, p]) => `${n} ${p.shape.join('x')}`)).toEqual([
      'c_fc.weight 10x6',
      'c_proj.weight 6x10',
    ]);
  });

  it('in-place initialisers fill from the generator, outside the graph', async () => {
    const t = zeros([100], { backend, requiresGrad: true });
    normal_(t, 0, 2, new Generator(3));
    expect(await values(t)).toEqual(await values(randn([100], { backend, generator: new Generator(3) }).mul(2)));
    expect(t.isLeaf).toBe(true);
    uniform_(t, -1, 1, new Generator(3));
    expect((await values(t)).every((v) => v >= -1 && v < 1)).toBe(true);
    expect((await values(zeros_(t))).every((v) => v === 0)).toBe(true);
    expect((await values(ones_(t))).every((v) => v === 1)).toBe(true);
    expect((await values(constant_(t, 0.5))).every((v) => v === 0.5)).toBe(true);
  });
});
