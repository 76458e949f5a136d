/**
 * npm run marketplace -- [--port 8200] [--host 127.0.0.1] [--data marketplace-data.json]
 * Runs the reference marketplace. The bearer token it accepts comes from MARKETPLACE_API_KEY.
 */
import { resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { buildMarketplaceServer } from './server.js';

const program = new Command('marketplace')
  .description('the reference marketplace server (agent cards)')
  .option('--port <port>', 'TCP port', (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number');
    return n;
  }, 8200)
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .option('--data <file>', 'JSON file the listings persist to', 'marketplace-data.json')
  .parse();
const o = program.opts<{ port: number; host: string; data: string }>();
const apiKey = process.env.MARKETPLACE_API_KEY;
if (!apiKey) {
  process.stderr.write('error: MARKETPLACE_API_KEY is not set\nhint: export MARKETPLACE_API_KEY=<a long random token> and start again\n');
  process.exit(2);
}
const app = await buildMarketplaceServer({ apiKey, dataFile: resolve(process.env.INIT_CWD ?? process.cwd(), o.data), logger: true });
const address = await app.listen({ port: o.port, host: o.host });
process.stderr.write(`marketplace listening on ${address} (OpenAPI: ${address}/openapi.json)\n`);
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => void app.close().then(() => process.exit(0)));
