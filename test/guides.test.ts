/**
 * Every guide in docs/guides/ runs as written. For each guide, in a fresh temporary folder (the
 * working directory of all its blocks, so a block can read what an earlier one wrote), in order:
 *
 * - every ```ts block is written to a `.mts` file and run with `node --import tsx`, its imports
 *   of `kilnjs` (and `kilnjs/core`) pointed at this checkout's src/index.ts (src/core.ts); a
 *   block preceded by `<!-- continued -->` continues the block before it, and the two run as one
 *   program (so a guide can show a program step by step);
 * - a ```sh block preceded by `<!-- run -->` runs under bash with `set -euo pipefail`, where
 *   `npx kiln` and `kiln` run this checkout's bin/kiln.mjs and `npm` runs in this checkout
 *   (`npm run bench -- …`); other sh blocks are shown, not run (a download, a long run).
 *
 * A block passes when it exits with status 0 within its timeout. Blocks import only `kilnjs`,
 * `kilnjs/core` and Node's built-ins, as a user's program would. The cpu backend runs with one
 * thread (KILN_NUM_THREADS=1), as on a small CI machine; without it (no native addon here) the
 * blocks are skipped with the reason. All the blocks are also type-checked
 * against the sources in one TypeScript program. KILN_GUIDES_VERBOSE=1 prints what each block
 * printed.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { backends } from '../src/index.js';
import { REQUIRED_BACKENDS } from './harness.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const GUIDES = join(REPO, 'docs', 'guides');
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const ENTRY = pathToFileURL(join(REPO, 'src', 'index.ts')).href;
const CORE = pathToFileURL(join(REPO, 'src', 'core.ts')).href;
/** The most one program may take (the whole file should stay near a minute on 2 cores). */
const BLOCK_TIMEOUT_MS = 90_000;

/** One program to run: a ts block (with the blocks it continues) or a marked sh block. */
interface Program {
  lang: 'ts' | 'sh';
  /** 1-based line of the (first) block's opening fence. */
  line: number;
  code: string;
}

interface Guide {
  file: string;
  programs: Program[];
  /** ts blocks in the order they appear (each on its own, for the type check). */
  tsBlocks: { line: number; code: string }[];
}

const FENCE = /^```(\S*)\s*$/;
const MARK = /^<!--\s*(run|continued)\s*-->\s*$/;

/** The runnable blocks of a guide, grouped into programs. */
function parseGuide(file: string): Guide {
  const lines = readFileSync(join(GUIDES, file), 'utf8').split('\n');
  const programs: Program[] = [];
  const tsBlocks: Guide['tsBlocks'] = [];
  let mark: string | null = null;
  for (let i = 0; i < lines.length; i++) {
    const m = MARK.exec(lines[i]!);
    if (m) {
      mark = m[1]!;
      continue;
    }
    const open = FENCE.exec(lines[i]!);
    if (!open) {
      if (lines[i]!.trim() !== '') mark = null; // a marker applies to the block right after it
      continue;
    }
    const lang = open[1]!;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    if (i === lines.length) throw new Error(`${file}:${start + 1}: a code block is not closed`);
    const code = `${body.join('\n')}\n`;
    const where = `${file}:${start + 1}`;
    if (lang === 'ts' || lang === 'typescript') {
      if (mark === 'run') throw new Error(`${where}: <!-- run --> is for sh blocks (every ts block runs)`);
      tsBlocks.push({ line: start + 1, code });
      const prev = programs.at(-1);
      if (mark === 'continued') {
        if (!prev || prev.lang !== 'ts') throw new Error(`${where}: <!-- continued --> needs a ts block before it`);
        prev.code += code;
      } else programs.push({ lang: 'ts', line: start + 1, code });
    } else if (mark === 'run') {
      if (lang !== 'sh' && lang !== 'bash') throw new Error(`${where}: <!-- run --> marks a sh block, not \`\`\`${lang}`);
      programs.push({ lang: 'sh', line: start + 1, code });
    } else if (mark === 'continued') throw new Error(`${where}: <!-- continued --> marks a ts block, not \`\`\`${lang}`);
    mark = null;
  }
  return { file, programs, tsBlocks };
}

/** Point the package's imports at this checkout's sources. */
const rewriteImports = (code: string): string =>
  code.replace(/(from\s+|import\s*\(\s*)(['"])kilnjs(\/core)?\2/g, (_, lead: string, q: string, core?: string) => `${lead}${q}${core ? CORE : ENTRY}${q}`);

/** Module specifiers a block imports. */
const importsOf = (code: string): string[] => [...code.matchAll(/(?:from\s+|import\s*\(\s*|^import\s+)(['"])([^'"]+)\1/gm)].map((m) => m[2]!);

const SH_PRELUDE = `set -euo pipefail
kiln() { node "$KILN_REPO/bin/kiln.mjs" "$@"; }
npx() { if [ "$1" = kiln ]; then shift; kiln "$@"; else command npx "$@"; fi; }
npm() { (cd "$KILN_REPO" && command npm "$@"); }
`;

const guides = readdirSync(GUIDES)
  .filter((f) => f.endsWith('.md'))
  .sort()
  .map(parseGuide);

const TMP = mkdtempSync(join(tmpdir(), 'kiln-guides-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));

const env: NodeJS.ProcessEnv = { ...process.env, KILN_NUM_THREADS: '1', KILN_REPO: REPO, NO_COLOR: '1', FORCE_COLOR: '0' };
// the tests' own settings are not the guides' business
delete env.KILN_TEST_BACKENDS;
delete env.NODE_OPTIONS;

it('finds the guides, each with code that runs', () => {
  expect(guides.map((g) => g.file)).toEqual(expect.arrayContaining(['benchmarking.md', 'fine-tuning.md', 'gpt2-weights.md', 'train-a-gpt.md', 'writing-a-backend.md']));
  for (const g of guides) expect(g.programs.length, g.file).toBeGreaterThan(0);
});

it('the guides import only kilnjs and Node built-ins', () => {
  const bad = guides.flatMap((g) =>
    g.tsBlocks.flatMap((b) => importsOf(b.code).filter((s) => !/^kilnjs(\/core)?$/.test(s) && !s.startsWith('node:')).map((s) => `${g.file}:${b.line}: '${s}'`)),
  );
  expect(bad).toEqual([]);
});

it('the ts blocks type-check', () => {
  const dir = join(TMP, 'typecheck');
  mkdirSync(dir);
  const files: string[] = [];
  const origin = new Map<string, string>();
  for (const g of guides) {
    // a continued block is checked with the blocks it continues, as it runs
    let n = 0;
    for (const p of g.programs.filter((p) => p.lang === 'ts')) {
      const f = join(dir, `${g.file.replace(/\.md$/, '')}-${++n}.mts`);
      // `export {}` keeps each file a module of its own (top-level await, no shared names)
      writeFileSync(f, `${p.code}\nexport {};\n`);
      files.push(f);
      origin.set(f, `${g.file}:${p.line}`);
    }
  }
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    esModuleInterop: true,
    allowImportingTsExtensions: true,
    types: ['node'],
    typeRoots: [join(REPO, 'node_modules', '@types')],
    baseUrl: REPO,
    paths: { kilnjs: [join(REPO, 'src', 'index.ts')], 'kilnjs/core': [join(REPO, 'src', 'core.ts')] },
  };
  const program = ts.createProgram(files, options);
  const problems = ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file && origin.has(d.file.fileName))
    .map((d) => {
      const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
      return `${origin.get(d.file!.fileName)} (+${line} lines): ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
  expect(problems).toEqual([]);
});

// the guides use the cpu backend (the default in Node); without the addon they are skipped, saying why
const cpu = backends().find((b) => b.name === 'cpu');
const noCpu = cpu?.available ? null : `the cpu backend is unavailable: ${cpu?.reason ?? 'not registered'}`;
if (noCpu && REQUIRED_BACKENDS.includes('cpu')) throw new Error(`[kiln tests] KILN_REQUIRE_BACKENDS names cpu, but ${noCpu}`);
if (noCpu) console.warn(`[kiln tests] guides skipped: ${noCpu}`);

for (const g of guides) {
  describe.skipIf(noCpu !== null)(`${g.file}${noCpu ? `: ${noCpu}` : ''}`, () => {
    const cwd = join(TMP, g.file.replace(/\.md$/, ''));
    mkdirSync(cwd, { recursive: true });
    g.programs.forEach((p, i) => {
      it(`${p.lang} block at line ${p.line}`, () => {
        let result;
        if (p.lang === 'ts') {
          const file = join(cwd, `block-${i + 1}.mts`);
          writeFileSync(file, rewriteImports(p.code));
          result = spawnSync(process.execPath, ['--import', TSX, file], { cwd, env, encoding: 'utf8', timeout: BLOCK_TIMEOUT_MS });
        } else {
          result = spawnSync('bash', ['-c', SH_PRELUDE + p.code], { cwd, env, encoding: 'utf8', timeout: BLOCK_TIMEOUT_MS });
        }
        const output = `${result.stdout}${result.stderr}`;
        if (process.env.KILN_GUIDES_VERBOSE) console.log(`--- ${g.file}:${p.line}\n${output}`);
        if (result.error || result.status !== 0)
          throw new Error(`${g.file}:${p.line}: the ${p.lang} block ${result.error ? `failed: ${result.error.message}` : `exited with ${result.status}`}\n${output.slice(-6000)}`);
      }, BLOCK_TIMEOUT_MS + 10_000);
    });
  });
}
