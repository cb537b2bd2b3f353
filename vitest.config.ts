import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // examples import the package by name, as users do
  resolve: { alias: { kilnjs: fileURLToPath(new URL('./src/index.ts', import.meta.url)) } },
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    // generous: a first use of a WebGPU pipeline on a CPU Vulkan driver compiles it with LLVM (about a second)
    testTimeout: 180_000,
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      reporter: ['text-summary', 'text'],
      thresholds: {
        'src/tensor/**': { lines: 90 },
        'src/autograd/**': { lines: 90 },
        'src/backend/ref/**': { lines: 90 },
      },
    },
  },
});
