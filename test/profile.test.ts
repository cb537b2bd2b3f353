/**
 * profileKernels: every kernel call of a backend timed until stop(), which puts the backend's
 * kernels back exactly as they were; one profile per backend at a time.
 */
import { expect, it } from 'vitest';
import { backendSync, matmul, profileKernels, randn, tidy } from '../src/index.js';
import { describeBackends } from './harness.js';

describeBackends('profileKernels', (backend) => {
  it('counts and times the kernels a computation runs, slowest first, and restores the backend', () => {
    const b = backendSync(backend) as unknown as Record<string, unknown>;
    const before = ['matmul', 'binary', 'fill'].map((k) => [b[k], Object.getOwnPropertyDescriptor(b, k)]);
    const x = randn([8, 8], { backend });
    const p = profileKernels(backend);
    expect(() => profileKernels(backend)).toThrow(`profileKernels: backend '${backend}' is already being profiled`);
    tidy(() => {
      matmul(x, x);
      matmul(x, x).add(x);
    });
    const rows = p.stop();
    expect(rows.find((r) => r.kernel === 'matmul')!.calls).toBe(2);
    expect(rows.find((r) => r.kernel === 'binary')!.calls).toBe(1);
    expect(rows.every((r) => r.calls > 0 && r.ms >= 0)).toBe(true);
    for (let i = 1; i < rows.length; i++) expect(rows[i - 1]!.ms).toBeGreaterThanOrEqual(rows[i]!.ms);
    expect(p.stop()).toEqual(rows); // stopping twice changes nothing
    expect(['matmul', 'binary', 'fill'].map((k) => [b[k], Object.getOwnPropertyDescriptor(b, k)])).toEqual(before);
    profileKernels(backend).stop(); // free to profile again
    x.dispose();
  });
});

it('profileKernels refuses an unknown backend', () => {
  expect(() => profileKernels('nonesuch')).toThrow('nonesuch');
});
