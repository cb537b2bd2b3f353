/**
 * The backend registry: what backends() reports, lazy loading, unavailable backends (load throws
 * or returns { unavailable }), the default backend and setBackend/getBackend.
 *
 * Registering changes the registry of this file only (vitest isolates test files). Backends are
 * registered inside tests, after describeBackends has enumerated them, so the suite itself still
 * runs on the real backends only; every registration that could change the default is undone.
 */
import { describe, expect, it } from 'vitest';
import {
  PRIORITY,
  RefBackend,
  backends,
  defaultBackendName,
  getBackend,
  registerBackend,
  setBackend,
  tensor,
  tidy,
  zeros,
  type Backend,
} from '../src/index.js';
import { describeBackends, values } from './harness.js';

describe('backend registry', () => {
  it('lists ref as available with its priority, most preferred first', () => {
    const list = backends();
    const ref = list.find((b) => b.name === 'ref');
    expect(ref).toEqual({ name: 'ref', available: true, reason: expect.any(String), priority: PRIORITY.ref });
    for (let i = 1; i < list.length; i++) expect(list[i - 1]!.priority).toBeGreaterThanOrEqual(list[i]!.priority);
    expect(PRIORITY.ref).toBeLessThan(PRIORITY.cpu);
    expect(PRIORITY.cpu).toBeLessThan(PRIORITY.webgpu);
    expect(PRIORITY.webgpu).toBeLessThan(PRIORITY.cuda);
  });

  it('the default is the most preferred available backend (ref when it is the only one)', () => {
    const firstAvailable = backends().find((b) => b.available)!;
    expect(defaultBackendName()).toBe(firstAvailable.name);
    if (backends().filter((b) => b.available).length === 1) expect(defaultBackendName()).toBe('ref');
    expect(getBackend().name).toBe(defaultBackendName());
    tidy(() => expect(zeros([1]).backend.name).toBe(defaultBackendName()));
  });

  it('getBackend returns one loaded instance per name; an unknown name throws naming it', () => {
    const a = getBackend('ref');
    expect(a).toBeInstanceOf(RefBackend);
    expect(a.name).toBe('ref');
    expect(getBackend('ref')).toBe(a);
    expect(() => getBackend('nope')).toThrow(Error);
    expect(() => getBackend('nope')).toThrow(/'nope'/);
    expect(() => getBackend('nope')).toThrow(/not available|registered/);
  });

  it('a backend whose load() throws is listed unavailable with the reason, never the default, and setBackend on it throws the reason', () => {
    const before = defaultBackendName();
    registerBackend({
      name: 'broken',
      priority: 1000,
      load: () => {
        throw new Error('driver exploded');
      },
    });
    const info = backends().find((b) => b.name === 'broken')!;
    expect(info.available).toBe(false);
    expect(info.priority).toBe(1000);
    expect(info.reason).toMatch(/driver exploded/);
    expect(backends()[0]!.name).toBe('broken'); // listed first (highest priority) all the same
    expect(defaultBackendName()).toBe(before);
    expect(() => setBackend('broken')).toThrow(/driver exploded/);
    expect(() => getBackend('broken')).toThrow(/broken.*driver exploded/);
    expect(() => zeros([1], { backend: 'broken' })).toThrow(/driver exploded/);
    expect(defaultBackendName()).toBe(before);
  });

  it('a backend whose load() returns { unavailable } is listed with that reason and never chosen', () => {
    const before = defaultBackendName();
    registerBackend({ name: 'nogpu', priority: 999, load: () => ({ unavailable: 'no GPU adapter found' }) });
    const info = backends().find((b) => b.name === 'nogpu')!;
    expect(info).toEqual({ name: 'nogpu', available: false, reason: 'no GPU adapter found', priority: 999 });
    expect(defaultBackendName()).toBe(before);
    expect(() => setBackend('nogpu')).toThrow(/no GPU adapter found/);
    expect(() => getBackend('nogpu')).toThrow(/no GPU adapter found/);
    expect(defaultBackendName()).toBe(before);
  });

  it("a load() that returns a backend under another name is unavailable, and the reason names it", () => {
    const before = defaultBackendName();
    registerBackend({ name: 'misnamed', priority: 998, load: () => new RefBackend() });
    const info = backends().find((b) => b.name === 'misnamed')!;
    expect(info.available).toBe(false);
    expect(info.reason).toMatch(/'ref'/);
    expect(defaultBackendName()).toBe(before);
    expect(() => getBackend('misnamed')).toThrow(/'ref'/);
  });

  it('load() runs lazily and once, and again after re-registering', () => {
    let calls = 0;
    const entry = {
      name: 'counted',
      priority: -5,
      load: (): Backend | { unavailable: string } => {
        calls++;
        return { unavailable: `attempt ${calls}` };
      },
    };
    registerBackend(entry);
    expect(calls).toBe(0);
    backends();
    backends();
    expect(() => getBackend('counted')).toThrow(/attempt 1/);
    expect(calls).toBe(1);
    registerBackend(entry); // replacing forgets the cached result
    expect(backends().find((b) => b.name === 'counted')!.reason).toBe('attempt 2');
    expect(calls).toBe(2);
  });

  it('a more preferred available backend becomes the default; making it unavailable restores the previous default', () => {
    const before = defaultBackendName();
    const top = Math.max(...backends().map((b) => b.priority)) + 1;
    registerBackend({ name: 'preferred', priority: top, load: () => new RefBackend('preferred') });
    expect(defaultBackendName()).toBe('preferred');
    tidy(() => expect(zeros([1]).backend.name).toBe('preferred'));
    registerBackend({ name: 'preferred', priority: top, load: () => ({ unavailable: 'gone' }) });
    expect(defaultBackendName()).toBe(before);
  });

  it('setBackend changes the default for new tensors; an explicit backend option still wins', async () => {
    const before = defaultBackendName();
    registerBackend({ name: 'ref2', priority: -1, load: () => new RefBackend('ref2') });
    expect(defaultBackendName()).toBe(before); // lower priority: not the default
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
      setBackend(before);
    }
    expect(defaultBackendName()).toBe(before);
  });
});

describeBackends('registered backend', (backend) => {
  it('is listed available, loads, and makes tensors that report it', () => {
    const info = backends().find((b) => b.name === backend)!;
    expect(info.available).toBe(true);
    const b = getBackend(backend);
    expect(b.name).toBe(backend);
    const t = zeros([2], { backend });
    expect(t.backend).toBe(b);
    t.dispose();
  });
});
