#!/usr/bin/env node
// The `kiln` executable. In a checkout with tsx installed (npm install), it runs the TypeScript
// sources directly (always current, no build needed); otherwise it runs the built dist/cli/main.js
// (a published package, where tsx, a development dependency, is absent).
// KILN_CLI=src or KILN_CLI=dist forces one.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = new URL('../', import.meta.url);
const src = new URL('src/cli/main.ts', root);
const dist = new URL('dist/cli/main.js', root);

async function loadFromSource() {
  const { register } = await import('tsx/esm/api');
  const tsconfig = fileURLToPath(new URL('tsconfig.json', root));
  register({ tsconfig: existsSync(tsconfig) ? tsconfig : false });
  return import(src.href);
}

async function load() {
  const mode = process.env.KILN_CLI;
  if (mode === 'dist') return import(dist.href);
  if (mode !== undefined && mode !== 'src') throw new Error(`KILN_CLI must be 'src' or 'dist', got '${mode}'`);
  if (existsSync(fileURLToPath(src))) {
    try {
      return await loadFromSource();
    } catch (e) {
      if (mode === 'src' || e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e.message).includes('tsx')) throw e;
    }
  }
  if (existsSync(fileURLToPath(dist))) return import(dist.href);
  throw new Error("cannot find the kiln CLI: run 'npm install' (for tsx) or 'npm run build' (for dist/)");
}

try {
  const { main } = await load();
  process.exitCode = await main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`kiln: ${e instanceof Error ? e.message : String(e)}\n`);
  if (process.env.KILN_DEBUG === '1' && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  process.exitCode = 1;
}
