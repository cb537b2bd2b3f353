/**
 * The backend registry and the Backend contract's plumbing: what backends() reports without
 * creating anything, synchronous and asynchronous creation (an awaited init), unavailable
 * backends (a probe's reason, a create that throws, a misnamed backend), the default backend,
 * setBackend/useBackend/ready, flush/sync, backends without a dtype, and the op table.
 *
 * Registering changes the registry of this file only (vitest isolates test files). Backends are
 * registered inside tests, after describeBackends has enumerated them, so the suite itself still
 * runs on the real backends only; every registration that could change the default is undone.
 */
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  AsyncRefBackend,
  KERNEL_FAMILY,
  KERNEL_NAMES,
  PRIORITY,
  RECORDED_OPS,
  RefBackend,
  backendSync,
  backends,
  cast,
  defaultBackendName,
  flush,
  getBackend,
  hasGradRule,
  ready,
  registerBackend,
  setBackend,
  sync,
  tensor,
  tidy,
  useBackend,
  zeros,
  type Backend,
} from '../src/index.js';
import { describeBackends, stores, values } from './harness.js';

describe('backend registry', () => {
  it('lists ref as available with its priority, most preferred first', () => {
    const list = backends();
    const ref = list.find((b) => b.name === 'ref');
    expect(ref).toEqual({ name: 'ref', available: true, reason: 'available', priority: PRIORITY.ref, created: expect.any(Boolean) });
    for (let i = 1; i < list.length; i++) expect(list[i - 1]!.priority).toBeGreaterThanOrEqual(list[i]!.priority);
    expect(PRIORITY.ref).toBeLessThan(PRIORITY.cpu);
    expect(PRIORITY.cpu).toBeLessThan(PRIORITY.webgpu);
    expect(PRIORITY.webgpu).toBeLessThan(PRIORITY.cuda);
  });

  it('the default is the most preferred available backend that can be created at once (never a test backend)', async () => {
    const firstAvailable = backends().find((b) => b.available && b.priority >= 0)!;
    expect(defaultBackendName()).toBe(firstAvailable.name);
    expect((await getBackend()).name).toBe(defaultBackendName());
    expect(backendSync().name).toBe(defaultBackendName());
    tidy(() => expect(zeros([1]).backend.name).toBe(defaultBackendName()));
    expect(defaultBackendName()).not.toBe('async-ref');
  });

  it('getBackend resolves one instance per name; an unknown name rejects naming it', async () => {
    const a = await getBackend('ref');
    expect(a).toBeInstanceOf(RefBackend);
    expect(a.name).toBe('ref');
    expect(await getBackend('ref')).toBe(a);
    expect(backendSync('ref')).toBe(a);
    await expect(getBackend('nope')).rejects.toThrow(/backend 'nope' is not registered/);
    expect(() => backendSync('nope')).toThrow(/backend 'nope' is not registered/);
  });

  it('backends() probes without creating: a probe that says no makes the backend unavailable, with its reason', async () => {
    let created = 0;
    registerBackend({
      name: 'nogpu',
      priority: 999,
      probe: () => 'no GPU adapter found',
      create: () => {
        created++;
        return new RefBackend('nogpu');
      },
    });
    const info = backends().find((b) => b.name === 'nogpu')!;
    expect(info).toEqual({ name: 'nogpu', available: false, reason: 'no GPU adapter found', priority: 999, created: false });
    expect(defaultBackendName()).not.toBe('nogpu');
    expect(() => setBackend('nogpu')).toThrow(/backend 'nogpu' is not available: no GPU adapter found/);
    await expect(getBackend('nogpu')).rejects.toThrow(/no GPU adapter found/);
    expect(created).toBe(0);
  });

  it('a backend whose create() throws is unavailable with the reason, never the default, and setBackend throws it', async () => {
    const before = defaultBackendName();
    registerBackend({
      name: 'broken',
      priority: 1000,
      create: () => {
        throw new Error('driver exploded');
      },
    });
    expect(backends().find((b) => b.name === 'broken')!.available).toBe(true); // as far as a probe can tell
    expect(defaultBackendName()).toBe(before); // choosing the default tried it, and moved on
    const info = backends().find((b) => b.name === 'broken')!;
    expect(info.available).toBe(false);
    expect(info.reason).toMatch(/failed to load: driver exploded/);
    expect(() => setBackend('broken')).toThrow(/broken.*driver exploded/);
    await expect(getBackend('broken')).rejects.toThrow(/broken.*driver exploded/);
    expect(defaultBackendName()).toBe(before);
  });

  it('a create() that returns a backend under another name is unavailable, and the reason names it', () => {
    registerBackend({ name: 'misnamed', priority: -3, create: () => new RefBackend() });
    expect(() => backendSync('misnamed')).toThrow(/the entry 'misnamed' created a backend named 'ref'/);
    expect(() => registerBackend({ name: 'both', priority: 0, create: () => new RefBackend('both'), load: async () => new RefBackend('both') })).toThrow(
      /registerBackend: entry 'both' must give exactly one of create and load/,
    );
  });

  it('create() runs lazily and once, and again after re-registering', () => {
    let calls = 0;
    const entry = {
      name: 'counted',
      priority: -5,
      create: (): Backend => {
        calls++;
        return new RefBackend('counted');
      },
    };
    registerBackend(entry);
    backends();
    expect(calls).toBe(0);
    const a = backendSync('counted');
    expect(backendSync('counted')).toBe(a);
    expect(calls).toBe(1);
    registerBackend(entry); // replacing forgets the instance
    expect(backendSync('counted')).not.toBe(a);
    expect(calls).toBe(2);
  });

  it('an asynchronous backend is loaded by an awaited useBackend, its init() awaited; before that, using it is a clear error', async () => {
    const before = defaultBackendName();
    const events: string[] = [];
    class Slow extends AsyncRefBackend {
      override async init(): Promise<void> {
        events.push('init start');
        await new Promise((r) => setTimeout(r, 5));
        events.push('init done');
      }
    }
    registerBackend({
      name: 'slow',
      priority: 5000,
      load: async () => {
        events.push('load');
        return new Slow('slow');
      },
    });
    try {
      // the most preferred, but it cannot be created at once: the default stays
      expect(defaultBackendName()).toBe(before);
      expect(() => backendSync('slow')).toThrow(/backend 'slow' loads asynchronously: await useBackend\('slow'\)/);
      expect(() => zeros([2], { backend: 'slow' })).toThrow(/^zeros: backend 'slow' loads asynchronously/);
      expect(events).toEqual([]);
      const [a, b] = await Promise.all([getBackend('slow'), getBackend('slow')]); // one load for both
      expect(a).toBe(b);
      expect(events).toEqual(['load', 'init start', 'init done']);
      expect(defaultBackendName()).toBe(before);
      // ready(): the most preferred backend that loads becomes the default
      expect(await ready()).toBe('slow');
      expect(defaultBackendName()).toBe('slow');
      const t = zeros([2]);
      expect(t.backend.name).toBe('slow');
      expect(await values(t)).toEqual([0, 0]);
      t.dispose();
      await useBackend(before);
      expect(defaultBackendName()).toBe(before);
    } finally {
      setBackend(null);
      registerBackend({ name: 'slow', priority: -10, create: () => new RefBackend('slow') });
    }
  });

  it('a more preferred available backend becomes the default; making it unavailable restores the previous default', () => {
    const before = defaultBackendName();
    const top = Math.max(...backends().map((b) => b.priority)) + 1;
    registerBackend({ name: 'preferred', priority: top, create: () => new RefBackend('preferred') });
    expect(defaultBackendName()).toBe('preferred');
    tidy(() => expect(zeros([1]).backend.name).toBe('preferred'));
    registerBackend({ name: 'preferred', priority: top, probe: () => 'gone', create: () => new RefBackend('preferred') });
    expect(defaultBackendName()).toBe(before);
  });

  it('setBackend changes the default for new tensors; an explicit backend option still wins; null restores the automatic choice', async () => {
    const before = defaultBackendName();
    registerBackend({ name: 'ref2', priority: -1, create: () => new RefBackend('ref2') });
    expect(defaultBackendName()).toBe(before); // negative priority: never chosen automatically
    try {
      setBackend('ref2');
      expect(defaultBackendName()).toBe('ref2');
      const t = tidy(() => tensor([1, 2]));
      expect(t.backend.name).toBe('ref2');
      expect(await values(t)).toEqual([1, 2]);
      t.dispose();
      tidy(() => {
        expect(zeros([1], { backend: 'ref' }).backend.name).toBe('ref');
      });
      expect(() => setBackend('nope')).toThrow(/'nope'/);
      expect(defaultBackendName()).toBe('ref2'); // a failed setBackend changes nothing
    } finally {
      setBackend(null);
    }
    expect(defaultBackendName()).toBe(before);
  });

  it('a backend without f64 refuses f64 tensors with an error naming the op and what it stores; nothing runs f64 as f32', async () => {
    registerBackend({ name: 'nof64', priority: -2, load: async () => new AsyncRefBackend('nof64', ['f32', 'i32', 'bf16', 'f16', 'bool']) });
    await getBackend('nof64');
    expect(() => zeros([2], { backend: 'nof64', dtype: 'f64' })).toThrow(
      /^zeros: backend 'nof64' cannot store f64 tensors \(it stores f32, i32, bf16, f16, bool\); cast to one of those first/,
    );
    expect(() => tensor(new Float64Array(2), { backend: 'nof64' })).toThrow(/^tensor: backend 'nof64' cannot store f64 tensors/);
    const x = zeros([2], { backend: 'nof64' });
    expect(() => cast(x, 'f64')).toThrow(/^cast: backend 'nof64' cannot store f64 tensors/);
    const d = zeros([2], { backend: 'ref', dtype: 'f64' });
    expect(() => d.to('nof64')).toThrow(/^to: backend 'nof64' cannot store f64 tensors/);
    expect(stores('nof64', 'f64')).toBe(false);
    expect(stores('nof64', 'f32')).toBe(true);
    x.dispose();
    d.dispose();
  });
});

describeBackends('registered backend', (backend) => {
  it('is listed available, loads, and makes tensors that report it', async () => {
    const info = backends().find((b) => b.name === backend)!;
    expect(info.available).toBe(true);
    const b = await getBackend(backend);
    expect(b.name).toBe(backend);
    const t = zeros([2], { backend });
    expect(t.backend).toBe(b);
    t.dispose();
  });

  it('flush() submits and sync() waits for queued work; both are safe with nothing queued', async () => {
    const b = await getBackend(backend);
    const t = tidy(() => zeros([3], { backend }).add(2));
    b.flush();
    flush(backend);
    flush();
    await b.sync();
    await sync(backend);
    await sync();
    expect(await values(t)).toEqual([2, 2, 2]);
    t.dispose();
  });

  it('write is ordered after the kernels queued before it, and takes the data at the call', async () => {
    const b = await getBackend(backend);
    const s = b.alloc('f32', 3);
    b.fill({ out: s, value: 7 });
    const data = new Float32Array([1, 2, 3]);
    b.write(s, data);
    data.fill(9); // the caller may reuse its array at once
    const out = b.alloc('f32', 3);
    b.unary({ op: 'neg', x: s, out });
    expect(Array.from(await b.read(out))).toEqual([-1, -2, -3]);
    b.free(s); // freeing what queued work read is safe
    b.free(out);
    await b.sync();
  });
});

describe('the op table', () => {
  it('every op recorded on the tape has a backward rule', () => {
    const missing = RECORDED_OPS.filter((op) => !hasGradRule(op));
    expect(missing).toEqual([]);
    expect(RECORDED_OPS.length).toBeGreaterThan(40);
  });

  it('every kernel has a family, and every backend implements every kernel', async () => {
    for (const k of KERNEL_NAMES) expect(KERNEL_FAMILY[k]).toBeTruthy();
    for (const info of backends().filter((i) => i.available)) {
      const b = await getBackend(info.name);
      const missing = KERNEL_NAMES.filter((k) => typeof (b as unknown as Record<string, unknown>)[k] !== 'function');
      expect(missing, info.name).toEqual([]);
    }
  });

  it('the generated files are what kernels/ops.mjs gives (npm run gen)', () => {
    const r = spawnSync(process.execPath, [new URL('../scripts/gen-ops.mjs', import.meta.url).pathname, '--check'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // the table's kernels are exactly the generated interface's
    const gen = readFileSync(new URL('../src/backend/ops.gen.ts', import.meta.url), 'utf8');
    for (const k of KERNEL_NAMES) expect(gen).toContain(`  ${k}(a: `);
  });
});
