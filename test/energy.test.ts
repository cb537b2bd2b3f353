/**
 * The energy meter against a fake powercap folder: packages and their dram sub-zone counted, core
 * sub-zones not; a counter that wraps at max_energy_range_uj; unreadable counters fall back to
 * the CPU-time model with the reason; GPU power from a stand-in nvidia-smi (a shell script that
 * prints what `--query-gpu=index,power.draw` prints); and `kiln train` writing `energy` to metrics.json.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EnergyMeter, formatEnergy } from '../src/train/energy.js';
import { main } from '../src/cli/main.js';

const root = mkdtempSync(join(tmpdir(), 'kiln-energy-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function zone(base: string, dir: string, name: string, uj: number, max?: number): string {
  mkdirSync(join(base, dir), { recursive: true });
  writeFileSync(join(base, dir, 'name'), `${name}\n`);
  writeFileSync(join(base, dir, 'energy_uj'), `${uj}\n`);
  if (max !== undefined) writeFileSync(join(base, dir, 'max_energy_range_uj'), `${max}\n`);
  return join(base, dir, 'energy_uj');
}

describe('EnergyMeter', () => {
  it('sums package and dram RAPL zones, not core, and adds the range back on a wrap', () => {
    const base = join(root, 'rapl');
    const MAX = 262_143_328_850;
    const p0 = zone(base, 'intel-rapl:0', 'package-0', MAX - 1_000_000, MAX);
    const core = zone(base, 'intel-rapl:0:0', 'core', 5, MAX);
    const dram = zone(base, 'intel-rapl:0:1', 'dram', 100, 65_000_000);
    const p1 = zone(base, 'intel-rapl:1', 'package-1', 7_000_000, MAX);
    const meter = new EnergyMeter({ powercapRoot: base, nvidiaSmi: null, sampleMs: 3_600_000, gridIntensity: 400 }).start();
    // package-0 wraps: 1 J to the top, then 2.5 J after it
    writeFileSync(p0, `${2_500_000}\n`);
    writeFileSync(core, '999999999\n');
    writeFileSync(dram, '64999900\n'); // 64.9998 J
    meter.sample();
    writeFileSync(dram, '400\n'); // wraps: 100 µJ to the top + 400
    writeFileSync(p1, '10000000\n'); // 3 J
    const e = meter.stop();
    expect(e.method).toBe('rapl');
    expect(e.rapl.readable).toBe(true);
    if (!e.rapl.readable) return;
    expect(e.rapl.zones.map((z) => [z.zone, z.name, z.wraps])).toEqual([
      ['intel-rapl:0', 'package-0', 1],
      ['intel-rapl:0:1', 'dram', 1],
      ['intel-rapl:1', 'package-1', 0],
    ]);
    expect(e.rapl.zones[0]!.joules).toBeCloseTo(3.5, 9);
    expect(e.rapl.zones[1]!.joules).toBeCloseTo(64.9998 + 0.0005, 9);
    expect(e.joules).toBeCloseTo(3.5 + 65.0003 + 3, 9);
    expect(e.kWh).toBeCloseTo(e.joules / 3.6e6, 15);
    expect(e.gCO2e).toBeCloseTo(e.kWh * 400, 15);
    expect(e.gpu).toEqual({ measured: false, reason: 'not measured: GPU metering was turned off (nvidiaSmi: null)' });
    expect(meter.stop()).toBe(e);
    expect(formatEnergy(e)).toMatch(/^71\.5 J \(1\.99e-5 kWh, 7\.94e-3 gCO2e at 400 g\/kWh\), RAPL/);
  });

  it('falls back to CPU time × watts per core when the counters cannot be read, saying why', () => {
    const none = new EnergyMeter({ powercapRoot: join(root, 'nothing'), nvidiaSmi: null, wattsPerCore: 10 }).start();
    let x = 0;
    for (let i = 0; i < 2e6; i++) x += Math.sqrt(i);
    const e = none.stop();
    expect(x).toBeGreaterThan(0);
    expect(e.method).toBe('cpu-time model');
    expect(e.rapl).toEqual({ readable: false, reason: expect.stringMatching(/^no RAPL counters: cannot read .*nothing \(no such file\)/) });
    expect(e.cpuSeconds).toBeGreaterThan(0);
    expect(e.joules).toBeCloseTo(e.cpuSeconds * 10, 12);
    expect(e.joules).toBe(e.cpuModelJoules);
    // a counter that is not a file (a read error of another kind)
    const odd = join(root, 'odd');
    mkdirSync(join(odd, 'intel-rapl:0', 'energy_uj'), { recursive: true });
    const r = new EnergyMeter({ powercapRoot: odd, nvidiaSmi: null }).start().stop();
    expect(r.rapl.readable ? '' : r.rapl.reason).toMatch(/RAPL counter .*energy_uj cannot be read/);
  });

  it.skipIf(process.getuid?.() === 0)('names a permission error (energy_uj is root-only since Linux 5.10)', () => {
    const base = join(root, 'denied');
    const p = zone(base, 'intel-rapl:0', 'package-0', 1, 100);
    chmodSync(p, 0);
    const e = new EnergyMeter({ powercapRoot: base, nvidiaSmi: null }).start().stop();
    expect(e.method).toBe('cpu-time model');
    expect(e.rapl.readable ? '' : e.rapl.reason).toMatch(/permission denied .*CVE-2020-8694/);
  });

  it('integrates GPU power from nvidia-smi lines, and says when there is none', async () => {
    const smi = join(root, 'fake-nvidia-smi');
    writeFileSync(smi, '#!/bin/sh\necho "0, 100.00"\necho "1, [N/A]"\nsleep 0.3\necho "0, 100.00"\nsleep 30\n');
    chmodSync(smi, 0o755);
    const meter = new EnergyMeter({ powercapRoot: join(root, 'nothing'), nvidiaSmi: smi, sampleMs: 100 });
    meter.start();
    const t0 = performance.now();
    // wait for the two readings (no time limit asserted: the test's timeout bounds it)
    while ((meter as unknown as { gpu: { samples: number } }).gpu.samples < 2) await new Promise((r) => setTimeout(r, 20));
    const e = meter.stop();
    const wall = (performance.now() - t0) / 1000;
    expect(e.gpu.measured).toBe(true);
    if (!e.gpu.measured) return;
    expect(e.gpu.devices).toBe(1);
    expect(e.gpu.samples).toBe(2);
    // 100 W from the first reading to the stop: at least the 0.3 s between the readings
    expect(e.gpu.joules).toBeGreaterThanOrEqual(100 * 0.25);
    expect(e.gpu.joules).toBeLessThanOrEqual(100 * (wall + 0.1));
    expect(e.joules).toBeCloseTo(e.cpuModelJoules + e.gpu.joules, 9);
    const missing = new EnergyMeter({ nvidiaSmi: join(root, 'no-such-smi') }).start().stop();
    expect(missing.gpu).toEqual({ measured: false, reason: `not measured: ${join(root, 'no-such-smi')} does not exist` });
  });
});

describe('kiln train', () => {
  it('writes energy to metrics.json and prints it in the summary', async () => {
    const corpus = join(root, 'corpus.txt');
    writeFileSync(corpus, `${Array.from({ length: 30 }, (_, i) => `the cat ${i % 3 ? 'sees' : 'likes'} the red house. a dog finds an open door ${i}.`).join('\n\n')}\n`);
    const out = join(root, 'run');
    let stdout = '';
    let stderr = '';
    const io = { stdout: { write: (x: string) => (stdout += x) }, stderr: { write: (x: string) => (stderr += x) } };
    const code = await main(['train', '--data', corpus, '--config', 'micro', '--backend', 'ref', '--steps', '3', '--sample-tokens', '2', '--out', out, '--grid-intensity', '100', '--watts-per-core', '5'], io);
    expect(code, stderr).toBe(0);
    const m = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as { energy: Record<string, unknown> & { rapl: { readable: boolean } } };
    const e = m.energy;
    console.log(`[energy] kiln train micro, 3 steps: ${stdout.split('\n').find((l) => l.includes('energy'))}`);
    expect(['rapl', 'cpu-time model']).toContain(e.method);
    expect(e.gridIntensity).toBe(100);
    expect(e.wattsPerCore).toBe(5);
    expect(e.cpuSeconds as number).toBeGreaterThan(0);
    expect(e.joules as number).toBeGreaterThan(0);
    expect(e.kWh).toBeCloseTo((e.joules as number) / 3.6e6, 15);
    expect(e.gCO2e).toBeCloseTo((e.kWh as number) * 100, 15);
    if (!e.rapl.readable) expect(e.joules).toBeCloseTo((e.cpuSeconds as number) * 5, 9);
    expect(stdout).toMatch(/\n {2}energy {11}\S+ J \(.* kWh, .* gCO2e at 100 g\/kWh\), (RAPL|cpu-time model)/);
  }, 60_000);
});
