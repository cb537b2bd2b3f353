/**
 * The energy a training run used, and its carbon: {@link EnergyMeter} measures what the machine
 * lets it and says how.
 *
 * - **CPU, measured (`'rapl'`)**: Intel RAPL (also AMD's, on Linux ≥ 5.8) counters in
 *   `/sys/class/powercap/intel-rapl:N/energy_uj`, one per package, plus the package's `dram`
 *   sub-zone (outside the package's count); the sub-zones `core`/`uncore` are inside it and are
 *   not added again. A counter wraps at `max_energy_range_uj`: the meter reads them every
 *   `sampleMs` (a wrap takes minutes at any real power draw) and adds the range back on a wrap.
 *   RAPL counts the whole package, every process on it, not only this one. Since Linux 5.10
 *   (CVE-2020-8694) `energy_uj` is readable by root only; without it the meter falls back to
 * - **CPU, modelled (`'cpu-time model'`)**: this process's CPU time (`process.cpuUsage()`, user +
 *   system, all threads) × `wattsPerCore`, the draw of one busy core. The default, 7.5 W, is a
 *   server core's share of its CPU's thermal design power, as the Green Algorithms calculator
 *   estimates it (Lannelongue, Grealey & Inouye, "Green Algorithms: Quantifying the Carbon
 *   Footprint of Computation", Advanced Science 2021): an Intel Xeon Gold 6148 is 150 W TDP over
 *   20 cores. TDP is a sustained-load figure, so this is an estimate for a busy core, not a measurement.
 * - **GPU**: NVML's board power through `nvidia-smi --query-gpu=power.draw -lms N`, integrated
 *   over the run (trapezoids) for every GPU listed. Where there is no `nvidia-smi` (nor
 *   libnvidia-ml) the GPU is reported as not measured, with the reason; nothing is estimated.
 *
 * Carbon is `kWh × gridIntensity`; the default, 480 gCO2e/kWh, is the world's average
 * electricity in 2023 (Ember, "Global Electricity Review 2024"). Set your grid's figure.
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { checkKeys, checkNumber, show } from '../tensor/validate.js';

/** Watts per busy core in the CPU-time model (Green Algorithms' TDP per core, Xeon Gold 6148: 150 W / 20 cores). */
export const DEFAULT_WATTS_PER_CORE = 7.5;
/** Grams of CO2-equivalent per kWh: the world's average electricity in 2023 (Ember, Global Electricity Review 2024). */
export const DEFAULT_GRID_INTENSITY = 480;

/** Options of {@link EnergyMeter}. */
export interface EnergyMeterOptions {
  /** Watts drawn by one busy core, for the CPU-time model (default {@link DEFAULT_WATTS_PER_CORE}). */
  wattsPerCore?: number;
  /** gCO2e per kWh of the grid (default {@link DEFAULT_GRID_INTENSITY}). */
  gridIntensity?: number;
  /** The powercap folder holding the `intel-rapl:*` zones (default `/sys/class/powercap`; tests point it at a fake one). */
  powercapRoot?: string;
  /** The `nvidia-smi` to run: a path, or null not to measure GPUs (default: `nvidia-smi` on PATH, if any). */
  nvidiaSmi?: string | null;
  /** Milliseconds between RAPL reads and GPU power samples (default 1000). */
  sampleMs?: number;
}

/** One RAPL zone counted. */
export interface RaplZone {
  /** Its folder name (`intel-rapl:0`) and its `name` file (`package-0`, `dram`). */
  zone: string;
  name: string;
  joules: number;
  /** Times the counter wrapped during the run. */
  wraps: number;
}

/** The GPU part of an {@link EnergyReport}. */
export type GpuEnergy = { measured: true; joules: number; method: 'nvidia-smi power.draw'; devices: number; samples: number } | { measured: false; reason: string };

/** What {@link EnergyMeter.stop} returns (what `kiln train` writes in metrics.json as `energy`). */
export interface EnergyReport {
  /** CPU (RAPL, or the model) plus GPU where measured. */
  joules: number;
  kWh: number;
  gCO2e: number;
  /** How the CPU's part was found. */
  method: 'rapl' | 'cpu-time model';
  /** This process's CPU time (user + system) during the run. */
  cpuSeconds: number;
  wallSeconds: number;
  /** The CPU-time model's figure (always computed, for comparison with RAPL). */
  cpuModelJoules: number;
  wattsPerCore: number;
  gridIntensity: number;
  rapl: { readable: true; joules: number; zones: RaplZone[] } | { readable: false; reason: string };
  gpu: GpuEnergy;
}

const OP = 'EnergyMeter';
const KEYS = ['wattsPerCore', 'gridIntensity', 'powercapRoot', 'nvidiaSmi', 'sampleMs'];

interface ZoneState {
  zone: string;
  name: string;
  path: string;
  max: number;
  last: number;
  total: number;
  wraps: number;
}

function errno(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ENOENT') return 'no such file';
  return (e as Error)?.message ?? String(e);
}

function readMicrojoules(path: string): number {
  const text = readFileSync(path, 'utf8').trim();
  if (!/^\d+$/.test(text)) throw new Error(`'${text.slice(0, 40)}' is not a counter`);
  return Number(text);
}

/**
 * The RAPL zones under `root` to count (packages and their dram sub-zones), each read once; or
 * why there are none to read.
 */
function openRapl(root: string): { zones: ZoneState[] } | { reason: string } {
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch (e) {
    return { reason: `no RAPL counters: cannot read ${root} (${errno(e)}): not Linux, a virtual machine, or the powercap driver is not loaded` };
  }
  const packages = entries.filter((e) => /^intel-rapl:\d+$/.test(e)).sort();
  if (!packages.length) return { reason: `no RAPL counters: ${root} has no intel-rapl:* zones (a virtual machine, or a CPU without RAPL)` };
  const picked: { zone: string; dir: string }[] = [];
  for (const p of packages) {
    picked.push({ zone: p, dir: join(root, p) });
    // dram sits beside the package's count, not in it; core and uncore are in it
    for (const sub of entries.filter((e) => e.startsWith(`${p}:`)).sort()) {
      let name = '';
      try {
        name = readFileSync(join(root, sub, 'name'), 'utf8').trim();
      } catch {
        continue;
      }
      if (name === 'dram') picked.push({ zone: sub, dir: join(root, sub) });
    }
  }
  const zones: ZoneState[] = [];
  for (const { zone, dir } of picked) {
    const path = join(dir, 'energy_uj');
    let last: number;
    let max: number;
    try {
      last = readMicrojoules(path);
    } catch (e) {
      const why = errno(e);
      return {
        reason:
          why === 'permission denied'
            ? `RAPL counters not readable: ${path}: permission denied (since Linux 5.10, CVE-2020-8694, energy_uj is readable by root only; 'sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj' allows it)`
            : `RAPL counter ${path} cannot be read: ${why}`,
      };
    }
    try {
      max = readMicrojoules(join(dir, 'max_energy_range_uj'));
    } catch (e) {
      return { reason: `RAPL counter range ${join(dir, 'max_energy_range_uj')} cannot be read (${errno(e)}), so a wrap could not be told from a reset` };
    }
    let name = zone;
    try {
      name = readFileSync(join(dir, 'name'), 'utf8').trim() || zone;
    } catch {
      // the folder's name stands in
    }
    zones.push({ zone, name, path, max, last, total: 0, wraps: 0 });
  }
  return { zones };
}

/** `nvidia-smi` on PATH, or null. */
function findOnPath(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

const NVML_LIBS = ['/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1', '/usr/lib64/libnvidia-ml.so.1', '/usr/lib/aarch64-linux-gnu/libnvidia-ml.so.1', '/usr/lib/wsl/lib/libnvidia-ml.so.1'];

/** GPU power sampled from a running `nvidia-smi -lms`, integrated by trapezoids per device. */
class GpuSampler {
  private child: ChildProcess | null;
  private buffer = '';
  private readonly lastByDevice = new Map<number, { t: number; watts: number }>();
  joules = 0;
  samples = 0;
  error: string | null = null;

  constructor(cmd: string, sampleMs: number) {
    this.child = spawn(cmd, ['--query-gpu=index,power.draw', '--format=csv,noheader,nounits', `-lms=${sampleMs}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.on('error', (e) => (this.error = `${cmd} failed to start: ${e.message}`));
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => this.take(d));
    this.child.stderr!.resume();
    this.child.unref();
    (this.child.stdout as unknown as { unref?: () => void }).unref?.();
    (this.child.stderr as unknown as { unref?: () => void }).unref?.();
  }

  private take(chunk: string): void {
    this.buffer += chunk;
    const lines = this.buffer.split('\n');
    this.buffer = lines.pop()!;
    const t = performance.now();
    for (const line of lines) {
      const m = /^\s*(\d+)\s*,\s*([\d.]+)\s*$/.exec(line);
      if (!m) continue; // '[N/A]' where the board does not report power
      const device = Number(m[1]);
      const watts = Number(m[2]);
      const prev = this.lastByDevice.get(device);
      if (prev) this.joules += ((prev.watts + watts) / 2) * ((t - prev.t) / 1000);
      this.lastByDevice.set(device, { t, watts });
      this.samples++;
    }
  }

  /** Stop sampling; the last power of each device is held to now. */
  stop(): GpuEnergy {
    const t = performance.now();
    for (const { t: t0, watts } of this.lastByDevice.values()) this.joules += watts * ((t - t0) / 1000);
    this.lastByDevice.forEach((v, k) => this.lastByDevice.set(k, { t, watts: v.watts }));
    this.child?.kill();
    this.child = null;
    if (this.error) return { measured: false, reason: this.error };
    if (this.samples === 0) return { measured: false, reason: 'nvidia-smi gave no power.draw readings during the run (a board without power readings reports [N/A], or the run was shorter than one sample)' };
    return { measured: true, joules: this.joules, method: 'nvidia-smi power.draw', devices: new Set([...this.lastByDevice.keys()]).size, samples: this.samples };
  }
}

/**
 * Measures the energy between {@link EnergyMeter.start} and {@link EnergyMeter.stop}: RAPL where
 * the counters can be read, else this process's CPU time × watts per core; GPUs through
 * nvidia-smi where there is one; and the carbon at the grid's intensity (see the module comment
 * for the defaults and their sources).
 *
 * @example
 * const meter = new EnergyMeter({ gridIntensity: 250 }).start();
 * await train(options);
 * const e = meter.stop(); // { joules, kWh, gCO2e, method: 'rapl' | 'cpu-time model', cpuSeconds, … }
 */
export class EnergyMeter {
  readonly wattsPerCore: number;
  readonly gridIntensity: number;
  readonly powercapRoot: string;
  readonly sampleMs: number;
  private readonly nvidiaSmi: string | null | undefined;
  private zones: ZoneState[] | null = null;
  private raplReason = '';
  private gpu: GpuSampler | null = null;
  private gpuReason = '';
  private cpu0: NodeJS.CpuUsage | null = null;
  private t0 = 0;
  private timer: NodeJS.Timeout | null = null;
  private report: EnergyReport | null = null;

  constructor(opts: EnergyMeterOptions = {}) {
    checkKeys(OP, opts, KEYS);
    const o = opts ?? {};
    this.wattsPerCore = o.wattsPerCore === undefined ? DEFAULT_WATTS_PER_CORE : checkNumber(OP, 'wattsPerCore', o.wattsPerCore, { min: 0 });
    this.gridIntensity = o.gridIntensity === undefined ? DEFAULT_GRID_INTENSITY : checkNumber(OP, 'gridIntensity', o.gridIntensity, { min: 0 });
    this.sampleMs = o.sampleMs === undefined ? 1000 : checkNumber(OP, 'sampleMs', o.sampleMs, { integer: true, min: 10, max: 3_600_000 });
    if (o.powercapRoot !== undefined && (typeof o.powercapRoot !== 'string' || o.powercapRoot === '')) throw new Error(`${OP}: powercapRoot must be a folder path, got ${show(o.powercapRoot)}`);
    this.powercapRoot = o.powercapRoot ?? '/sys/class/powercap';
    if (o.nvidiaSmi !== undefined && o.nvidiaSmi !== null && (typeof o.nvidiaSmi !== 'string' || o.nvidiaSmi === '')) throw new Error(`${OP}: nvidiaSmi must be a path or null, got ${show(o.nvidiaSmi)}`);
    this.nvidiaSmi = o.nvidiaSmi;
  }

  /** Whether {@link EnergyMeter.start} has run and {@link EnergyMeter.stop} has not. */
  get running(): boolean {
    return this.cpu0 !== null && this.report === null;
  }

  /** Start measuring: read the counters, start the GPU sampler; returns this. */
  start(): this {
    if (this.cpu0) throw new Error(`${OP}.start: the meter was already started (make a new one per run)`);
    this.t0 = performance.now();
    this.cpu0 = process.cpuUsage();
    const rapl = openRapl(this.powercapRoot);
    if ('zones' in rapl) this.zones = rapl.zones;
    else this.raplReason = rapl.reason;
    let smi: string | null = null;
    if (this.nvidiaSmi === null) this.gpuReason = 'not measured: GPU metering was turned off (nvidiaSmi: null)';
    else if (this.nvidiaSmi !== undefined) {
      if (existsSync(this.nvidiaSmi)) smi = this.nvidiaSmi;
      else this.gpuReason = `not measured: ${this.nvidiaSmi} does not exist`;
    } else {
      smi = findOnPath('nvidia-smi');
      if (!smi) {
        const lib = NVML_LIBS.find((p) => existsSync(p));
        this.gpuReason = lib
          ? `not measured: ${lib} is present but nvidia-smi is not on PATH (kiln reads NVML through nvidia-smi)`
          : 'not measured: no NVIDIA driver here (neither nvidia-smi on PATH nor libnvidia-ml)';
      }
    }
    if (smi) this.gpu = new GpuSampler(smi, this.sampleMs);
    if (this.zones) {
      this.timer = setInterval(() => this.sample(), this.sampleMs);
      this.timer.unref();
    }
    return this;
  }

  /**
   * Read the RAPL counters now, adding what each advanced since the last read (a wrap adds the
   * counter's range back). The meter calls this every `sampleMs` by itself; a counter read fails
   * mid-run only when the zone has gone, and the run's RAPL figure is then dropped for the model's.
   */
  sample(): void {
    if (!this.zones) return;
    try {
      for (const z of this.zones) {
        const now = readMicrojoules(z.path);
        if (now >= z.last) z.total += now - z.last;
        else {
          // E wrapped at max: (max − last) + now
          z.total += z.max - z.last + now;
          z.wraps++;
        }
        z.last = now;
      }
    } catch (e) {
      this.raplReason = `a RAPL counter could not be read during the run (${errno(e)})`;
      this.zones = null;
    }
  }

  /** Stop measuring and return the report (the same report on a second call). */
  stop(): EnergyReport {
    if (this.report) return this.report;
    if (!this.cpu0) throw new Error(`${OP}.stop: the meter was never started (call start() first)`);
    this.sample();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const cpu = process.cpuUsage(this.cpu0);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    const wallSeconds = (performance.now() - this.t0) / 1000;
    const cpuModelJoules = cpuSeconds * this.wattsPerCore;
    const rapl: EnergyReport['rapl'] = this.zones
      ? { readable: true, joules: this.zones.reduce((a, z) => a + z.total, 0) / 1e6, zones: this.zones.map((z) => ({ zone: z.zone, name: z.name, joules: z.total / 1e6, wraps: z.wraps })) }
      : { readable: false, reason: this.raplReason };
    const gpu: GpuEnergy = this.gpu ? this.gpu.stop() : { measured: false, reason: this.gpuReason };
    const cpuJoules = rapl.readable ? rapl.joules : cpuModelJoules;
    const joules = cpuJoules + (gpu.measured ? gpu.joules : 0);
    const kWh = joules / 3.6e6;
    this.report = {
      joules,
      kWh,
      gCO2e: kWh * this.gridIntensity,
      method: rapl.readable ? 'rapl' : 'cpu-time model',
      cpuSeconds,
      wallSeconds,
      cpuModelJoules,
      wattsPerCore: this.wattsPerCore,
      gridIntensity: this.gridIntensity,
      rapl,
      gpu,
    };
    return this.report;
  }
}

/** An energy report in one line: `12.3 J (3.42e-6 kWh, 0.0016 gCO2e at 480 g/kWh), cpu-time model: 1.64 CPU s × 7.5 W; GPU not measured`. */
export function formatEnergy(e: EnergyReport): string {
  if (e === null || typeof e !== 'object' || typeof e.joules !== 'number') throw new Error(`formatEnergy: expected an EnergyReport, got ${show(e)}`);
  const g = (x: number): string => (x === 0 ? '0' : Math.abs(x) >= 0.01 && Math.abs(x) < 1e6 ? x.toPrecision(3) : x.toExponential(2));
  const how = e.method === 'rapl' ? `RAPL (${e.cpuSeconds.toFixed(1)} CPU s)` : `cpu-time model: ${e.cpuSeconds.toFixed(1)} CPU s × ${e.wattsPerCore} W`;
  const gpu = e.gpu.measured ? `GPU ${g(e.gpu.joules)} J (nvidia-smi)` : 'GPU not measured';
  return `${g(e.joules)} J (${g(e.kWh)} kWh, ${g(e.gCO2e)} gCO2e at ${e.gridIntensity} g/kWh), ${how}; ${gpu}`;
}
