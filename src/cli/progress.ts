/**
 * Training progress on a stream (stderr): on a terminal, one line redrawn in place with a bar,
 * step/total, loss, learning rate, tokens per second, model FLOPs utilisation (when the device's
 * peak is known, see {@link gpuPeakFlops}) and the time left; otherwise (a pipe, a
 * log file, CI) a plain line every N steps. Other messages go through {@link ProgressBar.log},
 * which prints them above the bar.
 * @module
 */
import { H100_SXM } from '../distributed/cost_model.js';
import { show } from '../tensor/validate.js';

/** The stream a {@link ProgressBar} writes to: a writable with optional terminal facts. */
export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** Options of {@link ProgressBar}. */
export interface ProgressOptions {
  /** The step the run ends at. */
  total: number;
  /** The step the run starts from (a resumed run's step); 0 by default. */
  start?: number;
  /** Where to write; process.stderr by default. */
  stream?: ProgressStream;
  /** Redraw one line (true) or print a line every `every` steps (false); the stream's `isTTY` by default. */
  tty?: boolean;
  /** Steps between lines when not redrawing; 10 by default. */
  every?: number;
  /** Clock in milliseconds (tests inject one); performance.now by default. */
  now?: () => number;
}

/** What {@link ProgressBar.update} shows. */
export interface ProgressInfo {
  step: number;
  /** The mean loss since the previous logged step (present at logged steps). */
  loss?: number;
  lr: number;
  tokensPerSecond: number;
  /** Model FLOPs utilisation as a fraction (see {@link modelFlopsUtilization}); shown as `MFU 12.3%` when present. */
  mfu?: number;
}

/**
 * Dense (no sparsity) bf16/f16 tensor-core peaks of NVIDIA GPUs in FLOP/s, matched against the
 * device name CUDA reports (`cudaGetDeviceProperties`: "NVIDIA H100 80GB HBM3",
 * "NVIDIA A100-SXM4-80GB", …) in order, the first match winning. The numbers are NVIDIA's
 * datasheets' "BF16 Tensor Core" (V100: "Tensor Performance", f16; it has no bf16), which quote
 * them with 2:4 sparsity: the dense peak is half.
 * - H100 SXM, H200 (SXM and GH200, the same compute): 989.4 TFLOP/s (H100 datasheet 1,979 sparse;
 *   the Hopper whitepaper's dense 989.4, as `cost_model.ts`'s `H100_SXM`);
 * - H100 NVL and H200 NVL: 835.5 (1,671 sparse); H100 PCIe: 756.5 (1,513);
 * - A100 (SXM and PCIe, 40 and 80 GB): 312 (A100 datasheet, 624 sparse);
 * - L40S: 362.05 (733 sparse); A10: 125 (250); L4: 121 (242);
 * - V100: 125 SXM2, 112 PCIe (V100 datasheet, f16).
 */
export const GPU_PEAKS: readonly { pattern: RegExp; name: string; peakFlops: number }[] = [
  { pattern: /H200.*NVL/i, name: 'H200 NVL', peakFlops: 835.5e12 },
  { pattern: /H200/i, name: 'H200', peakFlops: H100_SXM.peakFlops.bf16 },
  { pattern: /H100.*NVL/i, name: 'H100 NVL', peakFlops: 835.5e12 },
  { pattern: /H100.*PCIe/i, name: 'H100 PCIe', peakFlops: 756.5e12 },
  { pattern: /H100/i, name: 'H100 SXM', peakFlops: H100_SXM.peakFlops.bf16 },
  { pattern: /A100/i, name: 'A100', peakFlops: 312e12 },
  { pattern: /L40S/i, name: 'L40S', peakFlops: 362.05e12 },
  { pattern: /\bA10\b/i, name: 'A10', peakFlops: 125e12 },
  { pattern: /\bL4\b/i, name: 'L4', peakFlops: 121e12 },
  { pattern: /V100.*PCIe/i, name: 'V100 PCIe', peakFlops: 112e12 },
  { pattern: /V100/i, name: 'V100 SXM2', peakFlops: 125e12 },
];

/** The dense bf16/f16 peak of the GPU CUDA calls `deviceName` (from a table of NVIDIA data-center and workstation cards, by name), or null when it is not in the table. */
export function gpuPeakFlops(deviceName: string): { name: string; peakFlops: number } | null {
  if (typeof deviceName !== 'string') throw new Error(`gpuPeakFlops: deviceName must be a string (the name CUDA reports), got ${show(deviceName)}`);
  const hit = GPU_PEAKS.find((g) => g.pattern.test(deviceName));
  return hit ? { name: hit.name, peakFlops: hit.peakFlops } : null;
}

/**
 * Model FLOPs utilisation (PaLM, Chowdhery et al. 2022, appendix B): the FLOPs the model needs per
 * token (`flopsPerToken(...).model` of `cost_model.ts`: 6·N plus attention, no recomputation)
 * times the tokens per second trained, over the peak FLOP/s of the `devices` that trained them.
 */
export function modelFlopsUtilization(tokensPerSecond: number, flopsPerToken: number, peakFlops: number, devices = 1): number {
  return (tokensPerSecond * flopsPerToken) / (peakFlops * devices);
}

/** An MFU fraction as `12.3%`. */
export const formatMfu = (mfu: number): string => `${(100 * mfu).toFixed(1)}%`;

const mfuText = (info: ProgressInfo): string => (info.mfu === undefined || !Number.isFinite(info.mfu) ? '' : ` MFU ${formatMfu(info.mfu)}`);

/** `59s`, `4m05s`, `1h02m`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** `950`, `12.3k`, `4.56M`. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return '?';
  const a = Math.abs(n);
  if (a < 1e3) return String(Math.round(n));
  if (a < 1e6) return `${(n / 1e3).toFixed(a < 1e4 ? 2 : 1)}k`;
  return `${(n / 1e6).toFixed(a < 1e7 ? 2 : 1)}M`;
}

/** A learning rate in 3 significant digits (`1.00e-3`). */
export const formatLr = (lr: number): string => lr.toExponential(2);

/**
 * Shows training progress.
 *
 * @example
 * const bar = new ProgressBar({ total: 6000 });
 * bar.update({ step, loss, lr, tokensPerSecond });
 * bar.log('step 500: val loss 4.12'); // printed above the bar
 * bar.done();
 */
export class ProgressBar {
  readonly total: number;
  private readonly start: number;
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly every: number;
  private readonly now: () => number;
  private readonly t0: number;
  private lastDraw = -Infinity;
  private line = '';
  private ema = 0;
  private emaSteps = 0;
  private windowLoss = 0;
  private windowSteps = 0;

  constructor(opts: ProgressOptions) {
    this.total = opts.total;
    this.start = opts.start ?? 0;
    this.stream = opts.stream ?? process.stderr;
    this.tty = opts.tty ?? !!this.stream.isTTY;
    this.every = Math.max(1, opts.every ?? 10);
    this.now = opts.now ?? (() => performance.now());
    this.t0 = this.now();
  }

  /** Seconds left at the average pace since the start (evaluations and checkpoints included). */
  eta(step: number): number {
    const done = step - this.start;
    if (done <= 0) return NaN;
    const perStep = (this.now() - this.t0) / 1000 / done;
    return perStep * Math.max(0, this.total - step);
  }

  /** Record a step and redraw (terminal, at most 10 times a second) or print a line (every N steps and the last). */
  update(info: ProgressInfo): void {
    // a debiased moving average (β = 0.9) keeps the shown loss readable; losses come at logged steps
    if (info.loss !== undefined) {
      this.ema = 0.9 * this.ema + 0.1 * info.loss;
      this.emaSteps++;
      this.windowLoss += info.loss;
      this.windowSteps++;
    }
    const last = info.step >= this.total;
    if (this.tty) {
      const t = this.now();
      if (!last && t - this.lastDraw < 100) return;
      this.lastDraw = t;
      this.draw(this.ttyLine(info));
      return;
    }
    if ((info.step % this.every !== 0 && !last) || this.windowSteps === 0) return;
    const loss = this.windowLoss / this.windowSteps;
    this.windowLoss = 0;
    this.windowSteps = 0;
    const pct = this.total > 0 ? Math.floor((100 * info.step) / this.total) : 100;
    const elapsed = (this.now() - this.t0) / 1000;
    this.stream.write(
      `step ${info.step}/${this.total} (${pct}%) loss ${loss.toFixed(4)} lr ${formatLr(info.lr)} ${formatCount(info.tokensPerSecond)} tok/s${mfuText(info)} elapsed ${formatDuration(elapsed)} ETA ${formatDuration(this.eta(info.step))}\n`,
    );
  }

  private ttyLine(info: ProgressInfo): string {
    const loss = this.emaSteps > 0 ? this.ema / (1 - 0.9 ** this.emaSteps) : NaN;
    const width = this.total > 0 ? String(this.total).length : 1;
    const text = ` ${String(info.step).padStart(width)}/${this.total} loss ${loss.toFixed(4)} lr ${formatLr(info.lr)} ${formatCount(info.tokensPerSecond)} tok/s${mfuText(info)} ETA ${formatDuration(this.eta(info.step))}`;
    const columns = this.stream.columns || 100; // 0 when the terminal does not say
    const barWidth = Math.max(10, Math.min(30, columns - text.length - 3));
    const frac = this.total > 0 ? Math.min(1, info.step / this.total) : 1;
    const filled = Math.round(frac * barWidth);
    return `[${'█'.repeat(filled)}${'░'.repeat(barWidth - filled)}]${text}`.slice(0, Math.max(20, columns - 1));
  }

  private draw(line: string): void {
    this.line = line;
    this.stream.write(`\r${line}\x1b[K`);
  }

  /** Print a message on its own line (above the bar on a terminal). */
  log(message: string): void {
    if (this.tty && this.line) this.stream.write(`\r\x1b[K${message}\n${this.line}`);
    else this.stream.write(`${message}\n`);
  }

  /** End the bar's line (terminal); nothing otherwise. */
  done(): void {
    if (this.tty && this.line) this.stream.write('\n');
    this.line = '';
  }
}
