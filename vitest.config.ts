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
