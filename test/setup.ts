/**
 * Runs before every test file: registers the test-only `async-ref` backend (the reference
 * kernels behind a queue, with no synchronous read) and awaits its set-up, so the parameterised
 * suite runs on it as on any backend.
 */
import { asyncRefEntry, getBackend, registerBackend } from '../src/index.js';

registerBackend(asyncRefEntry());
await getBackend('async-ref');
