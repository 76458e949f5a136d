import http from 'node:http';
import { Writable } from 'node:stream';
import pLimit from 'p-limit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { buildServer, type ManagerApp } from '../../src/server/app.js';
import { createToken, revokeToken } from '../../src/server/tokens.js';
import { rawRequest } from '../helpers/raw-http.js';
import { BOOTSTRAP, probeRoutes, tempWorkspace } from '../helpers/manager.js';

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const HOUR = 3600_000;

describe('manager auth matrix (issue 9 §3)', () => {
  let app: ManagerApp;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    const workspace = await tempWorkspace();
    app = await buildServer({ workspace, bootstrapToken: BOOTSTRAP, limits: { api: { perMinute: 100_000 } }, plugins: { api: [probeRoutes()] } });
    for (const scope of ['viewer', 'operator', 'admin'] as const) tokens[scope] = (await createToken({ scope, ttl: '1h' }, { workspace })).token;
    // signed an hour ago with a 30-minute lifetime: expired now
    tokens.expired = (await createToken({ scope: 'admin', ttl: '30m' }, { workspace, clock: new ManualClock(Date.now() - HOUR) })).token;
    const revoked = await createToken({ scope: 'admin', ttl: '1h' }, { workspace });
    await revokeToken({ jti: revoked.jti }, { workspace });
    tokens.revoked = revoked.token;
    // same claims, another workspace's key: a valid JWT with the wrong signature
    tokens.foreign = (await createToken({ scope: 'admin', ttl: '1h' }, { workspace: await tempWorkspace() })).token;
    // the admin token with its signature's last characters changed
    tokens.tampered = tokens.admin!.slice(0, -4) + (tokens.admin!.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    // an unsigned token (alg none) claiming admin
    const [, payload] = tokens.admin!.split('.');
    tokens.unsigned = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${payload}.`;
  });
  afterAll(() => app.close());

  const routes = [
    { method: 'GET', url: '/api/v1/probe/read', need: 'viewer' },
    { method: 'POST', url: '/api/v1/probe/act', need: 'operator' },
    { method: 'POST', url: '/api/v1/probe/create', need: 'admin' },
    { method: 'GET', url: '/api/v1/tokens', need: 'admin' },
    { method: 'GET', url: '/api/v1/openapi.json', need: 'viewer' },
    { method: 'GET', url: '/metrics', need: 'viewer' },
  ] as const;
  const rank = { viewer: 0, operator: 1, admin: 2 } as const;

  it('no token, garbage, wrong signature, tampered, unsigned, expired and revoked tokens get 401 with WWW-Authenticate: Bearer on every route', async () => {
    const bad: [string, Record<string, string>][] = [
      ['none', {}],
      ['empty bearer', { authorization: 'Bearer ' }],
      ['garbage', bearer('not-a-token')],
      ['basic scheme', { authorization: `Basic ${Buffer.from(`admin:${BOOTSTRAP}`).toString('base64')}` }],
      ['bootstrap with a suffix', bearer(`${BOOTSTRAP}x`)],
      ...(['foreign', 'tampered', 'unsigned', 'expired', 'revoked'] as const).map((k) => [k, bearer(tokens[k]!)] as [string, Record<string, string>]),
    ];
    for (const r of routes) {
      for (const [what, headers] of bad) {
        const res = await app.inject({ method: r.method, url: r.url, headers });
        expect(res.statusCode, `${what} ${r.method} ${r.url}`).toBe(401);
        expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
        expect(res.json().error.code).toBe('UNAUTHORIZED');
      }
    }
    const expired = await app.inject({ url: '/api/v1/probe/read', headers: bearer(tokens.expired!) });
    expect(expired.json().error.message).toBe('the token has expired');
    const revoked = await app.inject({ url: '/api/v1/probe/read', headers: bearer(tokens.revoked!) });
    expect(revoked.json().error.message).toBe('the token has been revoked');
  });

  it('each scope reaches exactly the routes of its class and weaker; a weaker scope gets 403', async () => {
    for (const r of routes) {
      for (const scope of ['viewer', 'operator', 'admin'] as const) {
        const res = await app.inject({ method: r.method, url: r.url, headers: bearer(tokens[scope]!) });
        const allowed = rank[scope] >= rank[r.need];
        expect(res.statusCode, `${scope} ${r.method} ${r.url}`).toBe(allowed ? 200 : 403);
        if (!allowed) expect(res.json().error).toMatchObject({ code: 'FORBIDDEN', message: `this route needs scope ${r.need}` });
      }
      expect((await app.inject({ method: r.method, url: r.url, headers: bearer(BOOTSTRAP) })).statusCode, `bootstrap ${r.url}`).toBe(200);
    }
  });

  it('token admin routes: admin mints, lists (never the token) and revokes; the revoked token stops working at once', async () => {
    for (const scope of ['viewer', 'operator'] as const) {
      expect((await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(tokens[scope]!), payload: { scope: 'admin' } })).statusCode).toBe(403);
      expect((await app.inject({ method: 'DELETE', url: '/api/v1/tokens/x', headers: bearer(tokens[scope]!) })).statusCode).toBe(403);
    }
    const created = await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(tokens.admin!), payload: { scope: 'operator', ttl: '30m', label: 'ci' } });
    expect(created.statusCode).toBe(201);
    const minted = created.json() as { token: string; jti: string; scope: string; expiresAt: string };
    expect(Object.keys(minted).sort()).toEqual(['expiresAt', 'jti', 'scope', 'token']);
    expect((await app.inject({ method: 'POST', url: '/api/v1/probe/act', headers: bearer(minted.token) })).statusCode).toBe(200);
    const list = await app.inject({ url: '/api/v1/tokens', headers: bearer(tokens.admin!) });
    expect(list.body).not.toContain(minted.token);
    for (const t of Object.values(tokens)) expect(list.body).not.toContain(t.split('.')[2] || t);
    expect(list.json().tokens).toContainEqual({ jti: minted.jti, scope: 'operator', label: 'ci', issuedAt: expect.any(String), expiresAt: minted.expiresAt, revoked: false });
    const del = await app.inject({ method: 'DELETE', url: `/api/v1/tokens/${minted.jti}`, headers: bearer(tokens.admin!) });
    expect(del.json()).toEqual({ jti: minted.jti, alreadyRevoked: false });
    expect((await app.inject({ method: 'POST', url: '/api/v1/probe/act', headers: bearer(minted.token) })).statusCode).toBe(401);
    expect((await app.inject({ method: 'DELETE', url: '/api/v1/tokens/00000000-0000-0000-0000-000000000000', headers: bearer(tokens.admin!) })).json().error.code).toBe('TOKEN_NOT_FOUND');
    expect((await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(tokens.admin!), payload: { scope: 'root' } })).statusCode).toBe(400);
    expect((await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(tokens.admin!), payload: { scope: 'viewer', ttl: '1.5h' } })).statusCode).toBe(400);
  });

  it('a route that declares no scope is refused to everyone, admin included (default deny)', async () => {
    for (const t of [tokens.admin!, BOOTSTRAP]) {
      const res = await app.inject({ url: '/api/v1/probe/none', headers: bearer(t) });
      expect(res.statusCode).toBe(403);
      expect(res.json().error.code).toBe('FORBIDDEN');
    }
  });

  it('the public health route needs no token and says nothing else', async () => {
    const res = await app.inject({ url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('every route in the OpenAPI document but /health answers 401 without a token', async () => {
    const doc = (await app.inject({ url: '/api/v1/openapi.json', headers: bearer(BOOTSTRAP) })).json() as { paths: Record<string, Record<string, unknown>> };
    const seen: string[] = [];
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const method of Object.keys(methods)) {
        const res = await app.inject({ method: method.toUpperCase() as 'GET', url: path.replace('{jti}', 'x') });
        seen.push(`${method} ${path}`);
        expect(res.statusCode, `${method} ${path}`).toBe(path === '/health' ? 200 : 401);
      }
    }
    expect(seen).toEqual(expect.arrayContaining(['post /api/v1/tokens', 'delete /api/v1/tokens/{jti}', 'get /api/v1/probe/read', 'get /metrics']));
  });
});

describe('auth is by route, however the path is spelled (raw socket)', () => {
  let app: ManagerApp;
  let base: string;
  beforeAll(async () => {
    app = await buildServer({ workspace: await tempWorkspace(), bootstrapToken: BOOTSTRAP, limits: { api: { perMinute: 100_000 } }, plugins: { api: [probeRoutes()] } });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(() => app.close());

  const spellings = (p: string): string[] => {
    const [first, ...rest] = p.slice(1).split('/');
    const tail = rest.join('/');
    return [
      p, `/%${first!.charCodeAt(0).toString(16)}${p.slice(2)}`, p.replace('/v1/', '/v%31/'), p.replace(/\/([a-z])([a-z]*)$/, (_m, c: string, r: string) => `/%${c.charCodeAt(0).toString(16)}${r}`),
      `/${p}`, p.replace('/api/', '/api//'), `/.${p}`, `/x/..${p}`, p.replace(/\/([^/]+)$/, '/./$1'), `/%2e${p}`, p.toUpperCase(), `/${first!.toUpperCase()}/${tail}`,
      `${p}/`, `/${first}%2f${tail}`, `${p}?x=1`, `${p};x`, `${p}%00`, `${p}%20`, `${p}#frag`,
    ];
  };

  // 5 paths x 15-19 distinct spellings x 4 methods x 3 header sets = 1,080 requests, each on a
  // fresh TCP connection (rawRequest: agent false). One after another that took 2.5 s in a loaded
  // full unit run and once passed vitest's default 5 s on a busy 2-core machine: they run 8 at a
  // time (the same requests and checks) within a budget sized for that amount of work.
  it('no spelling of a protected path answers anything but 401/404 (or 400) without a token, and the data never leaks', async () => {
    const limit = pLimit(8);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const checks: Promise<void>[] = [];
    for (const p of ['/api/v1/tokens', '/api/v1/probe/read', '/api/v1/probe/create', '/api/v1/openapi.json', '/metrics']) {
      for (const path of new Set(spellings(p))) {
        for (const method of ['GET', 'POST', 'DELETE', 'HEAD']) {
          for (const headers of [{} as Record<string, string>, bearer('wrong'), { authorization: `bearer${BOOTSTRAP}` }]) {
            checks.push(
              limit(async () => {
                const r = await rawRequest(base, method, path, { headers, agent });
                expect([400, 401, 404], `${method} ${path} ${JSON.stringify(headers)} -> ${r.status} ${r.body}`).toContain(r.status);
                expect(r.body).not.toMatch(/"ok":true|"tokens"|nexus_manager_http|"openapi"/);
              }),
            );
          }
        }
      }
    }
    expect(checks).toHaveLength(1080);
    await Promise.all(checks).finally(() => agent.destroy());
  }, 60_000);

  it('with a token, the spellings the router decodes reach the route (so the check is by route, not by URL)', async () => {
    const reached: string[] = [];
    for (const path of spellings('/api/v1/probe/read')) {
      const r = await rawRequest(base, 'GET', path, { headers: bearer(BOOTSTRAP) });
      if (r.status === 200) reached.push(path);
      else expect([400, 404], `${path} -> ${r.status}`).toContain(r.status);
    }
    expect(reached).toEqual(expect.arrayContaining(['/api/v1/probe/read', '/%61pi/v1/probe/read', '/api/v%31/probe/read', '/api/v1/probe/%72ead']));
  });
});

describe('rate limits per IP and per token (429 with Retry-After)', () => {
  it('an IP gets 429 after the limit, before its token is even checked; other IPs are unaffected', async () => {
    const app = await buildServer({ workspace: await tempWorkspace(), bootstrapToken: BOOTSTRAP, limits: { api: { perMinute: 3 } }, plugins: { api: [probeRoutes()] } });
    const from = (ip: string, headers: Record<string, string>) => app.inject({ url: '/api/v1/probe/read', headers, remoteAddress: ip });
    for (let i = 0; i < 3; i++) expect((await from('10.0.0.1', bearer('guess-' + i))).statusCode).toBe(401);
    const limited = await from('10.0.0.1', bearer(BOOTSTRAP));
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(limited.json().error.code).toBe('RATE_LIMITED');
    expect((await from('10.0.0.2', bearer(BOOTSTRAP))).statusCode).toBe(200);
    await app.close();
  });

  it('a token gets 429 after the limit even when it comes from fresh IPs; another token is unaffected', async () => {
    const workspace = await tempWorkspace();
    const app = await buildServer({ workspace, bootstrapToken: BOOTSTRAP, limits: { api: { perMinute: 3 } }, plugins: { api: [probeRoutes()] } });
    const { token } = await createToken({ scope: 'viewer', ttl: '1h' }, { workspace });
    const codes: number[] = [];
    for (let i = 1; i <= 5; i++) codes.push((await app.inject({ url: '/api/v1/probe/read', headers: bearer(token), remoteAddress: `10.1.0.${i}` })).statusCode);
    expect(codes).toEqual([200, 200, 200, 429, 429]);
    expect((await app.inject({ url: '/api/v1/probe/read', headers: bearer(BOOTSTRAP), remoteAddress: '10.1.0.9' })).statusCode).toBe(200);
    await app.close();
  });

  it('routes of the gateway budget count apart from the management API', async () => {
    const gatewayRoute = async (app: import('fastify').FastifyInstance) => {
      const { withErrors } = await import('../../src/server/schemas.js');
      const { Type } = await import('typebox');
      app.post('/probe/execute', { config: { scope: 'operator', limit: 'gateway' }, schema: { response: withErrors({ 200: Type.Object({ ok: Type.Boolean() }) }) } }, async () => ({ ok: true }));
    };
    const app = await buildServer({ workspace: await tempWorkspace(), bootstrapToken: BOOTSTRAP, limits: { api: { perMinute: 2 }, gateway: { perMinute: 4 } }, plugins: { api: [probeRoutes(), gatewayRoute] } });
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) codes.push((await app.inject({ method: 'POST', url: '/api/v1/probe/execute', headers: bearer(BOOTSTRAP) })).statusCode);
    expect(codes).toEqual([200, 200, 200, 200, 429]);
    expect((await app.inject({ url: '/api/v1/probe/read', headers: bearer(BOOTSTRAP) })).statusCode).toBe(200);
    await app.close();
  });
});

describe('no token ever reaches a log or a response', () => {
  it('request logs at trace level hold no token (header, query, minted), and errors show no secrets', async () => {
    const workspace = await tempWorkspace();
    let out = '';
    const stream = new Writable({ write: (chunk, _enc, done) => ((out += String(chunk)), done()) });
    const app = await buildServer({ workspace, bootstrapToken: BOOTSTRAP, log: { level: 'trace', stream }, plugins: { api: [probeRoutes()] } });
    const { token } = await createToken({ scope: 'admin', ttl: '1h' }, { workspace });
    const seen = [BOOTSTRAP, token];
    for (const t of seen) {
      await app.inject({ url: '/api/v1/probe/read', headers: bearer(t) });
      await app.inject({ url: `/api/v1/probe/read?token=${t}&x=1`, headers: bearer(t) });
      await app.inject({ url: '/api/v1/probe/boom', headers: bearer(t) });
      await app.inject({ url: '/api/v1/probe/read', headers: bearer(t + 'x') });
      await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${t}`, cookie: `session=${t}` } });
    }
    const minted = await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: bearer(token), payload: { scope: 'viewer' } });
    seen.push(minted.json().token);
    await app.close();
    expect(out).toContain('"url":"/api/v1/probe/read?token=[redacted]&x=1"');
    expect(out).toContain('"authorization":"[redacted]"');
    expect(out.split('\n').length).toBeGreaterThan(20);
    for (const t of seen) {
      expect(out).not.toContain(t);
      expect(out).not.toContain(t.split('.').at(-1)!);
    }
  });

  it('responses carry only their schema fields, and unexpected errors are masked as 500 INTERNAL', async () => {
    const app = await buildServer({ workspace: await tempWorkspace(), bootstrapToken: BOOTSTRAP, plugins: { api: [probeRoutes()] } });
    const leak = await app.inject({ url: '/api/v1/probe/leak', headers: bearer(BOOTSTRAP) });
    expect(leak.json()).toEqual({ ok: true });
    const boom = await app.inject({ url: '/api/v1/probe/boom', headers: bearer(BOOTSTRAP) });
    expect(boom.statusCode).toBe(500);
    expect(boom.json()).toEqual({ error: { code: 'INTERNAL', message: 'internal error' } });
    const down = await app.inject({ url: '/api/v1/probe/unavailable', headers: bearer(BOOTSTRAP) });
    expect(down.statusCode).toBe(503);
    expect(down.headers['retry-after']).toBe('5');
    expect(down.json().error).toMatchObject({ code: 'AGENT_UNAVAILABLE', message: 'no healthy replica of agent x' });
    const badJson = await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { ...bearer(BOOTSTRAP), 'content-type': 'application/json' }, payload: '{"scope":' });
    expect(badJson.statusCode).toBe(400);
    expect(badJson.json().error.code).toBe('BAD_REQUEST');
    const unauthorized = await app.inject({ url: '/api/v1/probe/read', headers: bearer('secret-looking-wrong-token') });
    expect(unauthorized.body).not.toContain('secret-looking-wrong-token');
    await app.close();
  });
});
