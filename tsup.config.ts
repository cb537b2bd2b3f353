import { defineConfig } from 'tsup';

export default defineConfig({
  // index: the Node entry; core: the browser-safe one (no node: imports); the CLI
  entry: { index: 'src/index.ts', core: 'src/core.ts', 'cli/main': 'src/cli/main.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  // import.meta.url in the CommonJS build (the addon loader finds the package folder with it)
  shims: true,
});
