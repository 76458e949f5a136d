/**
 * Bundle the CLI into dist/ (run by `npm ci` / `npm install` through the `prepare` script, and by
 * `npm run build` after the type check) so `npm run agent` runs plain JavaScript instead of
 * compiling TypeScript on every call. Code splitting keeps each dynamic import (a use case, the
 * Docker engine, the Firestore registry) in its own chunk, so a command loads only what it uses;
 * dependencies stay in node_modules. The dashboard's browser bundle goes to dist/dashboard/.
 */
import { rm } from 'node:fs/promises';
import { build } from 'esbuild';
import { buildDashboard } from '../dashboard/build.js';

await rm('dist', { recursive: true, force: true });
await build({
  entryPoints: { cli: 'src/cli/main.ts' },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: true,
  logLevel: 'warning',
});
// the dashboard `agent serve` serves at / (src/server/dashboard.ts reads dist/dashboard/)
await buildDashboard('dist/dashboard');
