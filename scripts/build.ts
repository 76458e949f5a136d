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
import { cliBuildOptions } from './build-options.js';

await rm('dist', { recursive: true, force: true });
await build(cliBuildOptions('dist'));
// the dashboard `agent serve` serves at / (src/server/dashboard.ts reads dist/dashboard/)
await buildDashboard('dist/dashboard');
