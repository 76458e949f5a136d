#!/usr/bin/env node
// `agent` (npm run agent, npm link, npx): runs the bundled CLI in dist/ (built by `npm ci` through
// the `prepare` script), or the TypeScript sources through tsx when dist/ is absent or older than
// a source file (so an edit is never run stale).
import { existsSync, readdirSync, statSync } from 'node:fs';
import module from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// V8's compile cache (Node >= 22.1; absent on Node 20, where this is a no-op): later calls skip
// compiling the bundle again
module.enableCompileCache?.();

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'dist/cli.mjs');

/** Newest modification time (ms) of the files under `dir`. */
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

let main;
if (existsSync(built) && statSync(built).mtimeMs >= newest(join(root, 'src'))) {
  ({ main } = await import(built));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
}
let settled = false;
process.on('beforeExit', () => {
  if (!settled) {
    process.stderr.write('error: internal: the command stalled before finishing (please report this)\n');
    process.exit(1);
  }
});
const code = await main(process.argv.slice(2));
settled = true;
process.exit(code);
