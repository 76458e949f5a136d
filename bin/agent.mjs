#!/usr/bin/env node
// `agent` command when installed with npm link / npx: runs the TypeScript CLI through tsx.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
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
