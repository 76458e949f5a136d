/**
 * A manager in its own process, for the SIGTERM test: serves the probe routes on 127.0.0.1:0
 * for the workspace in argv[2], prints `manager listening on <url>`, `entered` when the slow route
 * is waiting, and `stopped` once closed. The slow route finishes 300 ms after it is entered.
 */
import { serveManager } from '../../src/server/serve.js';
import { probeRoutes } from './manager.js';

const slow = {
  wait: async () => {
    process.stdout.write('entered\n');
    await new Promise((r) => setTimeout(r, 300));
  },
};
const m = await serveManager({ workspace: process.argv[2]!, host: '127.0.0.1', port: 0, plugins: { api: [probeRoutes(slow)] } });
await m.closed;
process.stdout.write('stopped\n');
