/**
 * npm run build: type-check, then bundle the CLI into dist/cli.mjs (dependencies stay in
 * node_modules) so `node dist/cli.mjs <command>` runs without tsx.
 */
import { build } from 'esbuild';

await build({
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/cli.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: true,
  logLevel: 'info',
});
