/**
 * Parameter-efficient fine-tuning: LoRA on chosen Linear layers and bottleneck adapters between a
 * GPT's blocks. Only the adapters' parameters train; the base model is frozen and stays bit for
 * bit as it was. Their parameters, under PEFT's names (`base_model.model.<module>.lora_A.weight`),
 * are what {@link peftStateDict} returns and `saveAdapters` writes; {@link loadPeftState} puts
 * them back onto a fresh base model.
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import { tidy } from '../tensor/memory.js';
import { gelu } from '../tensor/ops/elementwise.js';
import { fmt } from '../tensor/shape.js';
import type { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkChoice, checkNumber, show } from '../tensor/validate.js';
import { Tensor as TensorClass } from '../tensor/tensor.js';
import { asOp } from '../tensor/ops/util.js';
import { Block } from '../nn/block.js';
import { GPT } from '../nn/gpt.js';
import { makeConstant } from '../nn/init.js';
import { Linear, type LoRAOptions } from '../nn/linear.js';
import { Module, type StateDict } from '../nn/module.js';
import { options, paramOptions, PARAM_KEYS, size } from '../nn/validate.js';

/** PEFT's prefix of every adapter tensor name (its `PeftModel` wraps the base model twice). */
export const PEFT_PREFIX = 'base_model.model.';

/** The LoRA settings, as PEFT's `LoraConfig`. */
export interface LoRAConfig extends Omit<LoRAOptions, 'generator'> {
  /**
   * The Linear layers to adapt: a name matches a module whose dotted name is the name or ends in
   * `.name` (PEFT's `target_modules`), a RegExp one whose whole name it matches. Default
   * `['c_attn']` (PEFT's default for GPT-2).
   */
  targets?: (string | RegExp)[];
  /**
   * Modules (or parameters) of the base that train too and are saved with the adapters, PEFT's
   * `modules_to_save`: `['transformer.wte']` when new tokens were added, since their embedding
   * rows would otherwise stay at their initial values.
   */
  trainable?: string[];
}

/** The bottleneck adapter settings (Houlsby et al. 2019; one adapter after each block, as Pfeiffer et al. 2020). */
export interface AdapterConfig {
  /** Width of the bottleneck. */
  bottleneck: number;
}

/** What `saveAdapters` writes beside the weights (`adapter_config.json`): PEFT's fields, plus kiln's adapters. */
export interface PeftConfigJSON {
  peft_type: 'LORA' | 'BOTTLENECK';
  task_type: 'CAUSAL_LM';
  r?: number;
  lora_alpha?: number;
  lora_dropout?: number;
  /** The adapted modules' full names (what PEFT accepts as `target_modules`). */
  target_modules?: string[];
  bias: 'none';
  fan_in_fan_out: false;
  /** kiln: the bottleneck adapters' width, when the model has them. */
  bottleneck?: number;
  /** Base modules trained and saved beside the adapters (their full weights). */
  modules_to_save?: string[];
}

// the modules_to_save of each model that has adapters
const saved = new WeakMap<Module, string[]>();

function savedParams(model: Module): [string, Tensor][] {
  const names = saved.get(model) ?? [];
  return model.namedParameters().filter(([n]) => names.some((m) => n === m || n.startsWith(`${m}.`)));
}

function matches(name: string, targets: (string | RegExp)[]): boolean {
  return targets.some((t) => (typeof t === 'string' ? name === t || name.endsWith(`.${t}`) : new RegExp(`^(?:${t.source})$`, t.flags).test(name)));
}

// a Module argument (errors start with `op`)
function moduleArg(op: string, model: unknown): Module {
  if (!(model instanceof Module)) throw new Error(`${op}: model must be a Module, got ${show(model)}`);
  return model;
}

/** The model's Linear layers that carry a LoRA adapter, with their dotted names. */
export function loraLayers(model: Module): [string, Linear][] {
  return moduleArg('loraLayers', model)
    .namedModules().filter((e): e is [string, Linear] => e[1] instanceof Linear && e[1].lora !== null);
}

/**
 * Add LoRA adapters to the Linear layers of `model` that `config.targets` names and freeze
 * everything else (PEFT's `get_peft_model` with `bias='none'`): afterwards only the adapters'
 * `lora_A` and `lora_B` weights (and any bottleneck adapters') require grad. Returns the adapted
 * layers' names; throws when no layer matches, naming the Linear layers there are.
 *
 * @example
 * applyLoRA(model, { rank: 8, alpha: 16, targets: ['c_attn', 'c_proj'] });
 * const opt = new AdamW(model.parameters().filter((p) => p.requiresGrad), { lr: 1e-3 });
 */
export function applyLoRA(model: Module, config: LoRAConfig & { generator?: Generator }): string[] {
  const op = 'applyLoRA';
  return asOp(op, () => {
    if (!(model instanceof Module)) throw new Error(`${op}: model must be a Module, got ${show(model)}`);
    const o = options(op, config, ['rank', 'alpha', 'dropout', 'targets', 'generator', 'trainable']);
    const extra = o.trainable ?? [];
    if (!Array.isArray(extra) || extra.some((n) => typeof n !== 'string')) throw new Error(`${op}: trainable must be an array of module or parameter names, got ${show(o.trainable)}`);
    for (const n of extra)
      if (!model.namedParameters().some(([p]) => p === n || p.startsWith(`${n}.`))) throw new Error(`${op}: trainable '${n}' names no parameter or module with parameters`);
    const targets = o.targets ?? ['c_attn'];
    if (!Array.isArray(targets) || targets.length === 0 || targets.some((t) => typeof t !== 'string' && !(t instanceof RegExp)))
      throw new Error(`${op}: targets must be a non-empty array of module names and RegExps, got ${show(o.targets)}`);
    const linears = model.namedModules().filter((e): e is [string, Linear] => e[1] instanceof Linear && !/(^|\.)lora_[AB]$/.test(e[0]));
    const chosen = linears.filter(([n]) => matches(n, targets));
    if (chosen.length === 0)
      throw new Error(`${op}: targets ${targets.map(String).join(', ')} match none of the model's Linear layers (${linears.map(([n]) => n).join(', ') || 'none'})`);
    const { targets: _t, trainable: _x, ...layerOpts } = o;
    void _t;
    void _x;
    for (const [, l] of chosen) l.addLoRA(layerOpts as LoRAOptions);
    saved.set(model, [...new Set([...(saved.get(model) ?? []), ...extra])]);
    freezeBase(model);
    return chosen.map(([n]) => n);
  });
}

// Every parameter trains iff it belongs to an adapter (LoRA or bottleneck) or to modules_to_save.
function freezeBase(model: Module): void {
  for (const [name, p] of model.namedParameters()) p.requiresGrad = isAdapterParam(name);
  for (const [, p] of savedParams(model)) p.requiresGrad = true;
}

function isAdapterParam(name: string): boolean {
  return /(^|\.)(lora_A|lora_B|adapter)\./.test(name);
}

/** Fold every LoRA update into its layer's weight ({@link Linear.mergeLoRA}). */
export function mergeLoRA(model: Module): void {
  moduleArg('mergeLoRA', model);
  for (const [, l] of loraLayers(model)) if (!l.lora!.merged) l.mergeLoRA();
}

/** Take every merged LoRA update back out ({@link Linear.unmergeLoRA}). */
export function unmergeLoRA(model: Module): void {
  moduleArg('unmergeLoRA', model);
  for (const [, l] of loraLayers(model)) if (l.lora!.merged) l.unmergeLoRA();
}

/**
 * Remove every LoRA adapter; with `merge` (PEFT's `merge_and_unload`) their updates are first
 * folded into the weights, else they are dropped. The model's parameters train again.
 */
export function removeLoRA(model: Module, opts: { merge?: boolean } = {}): void {
  moduleArg('removeLoRA', model);
  const o = options('removeLoRA', opts, ['merge']);
  const merge = o.merge === undefined ? false : checkBoolean('removeLoRA', 'merge', o.merge);
  for (const [, l] of loraLayers(model)) {
    if (merge && !l.lora!.merged) l.mergeLoRA();
    if (!merge && l.lora!.merged) l.unmergeLoRA();
    l.removeLoRA();
  }
  for (const p of model.parameters()) p.requiresGrad = true;
  saved.delete(model);
}

/**
 * A bottleneck adapter: x + up(gelu(down(x))), down `[bottleneck, C]`, up `[C, bottleneck]`
 * initialised to zero, so it starts as the identity (Houlsby et al.'s near-identity start).
 */
export class BottleneckAdapter extends Module {
  readonly down: Linear;
  readonly up: Linear;

  constructor(width: number, bottleneck: number, opts: { dtype?: Tensor['dtype']; backend?: string; generator?: Generator } = {}) {
    super();
    const op = 'BottleneckAdapter';
    size(op, 'width', width, 1);
    size(op, 'bottleneck', bottleneck, 1);
    opts = paramOptions(op, options(op, opts, PARAM_KEYS));
    this.down = this.registerModule('down', new Linear(width, bottleneck, opts));
    const place = { ...(opts.dtype ? { dtype: opts.dtype } : {}), ...(opts.backend ? { backend: opts.backend } : {}) };
    this.up = this.registerModule('up', new Linear(bottleneck, width, { ...place, weight: makeConstant(op, [width, bottleneck], 0, place) }));
  }

  /** x `[..., C]` → x + up(gelu(down(x))). */
  forward(x: Tensor): Tensor {
    return asOp('BottleneckAdapter.forward', () => x.add(this.up.forward(gelu(this.down.forward(x)))));
  }
}

/**
 * Put a {@link BottleneckAdapter} after every block of `model` and freeze everything but the
 * adapters (and any LoRA adapters). Returns the adapters' module names.
 */
export function applyAdapters(model: GPT, config: AdapterConfig & { generator?: Generator }): string[] {
  const op = 'applyAdapters';
  return asOp(op, () => {
    if (!(model instanceof GPT)) throw new Error(`${op}: model must be a GPT, got ${show(model)}`);
    const o = options(op, config, ['bottleneck', 'generator']);
    const bottleneck = size(op, 'bottleneck', o.bottleneck, 1);
    const blocks = model.namedModules().filter((e): e is [string, Block] => e[1] instanceof Block);
    const w = model.parameters()[0]!;
    for (const [, b] of blocks) {
      if (b.getModule('adapter')) throw new Error(`${op}: the model already has adapters`);
      b.setAdapter(new BottleneckAdapter(model.config.nEmbd, bottleneck, { dtype: w.dtype, backend: w.backend.name, ...(o.generator ? { generator: o.generator } : {}) }));
    }
    freezeBase(model);
    return blocks.map(([n]) => `${n}.adapter`);
  });
}

/**
 * The adapters' parameters of `model` under PEFT's names (`base_model.model.` + the dotted
 * name): LoRA's `….lora_A.weight` and `….lora_B.weight`, and bottleneck adapters'
 * `….adapter.down.weight` etc. The entries are the model's own tensors (do not dispose them).
 */
export function peftStateDict(model: Module): StateDict {
  moduleArg('peftStateDict', model);
  const out: StateDict = {};
  for (const [name, p] of model.namedParameters()) if (isAdapterParam(name)) out[PEFT_PREFIX + name] = p;
  for (const [name, p] of savedParams(model)) out[PEFT_PREFIX + name] = p;
  if (Object.keys(out).length === 0) throw new Error('peftStateDict: the model has no adapters (applyLoRA or applyAdapters first)');
  return out;
}

/** The `adapter_config.json` that describes `model`'s adapters. */
export function peftConfig(model: Module): PeftConfigJSON {
  const layers = loraLayers(moduleArg('peftConfig', model));
  const blocks = model.namedModules().filter(([, m]) => m instanceof BottleneckAdapter) as [string, BottleneckAdapter][];
  if (layers.length === 0 && blocks.length === 0) throw new Error('peftConfig: the model has no adapters (applyLoRA or applyAdapters first)');
  const cfg: PeftConfigJSON = { peft_type: layers.length ? 'LORA' : 'BOTTLENECK', task_type: 'CAUSAL_LM', bias: 'none', fan_in_fan_out: false };
  if (layers.length) {
    const l = layers[0]![1].lora!;
    for (const [n, x] of layers) {
      const s = x.lora!;
      if (s.rank !== l.rank || s.alpha !== l.alpha || s.dropout !== l.dropout)
        throw new Error(`peftConfig: layer '${n}' has LoRA rank ${s.rank}, alpha ${s.alpha}, dropout ${s.dropout}, unlike '${layers[0]![0]}' (one config describes all)`);
    }
    Object.assign(cfg, { r: l.rank, lora_alpha: l.alpha, lora_dropout: l.dropout, target_modules: layers.map(([n]) => n) });
  }
  if (blocks.length) cfg.bottleneck = blocks[0]![1].down.outFeatures;
  const keep = saved.get(model);
  if (keep?.length) cfg.modules_to_save = [...keep];
  return cfg;
}

/**
 * Put adapters described by `config` onto `model` (a fresh base model) and load their weights
 * from `tensors` (PEFT names, as {@link peftStateDict}). Every expected tensor must be there
 * with its shape, and nothing else: the error lists what is missing, unexpected or misshapen.
 */
export function loadPeftState(model: Module, config: PeftConfigJSON, tensors: Record<string, Tensor>): void {
  const op = 'loadPeftState';
  moduleArg(op, model);
  if (tensors === null || typeof tensors !== 'object' || Array.isArray(tensors)) throw new Error(`${op}: tensors must be an object of name → Tensor, got ${show(tensors)}`);
  for (const [k, t] of Object.entries(tensors)) if (!(t instanceof TensorClass) || t.disposed) throw new Error(`${op}: tensors['${k}'] must be a live Tensor, got ${show(t)}`);
  if (config === null || typeof config !== 'object') throw new Error(`${op}: config must be an adapter_config object, got ${show(config)}`);
  checkChoice(op, 'config.peft_type', config.peft_type, ['LORA', 'BOTTLENECK'] as const);
  if (config.peft_type === 'LORA') {
    if (!Array.isArray(config.target_modules) || config.target_modules.length === 0) throw new Error(`${op}: config.target_modules must list the adapted modules, got ${show(config.target_modules)}`);
    const rank = size(op, 'config.r', config.r, 1);
    applyLoRA(model, {
      rank,
      alpha: checkNumber(op, 'config.lora_alpha', config.lora_alpha ?? rank, { min: 0, minExclusive: true }),
      dropout: checkNumber(op, 'config.lora_dropout', config.lora_dropout ?? 0, { min: 0, max: 1, maxExclusive: true }),
      targets: config.target_modules.map((n) => new RegExp(n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))),
      ...(config.modules_to_save ? { trainable: config.modules_to_save } : {}),
    });
  }
  if (config.bottleneck !== undefined) {
    if (!(model instanceof GPT)) throw new Error(`${op}: bottleneck adapters need a GPT model`);
    applyAdapters(model, { bottleneck: config.bottleneck });
  }
  const want = peftStateDict(model);
  const missing = Object.keys(want).filter((k) => !(k in tensors));
  const extra = Object.keys(tensors).filter((k) => !(k in want));
  const shapes = Object.keys(want)
    .filter((k) => k in tensors && fmt(tensors[k]!.shape) !== fmt(want[k]!.shape))
    .map((k) => `${k}: ${fmt(tensors[k]!.shape)} for ${fmt(want[k]!.shape)}`);
  const problems = [
    ...(missing.length ? [`missing ${missing.join(', ')}`] : []),
    ...(extra.length ? [`unexpected ${extra.join(', ')}`] : []),
    ...(shapes.length ? [`wrong shape ${shapes.join(', ')}`] : []),
  ];
  if (problems.length) throw new Error(`${op}: the adapter weights do not fit the model: ${problems.join('; ')}`);
  noGrad(() =>
    tidy(() => {
      for (const [k, p] of Object.entries(want)) p.copy_(tensors[k]!.cast(p.dtype).to(p.backend.name));
    }),
  );
}
