/**
 * Bench dispatcher: `npm run bench -- <name> [args]` runs `bench/<name>.ts`'s exported
 * `main(args)`; with no name (or `--help`) it lists the benches. A bench is any `bench/*.ts`
 * other than this file and `util.ts` (and names starting with `_`) that exports `main`, so
 * adding one is just adding a file. A bench may export `description` for the listing.
 * @module
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** What a bench file exports. */
export interface BenchModule {
  main(args: string[]): unknown;
  description?: string;
}

const here = dirname(fileURLToPath(import.meta.url));
const NOT_BENCHES = new Set(['index', 'util']);

/** The bench names found in bench/, sorted. */
export function benchNames(): string[] {
  return readdirSync(here)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => f.slice(0, -3))
    .filter((n) => !NOT_BENCHES.has(n) && !n.startsWith('_'))
    .sort();
}

async function load(name: string): Promise<BenchModule> {
  const mod = (await import(pathToFileURL(join(here, `${name}.ts`)).href)) as Partial<BenchModule>;
  if (typeof mod.main !== 'function') throw new Error(`bench/${name}.ts does not export main(args)`);
  return mod as BenchModule;
}

async function list(): Promise<void> {
  console.log('usage: npm run bench -- <name> [args]\n\nbenches:');
  for (const n of benchNames()) {
    let desc = '';
    try {
      desc = (await load(n)).description ?? '';
    } catch (e) {
      desc = `(cannot load: ${(e as Error).message})`;
    }
    console.log(`  ${n.padEnd(16)} ${desc}`);
  }
}

async function run(argv: string[]): Promise<void> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'list') return list();
  const names = benchNames();
  if (!names.includes(name)) {
    console.error(`unknown bench '${name}'; available: ${names.join(', ') || '(none)'}`);
    process.exitCode = 2;
    return;
  }
  await (await load(name)).main(args);
}

run(process.argv.slice(2)).catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
