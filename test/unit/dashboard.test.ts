import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
// the browser code's pure part (plain ES modules without DOM use)
// @ts-expect-error: a JavaScript module of the dashboard, without type declarations
import { FieldError, fieldsOf, valuesToParameters } from '../../dashboard/src/schema-form.js';
import { loadConfig } from '../../src/config/config.js';
import { FakeEngine } from '../../src/engine/fake.js';
import { DASHBOARD_CSP } from '../../src/server/dashboard.js';
import { createManager, type Manager } from '../../src/server/manager.js';
import { createToken } from '../../src/server/tokens.js';
import { BOOTSTRAP } from '../helpers/manager.js';

describe('tool forms from JSON Schema (dashboard/src/schema-form.js)', () => {
  const schema = {
    type: 'object',
    required: ['data', 'mode'],
    properties: {
      data: { type: 'array', items: { type: 'number' } },
      tags: { type: 'array', items: { type: 'string' } },
      mode: { type: 'string', enum: ['fast', 'exact'] },
      limit: { type: 'integer', minimum: 1 },
      ratio: { type: 'number' },
      verbose: { type: 'boolean' },
      name: { type: 'string', maxLength: 40 },
      code: { type: 'string' },
      options: { type: 'object' },
    },
  };
  const fields = fieldsOf(schema);

  it('one field per property with its kind', () => {
    expect(fields.map((f: { name: string; kind: string; required: boolean }) => [f.name, f.kind, f.required])).toEqual([
      ['data', 'numbers', true],
      ['tags', 'strings', false],
      ['mode', 'enum', true],
      ['limit', 'integer', false],
      ['ratio', 'number', false],
      ['verbose', 'boolean', false],
      ['name', 'string', false],
      ['code', 'text', false],
      ['options', 'json', false],
    ]);
  });

  it('values become typed parameters; empty optional fields are left out', () => {
    expect(valuesToParameters(fields, { data: '1, 2,3', tags: '["a","b"]', mode: 'fast', limit: '3', ratio: '0.5', verbose: true, name: '', code: 'x', options: '{"k":1}' })).toEqual({
      data: [1, 2, 3],
      tags: ['a', 'b'],
      mode: 'fast',
      limit: 3,
      ratio: 0.5,
      verbose: true,
      code: 'x',
      options: { k: 1 },
    });
    expect(valuesToParameters(fields, { data: '[1,2,3,4,5]', mode: 'exact', verbose: false })).toEqual({ data: [1, 2, 3, 4, 5], mode: 'exact', verbose: false });
  });

  it('a value that does not fit names its field', () => {
    const bad = (raw: Record<string, unknown>) => {
      try {
        valuesToParameters(fields, { data: '1', mode: 'fast', ...raw });
      } catch (e) {
        expect(e).toBeInstanceOf(FieldError);
        return `${(e as { field: string }).field} ${(e as Error).message}`;
      }
      return 'accepted';
    };
    expect(bad({ data: '1, x' })).toBe('data holds "x", which is not a number');
    expect(bad({ data: '[1,' })).toBe('data not a valid JSON array');
    expect(bad({ data: '' })).toBe('data is required');
    expect(bad({ limit: '1.5' })).toBe('limit must be a whole number');
    expect(bad({ options: '{' })).toBe('options is not valid JSON');
  });
});

describe('dashboard routes (fake engine, app.inject)', () => {
  let dir: string;
  let assets: string;
  let m: Manager;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nexus-dashboard-'));
    assets = await mkdtemp(join(tmpdir(), 'nexus-dashboard-assets-'));
    await writeFile(join(assets, 'index.html'), '<!doctype html><script type="module" src="/assets/app.js"></script>');
    await writeFile(join(assets, 'app.js'), 'export {};');
    m = await createManager({ config: loadConfig(dir, { NEXUS_OFFLINE: 'always' }), env: { NEXUS_MANAGER_TOKEN: BOOTSTRAP }, engine: new FakeEngine(), dashboardDir: assets });
  });
  afterEach(async () => {
    await m.close();
    await rm(dir, { recursive: true, force: true });
    await rm(assets, { recursive: true, force: true });
  });

  it('GET / and /assets/{file}: content types, the CSP, no other file', async () => {
    const page = await m.app.inject({ method: 'GET', url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toBe(DASHBOARD_CSP);
    expect(DASHBOARD_CSP).toContain("script-src 'self'");
    expect(DASHBOARD_CSP).not.toContain('unsafe-inline');
    const js = await m.app.inject({ method: 'GET', url: '/assets/app.js' });
    expect([js.statusCode, js.headers['content-type'], js.body]).toEqual([200, 'text/javascript; charset=utf-8', 'export {};']);
    for (const url of ['/assets/index.html', '/assets/..%2F..%2Fetc%2Fpasswd', '/assets/nope.js']) expect((await m.app.inject({ method: 'GET', url })).statusCode, url).toBe(404);
  });

  it('GET / without a built dashboard: 503 DASHBOARD_NOT_BUILT with the command that builds it', async () => {
    const empty = await createManager({ config: loadConfig(dir, { NEXUS_OFFLINE: 'always' }), env: { NEXUS_MANAGER_TOKEN: BOOTSTRAP }, engine: new FakeEngine(), dashboardDir: join(dir, 'absent') });
    try {
      const r = await empty.app.inject({ method: 'GET', url: '/' });
      expect(r.statusCode).toBe(503);
      expect(r.json().error).toMatchObject({ code: 'DASHBOARD_NOT_BUILT', hint: expect.stringContaining('npm run build') });
    } finally {
      await empty.close();
    }
  });

  it('GET /api/v1/whoami: the scope, label and expiry of a signed token; the scope alone for the bootstrap token; 401 without one', async () => {
    const viewer = await createToken({ scope: 'viewer', label: 'wall screen' }, { workspace: dir });
    const who = (token: string) => m.app.inject({ method: 'GET', url: '/api/v1/whoami', headers: { authorization: `Bearer ${token}` } });
    expect((await who(viewer.token)).json()).toEqual({ scope: 'viewer', label: 'wall screen', expiresAt: viewer.expiresAt });
    expect((await who(BOOTSTRAP)).json()).toEqual({ scope: 'admin' });
    expect((await who('nope')).statusCode).toBe(401);
  });

  it('GET /api/v1/agents/{name}/tools: 404 for an unknown agent, 503 for one with no replica in rotation', async () => {
    const get = (name: string) => m.app.inject({ method: 'GET', url: `/api/v1/agents/${name}/tools`, headers: { authorization: `Bearer ${BOOTSTRAP}` } });
    expect((await get('Ghost')).json().error.code).toBe('AGENT_NOT_FOUND');
    expect((await m.app.inject({ method: 'POST', url: '/api/v1/agents', headers: { authorization: `Bearer ${BOOTSTRAP}` }, payload: { name: 'DataAgent' } })).statusCode).toBe(201);
    const r = await get('DataAgent');
    expect(r.statusCode).toBe(503);
    expect(r.json().error.code).toBe('AGENT_UNAVAILABLE');
  });
});
