import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // agent-template/tools import the runtime by its package name, as agents do
  resolve: { alias: { '@nexus-delta/runtime': fileURLToPath(new URL('./src/runtime/index.ts', import.meta.url)) } },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
          // many unit files serve real HTTP in-process (manager, gateway, in-process agents); in a
          // full run on 2 busy cores some tests took 4-13 s and an a2a-door beforeEach passed the
          // default 10 s hook limit (its late hook then broke the next tests with 409s). The
          // defaults (5 s / 10 s) leave no margin there; a hang still fails, after 30 s.
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/helpers/global-setup.ts'],
          // the Ryuk reaper image cannot be pulled here; tests remove what they start themselves
          env: { TESTCONTAINERS_RYUK_DISABLED: 'true', METADATA_SERVER_DETECTION: 'none' },
          // one Docker engine, two cores: files run one after another, tests inside may overlap
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
