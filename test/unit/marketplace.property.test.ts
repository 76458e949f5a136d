import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMarketplaceServer } from '../../src/marketplace/server.js';
import { rawRequest } from '../helpers/raw-http.js';

// Property tests of the reference marketplace (issue 14 "Tests"): hostile requests over a real
// socket never write or read without the token, and the data file always reloads to what was served.

const KEY = 'property-marketplace-key-0123456789';
const auth = { authorization: `Bearer ${KEY}` };
const VICTIM = 'VictimListing7f3a';
const card = (over: Record<string, unknown> = {}) => ({
  name: VICTIM, purpose: 'p', category: 'data', model: 'none', version: '0.1.0', capabilities: ['data'],
  tools: [{ name: 'process_data', description: 'd', parameters: { type: 'object' } }], api_endpoint: 'http://127.0.0.1:8081', ...over,
});

const list = async (app: FastifyInstance) => (await app.inject({ method: 'GET', url: '/v1/agents', headers: auth })).json().agents as unknown[];

// path pieces a router might decode, fold or compare case-insensitively
const segment = fc.oneof(
  fc.constantFrom('v1', 'V1', '%761', 'v%31', '%76%31', 'agents', 'AGENTS', '%61gents', 'Agents', 'victim', 'other', '.', '..', '%2e', '%2e%2e', '', '%2f', 'health', 'openapi.json', '*'),
  fc.string({ maxLength: 12 }).map(encodeURIComponent),
);
// mostly nothing, so the spellings the router does decode come up often
const noise = fc.oneof({ arbitrary: fc.constant(''), weight: 4 }, fc.constantFrom('/', './', 'x/../', '%2e/', '%2e%2e/'));
const structured = fc
  .tuple(
    noise,
    fc.constantFrom('v1', 'V1', '%761', 'v%31', '%76%31', '%56%31', 'v1%2f'),
    noise,
    fc.constantFrom('agents', 'AGENTS', '%61gents', 'agent%73', '%61%67%65%6e%74%73'),
    fc.option(fc.oneof(fc.constantFrom('victim', '%76ictim', 'VICTIM', 'newkey', '%2e%2e'), fc.string({ maxLength: 12 }).map(encodeURIComponent)), { nil: undefined }),
    fc.constantFrom('', '/', '?x=1', '?q=Victim', ';a', '%00', '#f'),
  )
  .map(([n1, v, n2, a, key, tail]) => `/${n1}${v}/${n2}${a}${key !== undefined ? `/${key}` : ''}${tail}`);
const path = fc.oneof(
  structured,
  fc.tuple(fc.array(segment, { minLength: 1, maxLength: 5 }), fc.constantFrom('', '/', '?x=1', ';a')).map(([segs, tail]) => `/${segs.join('/')}${tail}`),
);
const body = fc.oneof(
  fc.constant(undefined),
  fc.constant(JSON.stringify(card({ api_endpoint: 'http://attacker.example' }))),
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  fc.oneof(fc.constant(200_000), fc.nat({ max: 5_000 })).map((n) => JSON.stringify(card()).replace('"parameters":{', `"parameters":{"x":${'['.repeat(n)}${']'.repeat(n)},`)),
);
const headers = fc.constantFrom<Record<string, string>>({}, { authorization: 'Bearer wrong' }, { authorization: 'Bearer ' }, { authorization: `bearer${KEY}` }, { authorization: `Basic ${Buffer.from(`u:${KEY}`).toString('base64')}` });

describe('marketplace properties', () => {
  let app: FastifyInstance;
  let base: string;
  let dir: string;
  let file: string;
  let victimId: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nexus-mkt-prop-'));
    file = join(dir, 'listings.json');
    app = await buildMarketplaceServer({ apiKey: KEY, dataFile: file });
    base = await app.listen({ port: 0, host: '127.0.0.1' });
    victimId = (await app.inject({ method: 'PUT', url: '/v1/agents/victim', headers: auth, payload: card() })).json().id;
  });
  afterAll(async () => {
    await app.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('no request without the token writes, deletes or reads a listing, and none answers 5xx', async () => {
    const before = await list(app);
    const saved = await readFile(file, 'utf8');
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('GET', 'HEAD', 'PUT', 'DELETE', 'POST', 'PATCH', 'OPTIONS'), path, body, headers, async (method, p, b, h) => {
        const r = await rawRequest(base, method, p, { headers: h, ...(b !== undefined ? { body: b } : {}) });
        expect(r.status).toBeLessThan(500);
        if (r.status < 300) expect(['/health', '/openapi.json']).toContain(new URL(p, 'http://x').pathname);
        expect(r.body).not.toContain(VICTIM);
        expect(r.body).not.toContain(victimId);
      }),
      { numRuns: 400 },
    );
    expect(await list(app)).toEqual(before);
    expect(await readFile(file, 'utf8')).toBe(saved);
  }, 120_000);

  it('after any sequence of authenticated writes, a restart from the data file serves the same listings', async () => {
    const tool = fc.record({ name: fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/), description: fc.string({ maxLength: 30 }), parameters: fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 3 }) });
    const put = fc.record({
      op: fc.constant('PUT' as const),
      key: fc.constantFrom('a', 'b', 'c', 'victim'),
      card: fc.record({ name: fc.string({ minLength: 1, maxLength: 20 }), purpose: fc.string({ maxLength: 40 }), tools: fc.array(tool, { minLength: 1, maxLength: 2 }), status: fc.constantFrom('available', 'unavailable') }),
      deep: fc.option(fc.oneof(fc.constant(200_000), fc.integer({ min: 60, max: 5_000 })), { freq: 4 }),
    });
    const del = fc.record({ op: fc.constant('DELETE' as const), key: fc.constantFrom('a', 'b', 'c', 'victim', 'none') });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(put, del), { maxLength: 12 }), async (ops) => {
        const d = await mkdtemp(join(tmpdir(), 'nexus-mkt-reload-'));
        const f = join(d, 'listings.json');
        const live = await buildMarketplaceServer({ apiKey: KEY, dataFile: f });
        try {
          for (const o of ops) {
            const url = `/v1/agents/${o.key}`;
            if (o.op === 'DELETE') {
              expect([204, 404]).toContain((await live.inject({ method: 'DELETE', url, headers: auth })).statusCode);
              continue;
            }
            const payload = JSON.stringify(card(o.card));
            const text = o.deep === null ? payload : payload.replace('"parameters":{', `"parameters":{"deep":${'['.repeat(o.deep)}${']'.repeat(o.deep)},`);
            const r = await live.inject({ method: 'PUT', url, headers: { ...auth, 'content-type': 'application/json' }, payload: text });
            expect([200, 201, 400]).toContain(r.statusCode);
          }
          const served = await list(live);
          const restarted = await buildMarketplaceServer({ apiKey: KEY, dataFile: f });
          expect(await list(restarted)).toEqual(served);
          await restarted.close();
        } finally {
          await live.close();
          await rm(d, { recursive: true, force: true });
        }
      }),
      { numRuns: 60 },
    );
  }, 120_000);
});
