// Test runner setup: unit tests are pure and fast; integration and fault tests start real PostgreSQL servers.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Integration files each start their own PostgreSQL servers; two at a time fits a 2-core machine.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
