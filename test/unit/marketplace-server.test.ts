import http from 'node:http';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMarketplaceServer, jsonDepthExceeds, MAX_JSON_DEPTH } from '../../src/marketplace/server.js';
import { rawRequest } from '../helpers/raw-http.js';

const KEY = 'unit-marketplace-key-0123456789';
const auth = { authorization: `Bearer ${KEY}` };
const card = (over: Record<string, unknown> = {}) => ({
  name: 'Victim', purpose: 'p', category: 'data', model: 'none', version: '0.1.0', capabilities: ['data'],
  tools: [{ name: 'process_data', description: 'd', parameters: { type: 'object' } }],
  api_endpoint: 'http://127.0.0.1:8081', agent_card_url: 'http://127.0.0.1:8081/.well-known/agent-card.json', ...over,
});
/** `parameters` nesting `depth` arrays, as raw JSON text (JSON.stringify itself overflows on such values). */
const deepCard = (depth: number) => JSON.stringify(card()).replace('"parameters":{"type":"object"}', `"parameters":{"x":${'['.repeat(depth)}${']'.repeat(depth)}}`);

async function tempFile(): Promise<{ dir: string; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'nexus-mkt-'));
  await mkdir(join(dir, 'sub'));
  return { dir, file: join(dir, 'sub', 'listings.json') };
}

/** Every listing the server holds, as the API returns them. */
async function snapshot(app: FastifyInstance): Promise<unknown[]> {
  return (await app.inject({ method: 'GET', url: '/v1/agents', headers: auth })).json().agents;
}

describe('marketplace auth is by route, however the path is spelled (issue 14 §1)', () => {
  let app: FastifyInstance;
  let base: string;
  let file: string;
  const attack = JSON.stringify(card({ api_endpoint: 'http://attacker.example' }));
  // percent-escapes the router decodes, doubled slashes, dot segments, case and slash variants
  const spellings = (key: string) => [
    `/v1/agents/${key}`, `/%761/agents/${key}`, `/v%31/agents/${key}`, `/%76%31/%61%67%65%6e%74%73/${key}`, `/v1/%61gents/${key}`,
    `/v1/agents/%${key.charCodeAt(0).toString(16)}${key.slice(1)}`, `//v1/agents/${key}`, `/v1//agents/${key}`, `/./v1/agents/${key}`,
    `/x/../v1/agents/${key}`, `/v1/./agents/${key}`, `/%2e/v1/agents/${key}`, `/V1/agents/${key}`, `/v1/AGENTS/${key}`, `/v1/agents/${key}/`,
    `/%2fv1/agents/${key}`, `/v1%2fagents/${key}`, `/v1/agents/${key}?x=1`, `/v1/agents/${key};x`,
  ];

  beforeAll(async () => {
    ({ file } = await tempFile());
    app = await buildMarketplaceServer({ apiKey: KEY, dataFile: file });
    base = await app.listen({ port: 0, host: '127.0.0.1' });
    expect((await app.inject({ method: 'PUT', url: '/v1/agents/victim', headers: auth, payload: card() })).statusCode).toBe(201);
  });
  afterAll(() => app.close());

  it('no spelling of a protected path reads, writes or deletes without the token (raw socket and inject)', async () => {
    const before = await snapshot(app);
    const saved = await readFile(file, 'utf8');
    // one kept-alive connection instead of ~1,000 fresh ones: the same request lines, less work on a loaded machine
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (const path of [...spellings('victim'), ...spellings('newkey'), '/%761/agents', '/v%31/agents', '//v1/agents', '/V1/agents']) {
      for (const method of ['GET', 'HEAD', 'PUT', 'DELETE', 'POST', 'PATCH']) {
        const body = method === 'PUT' || method === 'POST' || method === 'PATCH' ? attack : undefined;
        for (const headers of [{} as Record<string, string>, { authorization: 'Bearer wrong' }, { authorization: `Basic ${Buffer.from(`x:${KEY}`).toString('base64')}` }]) {
          const r = await rawRequest(base, method, path, { headers, agent, ...(body ? { body } : {}) });
          expect([401, 404], `${method} ${path} ${JSON.stringify(headers)} -> ${r.status} ${r.body}`).toContain(r.status);
          expect(r.body).not.toContain('Victim');
          const i = await app.inject({ method: method as 'GET', url: path, headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { payload: body } : {}) });
          expect([401, 404], `inject ${method} ${path} -> ${i.statusCode}`).toContain(i.statusCode);
        }
      }
    }
    agent.destroy();
    expect(await snapshot(app)).toEqual(before);
    expect(await readFile(file, 'utf8')).toBe(saved);
  });

  it('what the router does with each spelling: decoded escapes reach the route (so they must be checked), the rest match no route', async () => {
    const reached: string[] = [];
    for (const path of spellings('victim')) {
      const r = await rawRequest(base, 'GET', path, { headers: auth });
      if (r.status === 200) reached.push(path);
      else expect([400, 404], `${path} -> ${r.status}`).toContain(r.status);
    }
    expect(reached).toEqual(['/v1/agents/victim', '/%761/agents/victim', '/v%31/agents/victim', '/%76%31/%61%67%65%6e%74%73/victim', '/v1/%61gents/victim', '/v1/agents/%76ictim', '/v1/agents/victim?x=1']);
  });

  it('the public routes stay public and every documented route requires the token', async () => {
    expect((await rawRequest(base, 'GET', '/health')).status).toBe(200);
    const doc = JSON.parse((await rawRequest(base, 'GET', '/openapi.json')).body) as { paths: Record<string, Record<string, unknown>> };
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const method of Object.keys(methods)) {
        const r = await rawRequest(base, method.toUpperCase(), path.replace('{key}', 'victim'), method === 'put' ? { body: attack } : {});
        expect(r.status, `${method} ${path}`).toBe(401);
      }
    }
  });
});

describe('marketplace input bounds and saving (issue 14 §4)', () => {
  it('refuses parameters nested 200,000 deep with 400, and keeps saving afterwards', async () => {
    const { dir, file } = await tempFile();
    const app = await buildMarketplaceServer({ apiKey: KEY, dataFile: file });
    const deep = await app.inject({ method: 'PUT', url: '/v1/agents/deep', headers: { ...auth, 'content-type': 'application/json' }, payload: deepCard(200_000) });
    expect(deep.statusCode).toBe(400);
    expect(deep.json().error).toMatchObject({ code: 'INVALID_CARD', message: expect.stringContaining(`deeper than ${MAX_JSON_DEPTH}`) });
    for (const k of ['a', 'b', 'c', 'd']) expect((await app.inject({ method: 'PUT', url: `/v1/agents/${k}`, headers: auth, payload: card({ name: k }) })).statusCode).toBe(201);
    expect((await app.inject({ method: 'DELETE', url: '/v1/agents/d', headers: auth })).statusCode).toBe(204);
    const before = await snapshot(app);
    await app.close();
    const again = await buildMarketplaceServer({ apiKey: KEY, dataFile: file });
    expect(await snapshot(again)).toEqual(before);
    expect(before).toHaveLength(3);
    await again.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a card that cannot be serialised (depth bound lifted), leaving the store and file as they were', async () => {
    const { dir, file } = await tempFile();
    const app = await buildMarketplaceServer({ apiKey: KEY, dataFile: file, maxJsonDepth: Infinity });
    expect((await app.inject({ method: 'PUT', url: '/v1/agents/a', headers: auth, payload: card() })).statusCode).toBe(201);
    const saved = await readFile(file, 'utf8');
    const deep = await app.inject({ method: 'PUT', url: '/v1/agents/deep', headers: { ...auth, 'content-type': 'application/json' }, payload: deepCard(200_000) });
    expect(deep.statusCode).toBe(400);
    expect(deep.json().error).toMatchObject({ code: 'INVALID_CARD', message: expect.stringContaining('cannot be serialised') });
    expect((await app.inject({ method: 'GET', url: '/v1/agents/deep', headers: auth })).statusCode).toBe(404);
    expect(await readFile(file, 'utf8')).toBe(saved);
    expect((await app.inject({ method: 'PUT', url: '/v1/agents/b', headers: auth, payload: card() })).statusCode).toBe(201);
    await app.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('one failed save fails its own request only: the change is rolled back and the next save works', async () => {
    const { dir, file } = await tempFile();
    const app = await buildMarketplaceServer({ apiKey: KEY, dataFile: file });
    await rm(join(dir, 'sub'), { recursive: true, force: true }); // the save cannot write now
    const failed = await app.inject({ method: 'PUT', url: '/v1/agents/lost', headers: auth, payload: card() });
    expect(failed.statusCode).toBe(500);
    expect(failed.json().error).toEqual({ code: 'INTERNAL', message: 'internal error' });
    expect((await app.inject({ method: 'GET', url: '/v1/agents/lost', headers: auth })).statusCode).toBe(404);
    await mkdir(join(dir, 'sub'));
    expect((await app.inject({ method: 'PUT', url: '/v1/agents/kept', headers: auth, payload: card() })).statusCode).toBe(201);
    expect((await app.inject({ method: 'PUT', url: '/v1/agents/gone', headers: auth, payload: card() })).statusCode).toBe(201);
    expect((await app.inject({ method: 'DELETE', url: '/v1/agents/gone', headers: auth })).statusCode).toBe(204);
    const keys = (JSON.parse(await readFile(file, 'utf8')) as { listings: { key: string }[] }).listings.map((l) => l.key);
    expect(keys).toEqual(['kept']);
    await app.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('accepts only http(s) URLs in api_endpoint and agent_card_url', async () => {
    const app = await buildMarketplaceServer({ apiKey: KEY });
    for (const bad of ['javascript:alert(1)', 'file:///etc/passwd', 'data:text/html,<script>x</script>', 'ftp://example.com/card']) {
      for (const field of ['api_endpoint', 'agent_card_url']) {
        const r = await app.inject({ method: 'PUT', url: '/v1/agents/u', headers: auth, payload: card({ [field]: bad }) });
        expect(r.statusCode, `${field}=${bad}`).toBe(400);
        expect(r.json().error.message).toContain(field);
      }
    }
    expect((await app.inject({ method: 'PUT', url: '/v1/agents/u', headers: auth, payload: card({ agent_card_url: 'https://example.com/card.json' }) })).statusCode).toBe(201);
    await app.close();
  });

  it('counts JSON depth outside strings only, in linear time', () => {
    expect(jsonDepthExceeds('{"a":[[1]]}', 3)).toBe(false);
    expect(jsonDepthExceeds('{"a":[[[1]]]}', 3)).toBe(true);
    expect(jsonDepthExceeds(`{"a":"${'['.repeat(100)}\\"${'{'.repeat(100)}"}`, 1)).toBe(false);
    expect(jsonDepthExceeds('['.repeat(1_000_000), MAX_JSON_DEPTH)).toBe(true);
  });

  it('refuses to start from a data file that is not one', async () => {
    const { dir, file } = await tempFile();
    await import('node:fs/promises').then((fs) => fs.writeFile(file, '{"listings": 5}'));
    await expect(buildMarketplaceServer({ apiKey: KEY, dataFile: file })).rejects.toThrow(/not a marketplace data file/);
    await rm(dir, { recursive: true, force: true });
  });
});
