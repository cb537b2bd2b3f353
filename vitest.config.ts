import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
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
