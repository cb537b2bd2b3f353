/**
 * The Node side of {@link HostFiles}: node:fs, with atomic writes. Imported by the Node entry
 * point only.
 * @module
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { installHostFiles } from './host.js';
import { writeFileAtomic, writeFileAtomicSync } from './io/atomic.js';

installHostFiles({
  readText: (path) => readFileSync(path, 'utf8'),
  readBytes: (path) => readFileSync(path),
  writeText: (path, text) => writeFileSync(path, text),
  writeAtomic: (path, data) => writeFileAtomic(path, data),
  writeAtomicSync: (path, data) => writeFileAtomicSync(path, data),
});
