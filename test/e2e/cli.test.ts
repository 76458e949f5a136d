import { createServer, type Server } from 'node:net';
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMarketplaceServer } from '../../src/marketplace/server.js';
import { runCli } from '../helpers/cli.js';
import { makeWorkspace, workspaceContainers, type TestWorkspace } from '../helpers/workspace.js';

let ws: TestWorkspace;
const cli = (...args: string[]) => runCli(args, ws.env);
const registryText = async () => readFile(join(ws.dir, '.nexus/registry.json'), 'utf8').catch(() => '');

beforeAll(async () => {
  ws = await makeWorkspace('9121-9140');
});
afterAll(() => ws.cleanup());

describe('agent CLI: create and bad input', () => {
  it('create prints the record with --json and renders agents/<slug>/', async () => {
    const r = await cli('create', '--name', 'DataAgent', '--capabilities', 'data', 'analytics', '--json');
    expect(r.exitCode).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.agent).toMatchObject({ name: 'DataAgent', slug: 'data-agent', port: 9121, capabilities: ['data', 'analytics'], category: 'data' });
    expect(out.tools).toEqual(['process_data']);
    expect(existsSync(join(ws.dir, 'agents/data-agent/src/tools/process_data.ts'))).toBe(true);
  });

  it.each([
    ['an invalid name', ['create', '--name', 'bad/name'], 2, /error: invalid agent name 'bad\/name'\nhint: /],
    ['a duplicate name', ['create', '--name', 'DataAgent'], 4, /already exists/],
    ['a duplicate slug', ['create', '--name', 'data-agent'], 4, /already exists/],
    ['a port outside the range', ['create', '--name', 'X1', '--port', '8081'], 2, /outside the agent port range 9121-9140/],
    ['a port held by another agent', ['create', '--name', 'X2', '--port', '9121'], 4, /reserved by agent 'data-agent'/],
    ['an unknown capability', ['create', '--name', 'X3', '--capabilities', 'telepathy'], 2, /unknown capability: telepathy\nhint: use some of: data/],
    ['a missing --name', ['create'], 2, /required option '--name <name>'/],
    ['a malformed --port', ['create', '--name', 'X4', '--port', 'eighty'], 2, /must be a port number/],
    ['an unknown command', ['launch'], 2, /unknown command 'launch'/],
  ])('rejects %s with a clear error, exit code and no change', async (_what, args, code, msg) => {
    const before = await registryText();
    const dirs = await readdir(join(ws.dir, 'agents'));
    const r = await cli(...args);
    expect(r.exitCode).toBe(code);
    expect(r.stderr).toMatch(msg);
    expect(r.stdout).toBe('');
    expect(await registryText()).toBe(before);
    expect(await readdir(join(ws.dir, 'agents'))).toEqual(dirs);
  });

  it('rejects a port another process listens on (exit 4)', async () => {
    const squatter: Server = createServer();
    await new Promise<void>((r) => squatter.listen(9139, '127.0.0.1', r));
    try {
      const r = await cli('create', '--name', 'X5', '--port', '9139');
      expect(r.exitCode).toBe(4);
      expect(r.stderr).toMatch(/port 9139 is already in use on this host/);
    } finally {
      squatter.close();
    }
  });

  it('prints errors as JSON on stdout with --json', async () => {
    const r = await cli('create', '--name', '1bad', '--json');
    expect(r.exitCode).toBe(2);
    expect(JSON.parse(r.stdout)).toEqual({ error: { code: 'NAME_INVALID', message: "invalid agent name '1bad'", hint: expect.any(String) } });
  });

  it('8 concurrent create processes get 8 distinct ports and 8 records', async () => {
    const names = Array.from({ length: 8 }, (_, i) => `Worker${i}`);
    const results = await Promise.all(names.map((n) => cli('create', '--name', n, '--capabilities', 'text', '--json')));
    expect(results.map((r) => r.exitCode)).toEqual(Array(8).fill(0));
    const ports = results.map((r) => JSON.parse(r.stdout).agent.port as number);
    expect(new Set(ports).size).toBe(8);
    const list = JSON.parse((await cli('list', '--json')).stdout);
    expect(list.agents.filter((a: { name: string }) => a.name.startsWith('Worker')).map((a: { port: number }) => a.port).sort()).toEqual([...ports].sort());
    for (const n of names) expect((await cli('remove', '--name', n, '--purge')).exitCode).toBe(0);
  });

  it('an unreachable engine exits 5 naming DOCKER_HOST', async () => {
    const r = await runCli(['start-all'], { ...ws.env, DOCKER_HOST: 'unix:///tmp/nexus-nope.sock' });
    expect(r.exitCode).toBe(5);
    expect(r.stderr).toMatch(/cannot reach the Docker engine at unix:\/\/\/tmp\/nexus-nope.sock/);
    expect(r.stderr).toMatch(/hint: start Docker/);
  });

  it('compose and routes write files that docker-compose, nginx and the traefik schema accept', async () => {
    const c = await cli('compose', '--json');
    expect(c.exitCode, c.stderr).toBe(0);
    const files = JSON.parse(c.stdout).files as string[];
    expect(files.map((f) => f.slice(ws.dir.length + 1))).toEqual(['docker-compose-agents.yml', 'nginx/nexus-agents.conf', 'nginx/agents.json']);
    const { execFile } = await import('node:child_process');
    const cfg = await new Promise<{ code: number; out: string }>((resolve) =>
      execFile('docker-compose', ['-f', files[0]!, 'config', '--services'], (err, out) => resolve({ code: err ? 1 : 0, out })),
    );
    expect(cfg).toEqual({ code: 0, out: 'data-agent\nrouter\n' });
    const t = await cli('routes', '--traefik', '--json');
    expect(t.exitCode).toBe(0);
    const yamlText = await readFile(JSON.parse(t.stdout).files[0], 'utf8');
    const { validateTraefik } = await import('../helpers/schemas.js');
    const { default: yaml } = await import('js-yaml');
    expect(validateTraefik(yaml.load(yamlText))).toEqual([]);
    expect((await cli('routes')).exitCode).toBe(2);
  });

  it('remove of an unknown agent exits 3', async () => {
    const r = await cli('remove', '--name', 'Ghost');
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/no agent named 'Ghost'/);
  });
});

describe('agent CLI: the fleet on the real engine', () => {
  it('demo creates, starts and calls the five seed agents', async () => {
    const r = await cli('demo', '--json');
    expect(r.exitCode, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.calls.map((c: { agent: string; status: number }) => [c.agent, c.status])).toEqual([
      ['DataAgent', 200], ['TextAgent', 200], ['ImageAgent', 200], ['CodeAgent', 200], ['MathAgent', 200],
    ]);
    expect(out.calls[0].body).toEqual({ result: { count: 5, sum: 15, mean: 3, min: 1, max: 5 } });
    expect(out.calls[4].body).toEqual({ result: { expression: '2 * (3 + 4) ^ 2', value: 98 } });
  });

  it('register --all lists the fleet in the marketplace; the API key never shows', async () => {
    const key = 'cli-e2e-marketplace-key-42';
    const market = await buildMarketplaceServer({ apiKey: key });
    const url = await market.listen({ port: 0, host: '127.0.0.1' });
    try {
      const env = { ...ws.env, MARKETPLACE_URL: url, MARKETPLACE_API_KEY: key };
      const r = await runCli(['register', '--all', '--verbose'], env);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/5 registered, 0 not/);
      const again = await runCli(['register', '--all', '--json'], env);
      expect(JSON.parse(again.stdout).agents.map((a: { outcome: string }) => a.outcome)).toEqual(Array(5).fill('unchanged'));
      const cards = await runCli(['cards', '--name', 'DataAgent', '--json'], env);
      expect(JSON.parse(cards.stdout).agents[0].marketplace.tools[0].name).toBe('process_data');
      for (const out of [r.stdout, r.stderr, again.stdout, again.stderr, cards.stdout, await registryText()]) expect(out).not.toContain(key);
      // another marketplace URL (same server) makes the card due again, sent with a wrong key
      const bad2 = await runCli(['register', '--name', 'DataAgent'], { ...env, MARKETPLACE_URL: url.replace('127.0.0.1', 'localhost'), MARKETPLACE_API_KEY: 'wrong-key-value' });
      expect(bad2.exitCode).toBe(10);
      expect(bad2.stdout + bad2.stderr).toMatch(/refused the API key \(HTTP 401/);
      expect(bad2.stdout + bad2.stderr).not.toContain('wrong-key-value');
      const none = await runCli(['register', '--all'], { ...ws.env, MARKETPLACE_URL: '', MARKETPLACE_API_KEY: '' });
      expect(none.exitCode).toBe(2);
      expect(none.stderr).toMatch(/no marketplace configured\nhint: set MARKETPLACE_URL/);
    } finally {
      await market.close();
    }
  });

  it('start-all is idempotent and list shows every agent healthy', async () => {
    const r = await cli('start-all', '--json');
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout).agents.map((a: { outcome: string }) => a.outcome)).toEqual(Array(5).fill('unchanged'));
    const list = await cli('list');
    expect(list.exitCode).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^NAME\s+PORT\s+CONTAINER\s+HEALTH/);
    expect(list.stdout.match(/running\s+healthy/g)).toHaveLength(5);
  });

  it('logs shows the agent output; doctor reports a healthy setup', async () => {
    const logs = await cli('logs', '--name', 'DataAgent', '--tail', '50');
    expect(logs.exitCode).toBe(0);
    expect(logs.stdout).toContain('agent ready');
    const doc = await cli('doctor', '--json');
    expect(doc.exitCode).toBe(0);
    const checks = JSON.parse(doc.stdout).checks as { name: string; status: string }[];
    expect(checks.map((c) => c.name)).toEqual(['node', 'engine', 'base image', 'registry', 'ports', 'workspace']);
    expect(checks.find((c) => c.name === 'engine')!.status).toBe('ok');
  });

  it('stop-all stops everything, and start --name brings one back', async () => {
    expect((await cli('stop-all')).exitCode).toBe(0);
    expect(await workspaceContainers(ws.dir)).toEqual([]);
    const r = await cli('start', '--name', 'MathAgent', '--json');
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout).agents[0]).toMatchObject({ name: 'MathAgent', outcome: 'started' });
    expect((await cli('stop', '--name', 'MathAgent')).exitCode).toBe(0);
    expect(await workspaceContainers(ws.dir)).toEqual([]);
  });
});
