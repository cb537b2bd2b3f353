#!/usr/bin/env node
// The browser builds, with esbuild (tsup's bundler):
//   dist/browser/kiln.js         the core (src/core.ts) as one minified ES module, with its sourcemap
//   examples/browser/dist/main.js the example page's script (examples/browser/main.ts), which
//                                imports 'kilnjs' (resolved here to src/core.ts) and bundles its
//                                sample text
// Each is checked for imports of Node's built-in modules (a `node:` import, or a bare one, would
// fail to load in a browser), and the core's size is printed raw and gzipped (zlib level 9)
// against its budget. Exit status 1 on any failure.
//
// Usage: node scripts/build-browser.mjs [--core] [--example] [--metafile]
//   (no selection: both; --metafile also writes esbuild's metafile beside each bundle and lists
//   the largest inputs)
import { builtinModules } from 'node:module';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The core's gzipped budget: a page should not pay more than this for kiln before its own code. */
const CORE_GZIP_BUDGET = 250_000;
const NODE_BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

const args = new Set(process.argv.slice(2));
for (const a of args) if (!['--core', '--example', '--metafile'].includes(a)) fail(`unknown option ${a} (options: --core, --example, --metafile)`);
const all = !args.has('--core') && !args.has('--example');

function fail(message) {
  console.error(`build-browser: ${message}`);
  process.exit(1);
}

const kB = (n) => `${(n / 1000).toFixed(1)} kB`;

// 'kilnjs' is the package's own name: inside the repository it is the source of the core
const kilnjsAlias = {
  name: 'kilnjs-source',
  setup(build) {
    build.onResolve({ filter: /^kilnjs$/ }, () => ({ path: join(ROOT, 'src/core.ts') }));
  },
};

const common = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
  absWorkingDir: ROOT,
};

/** Build one bundle; check it; return its size. */
async function bundle(name, options) {
  let result;
  try {
    result = await esbuild.build({ ...common, ...options });
  } catch (e) {
    // esbuild has printed the errors (a Node module it cannot bundle for the browser among them)
    fail(`${name}: the build failed (${e.errors?.length ?? '?'} error(s))`);
  }
  const outfile = join(ROOT, options.outfile);
  const code = readFileSync(outfile);
  // what is still imported at run time: a browser bundle imports nothing
  const output = result.metafile.outputs[relative(ROOT, outfile)];
  const imports = (output?.imports ?? []).map((i) => i.path);
  const nodeImports = imports.filter((p) => NODE_BUILTINS.has(p) || p.startsWith('node:'));
  // and the text itself, in case an import was spelled where the metafile does not see it
  const text = code.toString('utf8');
  const inText = [...text.matchAll(/(?:\bfrom|\bimport|\brequire)\s*\(?\s*["'`](node:[\w/]+)["'`]/g)].map((m) => m[1]);
  const bad = [...new Set([...nodeImports, ...inText])];
  if (bad.length > 0) fail(`${name}: ${options.outfile} imports Node built-ins: ${bad.join(', ')}`);
  if (imports.length > 0) fail(`${name}: ${options.outfile} imports ${imports.join(', ')} at run time; a browser bundle must import nothing`);
  const gzip = gzipSync(code, { level: 9 }).length;
  console.log(`${name}: ${options.outfile}  ${kB(code.length)} raw, ${kB(gzip)} gzip -9`);
  if (args.has('--metafile')) {
    writeFileSync(`${outfile}.meta.json`, JSON.stringify(result.metafile));
    const inputs = Object.entries(output.inputs).sort((a, b) => b[1].bytesInOutput - a[1].bytesInOutput);
    for (const [file, v] of inputs.slice(0, 12)) console.log(`  ${kB(v.bytesInOutput).padStart(9)}  ${file}`);
  }
  return { raw: code.length, gzip, inputs: output.inputs };
}

if (all || args.has('--core')) {
  mkdirSync(join(ROOT, 'dist/browser'), { recursive: true });
  const core = await bundle('core', { entryPoints: ['src/core.ts'], outfile: 'dist/browser/kiln.js' });
  if (core.gzip > CORE_GZIP_BUDGET) {
    const largest = Object.entries(core.inputs)
      .sort((a, b) => b[1].bytesInOutput - a[1].bytesInOutput)
      .slice(0, 8)
      .map(([file, v]) => `${file} ${kB(v.bytesInOutput)}`);
    fail(`core: ${kB(core.gzip)} gzipped is over the budget of ${kB(CORE_GZIP_BUDGET)}; the largest inputs (minified): ${largest.join(', ')}`);
  }
  console.log(`core: within the budget of ${kB(CORE_GZIP_BUDGET)} gzipped`);
}

if (all || args.has('--example')) {
  mkdirSync(join(ROOT, 'examples/browser/dist'), { recursive: true });
  await bundle('example', {
    entryPoints: ['examples/browser/main.ts'],
    outfile: 'examples/browser/dist/main.js',
    plugins: [kilnjsAlias],
    // the sample text is part of the page's script, so the folder serves as it is
    loader: { '.txt': 'text' },
  });
}
