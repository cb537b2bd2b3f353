/**
 * Runs before every test file: registers the test-only `async-ref` backend (the reference
 * kernels behind a queue, with no synchronous read) and awaits its set-up, so the parameterised
 * suite runs on it as on any backend. Backends that load asynchronously (webgpu) are awaited
 * too; one that cannot start here is reported unavailable, with why, by the harness (and fails
 * the run when KILN_REQUIRE_BACKENDS names it).
 */
import { asyncRefEntry, backends, getBackend, registerBackend } from '../src/index.js';

registerBackend(asyncRefEntry());
await getBackend('async-ref');
for (const b of backends()) if (b.available && !b.created && b.name !== 'ref') await getBackend(b.name).catch(() => {});
if (process.env.KILN_TEST_NOF64) {
  const { AsyncRefBackend } = await import('../src/index.js');
  registerBackend({ name: 'nof64', priority: -3, load: async () => new AsyncRefBackend('nof64', ['f32', 'i32', 'bf16', 'f16', 'bool']) });
  await getBackend('nof64');
}
