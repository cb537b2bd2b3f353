/**
 * Dynamic loss scaling for f16 training, as PyTorch's `torch.amp.GradScaler`: the loss is
 * multiplied by a scale S before the backward pass so that small f16 gradients do not flush to
 * zero; the gradients are divided by S before clipping and the step; a step whose gradients hold
 * an inf or a NaN (the scale was too high) is skipped and S falls by `backoffFactor`; after
 * `growthInterval` clean steps in a row S grows by `growthFactor`.
 *
 * The scale lives on the host (it changes only at `update`), so `scale(loss)` and the unscaling
 * queue work without a sync; `step` reads one number (whether the gradients are finite), as
 * PyTorch's scaler does for optimizers without a fused found-inf input.
 *
 * @example
 * const scaler = new GradScaler();
 * const { loss } = autocast({ dtype: 'f16' }, () => model.forward(x, y));
 * scaler.scale(loss!).backward();
 * scaler.unscale(opt);              // optional: only to clip the true gradients
 * clipGradNorm(model.parameters(), 1);
 * await scaler.step(opt);           // skipped when a gradient is inf or NaN
 * scaler.update();
 * @module
 */
import { noGrad } from '../autograd/tape.js';
import { byDtype } from '../optim/optimizer.js';
import { tidy } from '../tensor/memory.js';
import { scalarTensor, fail } from '../tensor/ops/util.js';
import { multiNorm, multiScale } from '../tensor/ops/optim.js';
import { sum } from '../tensor/ops/reduce.js';
import { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkKeys, checkNumber, show } from '../tensor/validate.js';

/** Options of {@link GradScaler} (PyTorch's defaults). */
export interface GradScalerOptions {
  /** The first scale (default 2¹⁶). */
  initScale?: number;
  /** Factor the scale grows by after `growthInterval` steps without inf/NaN (default 2; > 1). */
  growthFactor?: number;
  /** Factor the scale falls by after a step with inf/NaN (default 0.5; in (0, 1)). */
  backoffFactor?: number;
  /** Clean steps in a row before the scale grows (default 2000). */
  growthInterval?: number;
  /** false makes every method a pass-through (scale 1, plain steps), to switch precision with one flag. Default true. */
  enabled?: boolean;
}

/** What {@link GradScaler.stateDict} returns: plain JSON, saved in checkpoints. */
export interface GradScalerState {
  scale: number;
  growthFactor: number;
  backoffFactor: number;
  growthInterval: number;
  growthTracker: number;
}

/** The optimizer surface the scaler needs: its parameter groups and `step()`. */
export interface ScalableOptimizer {
  readonly paramGroups: readonly { params: readonly Tensor[] }[];
  step(): void;
}

type Stage = 'ready' | 'unscaled' | 'stepped';

/** Dynamic loss scaling (see the module doc). */
export class GradScaler {
  private _scale: number;
  private readonly growthFactor: number;
  private readonly backoffFactor: number;
  private readonly growthInterval: number;
  private readonly enabled: boolean;
  private growthTracker = 0;
  /** Per optimizer since the last update: its stage and whether its gradients held an inf/NaN (known after step). */
  private readonly stages = new Map<ScalableOptimizer, { stage: Stage; finite: Tensor | null; found: boolean | null }>();

  constructor(opts: GradScalerOptions = {}) {
    const op = 'GradScaler';
    if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) fail(op, `options must be an object, got ${show(opts)}`);
    checkKeys(op, opts, ['initScale', 'growthFactor', 'backoffFactor', 'growthInterval', 'enabled']);
    this._scale = opts.initScale === undefined ? 2 ** 16 : checkNumber(op, 'initScale', opts.initScale, { min: 0, minExclusive: true });
    this.growthFactor = opts.growthFactor === undefined ? 2 : checkNumber(op, 'growthFactor', opts.growthFactor, { min: 1, minExclusive: true });
    this.backoffFactor = opts.backoffFactor === undefined ? 0.5 : checkNumber(op, 'backoffFactor', opts.backoffFactor, { min: 0, max: 1, minExclusive: true, maxExclusive: true });
    this.growthInterval = opts.growthInterval === undefined ? 2000 : checkNumber(op, 'growthInterval', opts.growthInterval, { min: 1, integer: true });
    this.enabled = opts.enabled === undefined ? true : checkBoolean(op, 'enabled', opts.enabled);
  }

  /** Whether scaling is on. */
  isEnabled(): boolean {
    return this.enabled;
  }

  /** The current scale (1 when disabled). */
  getScale(): number {
    return this.enabled ? this._scale : 1;
  }

  /** `loss · scale`, recorded, as a new tensor (the loss itself when disabled). */
  scale(loss: Tensor): Tensor {
    if (!(loss instanceof Tensor)) fail('GradScaler.scale', `expected a Tensor, got ${show(loss)}`);
    if (loss.disposed) fail('GradScaler.scale', 'the loss was disposed');
    return this.enabled ? loss.mul(this._scale) : loss;
  }

  private entry(op: string, optimizer: ScalableOptimizer): { stage: Stage; finite: Tensor | null; found: boolean | null } {
    if (!optimizer || typeof optimizer !== 'object' || !Array.isArray(optimizer.paramGroups) || typeof optimizer.step !== 'function')
      fail(op, `expected an optimizer, got ${show(optimizer)}`);
    let e = this.stages.get(optimizer);
    if (!e) this.stages.set(optimizer, (e = { stage: 'ready', finite: null, found: null }));
    return e;
  }

  /**
   * Divide the gradients of `optimizer`'s parameters by the scale, in place, and note on the
   * device whether they are all finite (no sync). Call it before clipping; at most once per
   * optimizer between updates ({@link step} calls it when you have not).
   */
  unscale(optimizer: ScalableOptimizer): void {
    const op = 'GradScaler.unscale';
    const e = this.entry(op, optimizer);
    if (!this.enabled) return;
    if (e.stage !== 'ready') fail(op, `unscale was already called for this optimizer since the last update (${e.stage === 'stepped' ? 'it has stepped' : 'its gradients are unscaled'})`);
    const grads = optimizer.paramGroups.flatMap((g) => g.params.flatMap((p) => (p.grad && !p.grad.disposed ? [p.grad] : [])));
    e.stage = 'unscaled';
    if (grads.length === 0) return;
    e.finite = noGrad(() =>
      tidy(() => {
        const norms: Tensor[] = [];
        for (const group of byDtype(grads, (g) => g)) {
          const inv = scalarTensor(group[0]!.backend, 1 / this._scale, group[0]!.dtype === 'f64' ? 'f64' : 'f32', op);
          multiScale(group, inv);
          // an inf or NaN anywhere makes its tensor's norm inf or NaN, and so the total
          norms.push(sum(multiNorm(group)).cast('f32'));
        }
        return norms.reduce((a, b) => a.add(b)).isfinite();
      }),
    );
  }

  /**
   * Unscale (unless done), then run `optimizer.step()` unless a gradient is inf or NaN. Reads one
   * value from the device. Resolves to whether the step ran.
   */
  async step(optimizer: ScalableOptimizer): Promise<boolean> {
    const op = 'GradScaler.step';
    const e = this.entry(op, optimizer);
    if (!this.enabled) {
      optimizer.step();
      return true;
    }
    if (e.stage === 'stepped') fail(op, 'step was already called for this optimizer since the last update');
    if (e.stage === 'ready') this.unscale(optimizer);
    let finite = true;
    if (e.finite) {
      try {
        finite = (await e.finite.item()) !== 0;
      } finally {
        e.finite.dispose();
        e.finite = null;
      }
    }
    e.stage = 'stepped';
    e.found = !finite;
    if (finite) optimizer.step();
    return finite;
  }

  /**
   * Adjust the scale after every optimizer has stepped: lower it by `backoffFactor` when any step
   * was skipped, else grow it by `growthFactor` every `growthInterval` clean updates. With
   * `newScale` the scale is set to it instead.
   */
  update(newScale?: number): void {
    const op = 'GradScaler.update';
    if (!this.enabled) return;
    if (newScale !== undefined) {
      this._scale = checkNumber(op, 'newScale', newScale, { min: 0, minExclusive: true });
    } else {
      const stepped = [...this.stages.values()].filter((e) => e.stage === 'stepped');
      if (stepped.length === 0) fail(op, 'no optimizer stepped through this scaler since the last update (call step first)');
      if (stepped.some((e) => e.found)) {
        this._scale *= this.backoffFactor;
        this.growthTracker = 0;
      } else if (++this.growthTracker === this.growthInterval) {
        this._scale *= this.growthFactor;
        this.growthTracker = 0;
      }
    }
    for (const e of this.stages.values()) e.finite?.dispose();
    this.stages.clear();
  }

  /** The scale and its schedule, for checkpoints. */
  stateDict(): GradScalerState {
    return { scale: this._scale, growthFactor: this.growthFactor, backoffFactor: this.backoffFactor, growthInterval: this.growthInterval, growthTracker: this.growthTracker };
  }

  /** Restore the scale and growth tracker saved by {@link stateDict} (factors and interval stay as constructed). */
  loadStateDict(s: GradScalerState): void {
    const op = 'GradScaler.loadStateDict';
    if (s === null || typeof s !== 'object' || Array.isArray(s)) fail(op, `expected a state dict, got ${show(s)}`);
    this._scale = checkNumber(op, 'scale', s.scale, { min: 0, minExclusive: true });
    this.growthTracker = checkNumber(op, 'growthTracker', s.growthTracker, { min: 0, integer: true });
  }
}
