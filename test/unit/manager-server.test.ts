import { spawn } from 'node:child_process';
import { chmod, readFile, stat, writeFile, access } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { buildServer } from '../../src/server/app.js';
import { isLoopbackHost, serveManager } from '../../src/server/serve.js';
import { createToken, keyPath, listTokens, loadOrCreateKey, parseTtl, revokeToken } from '../../src/server/tokens.js';
import { BOOTSTRAP, gate, probeRoutes, tempWorkspace } from '../helpers/manager.js';
import { validateOpenApi31 } from '../helpers/schemas.js';

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

async function rejection(p: Promise<unknown>): Promise<AppError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

describe('OpenAPI 3.1 document', () => {
  it('is a valid OpenAPI 3.1 document (OAI schema 2025-11-23), every schema in it compiles as JSON Schema 2020-12, and every route has responses', async () => {
    const app = await buildServer({ workspace: await tempWorkspace(), bootstrapToken: BOOTSTRAP, plugins: { api: [probeRoutes()] } });
    const doc = (await app.inject({ url: '/api/v1/openapi.json', headers: bearer(BOOTSTRAP) })).json() as Record<string, any>;
    await app.close();
    expect(doc.openapi).toBe('3.1.0');
    expect(validateOpenApi31(doc)).toEqual([]);
    expect(validateOpenApi31({ ...doc, openapi: '3.0.3' })).not.toEqual([]);
    const health = doc.paths['/health'].get.responses['200'].content['application/json'];
    expect(validateOpenApi31({ ...doc, paths: { '/health': { get: { responses: { 200: { description: 'x', content: { 'application/json': { ...health, schema: 5 } } } } } } } })).not.toEqual([]);
    const ajv = new Ajv2020({ strict: false });
    ajv.addFormat('date-time', true);
    let schemas = 0;
    for (const [path, methods] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(methods)) {
        expect(Object.keys(op.responses ?? {}), `${method} ${path}`).toContain('200' in op.responses ? '200' : '201');
        for (const res of Object.values(op.responses as Record<string, any>)) {
          for (const media of Object.values((res.content ?? {}) as Record<string, { schema: object }>)) {
            ajv.compile(media.schema);
            schemas++;
          }
        }
      }
    }
    expect(schemas).toBeGreaterThan(20);
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.paths['/health'].get.security).toEqual([]);
  });

  it('a route without a response schema is refused when the server is built', async () => {
    const bare = async (app: import('fastify').FastifyInstance) => void app.get('/bare', { config: { scope: 'viewer' } }, async () => ({ any: 'thing' }));
    await expect(buildServer({ workspace: await tempWorkspace(), plugins: { api: [bare] } })).rejects.toThrow(/declares no response schema/);
  });
});

describe('graceful close', () => {
  it('an in-flight request finishes with its answer; close waits for it, then runs onClose hooks', async () => {
    const g = gate();
    const events: string[] = [];
    const slow = { wait: async () => (await g.wait(), void events.push('answered')) };
    const hooks = async (app: import('fastify').FastifyInstance) => void app.addHook('onClose', async () => void events.push('onClose'));
    const app = await buildServer({ workspace: await tempWorkspace(), bootstrapToken: BOOTSTRAP, plugins: { api: [probeRoutes(slow), hooks] } });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const inflight = fetch(`${base}/api/v1/probe/slow`, { headers: bearer(BOOTSTRAP) });
    await g.entered;
    const closing = app.close().then(() => void events.push('closed'));
    await new Promise((r) => setTimeout(r, 50));
    expect(events).toEqual([]);
    g.open();
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(res.headers.get('connection')).toBe('close');
    expect(await res.json()).toEqual({ ok: true });
    await closing;
    expect(events).toEqual(['answered', 'onClose', 'closed']);
    await expect(fetch(`${base}/health`)).rejects.toThrow();
  });

  it('SIGTERM stops a serving manager process after its in-flight request is answered (exit 0)', async () => {
    const workspace = await tempWorkspace();
    const child = spawn(process.execPath, ['--import', 'tsx', join(PACKAGE_ROOT, 'test/helpers/manager-child.ts'), workspace], {
      cwd: PACKAGE_ROOT,
      env: { ...process.env, NEXUS_MANAGER_TOKEN: BOOTSTRAP },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const waitFor = (text: string) => new Promise<void>((resolve, reject) => {
      const check = () => (out.includes(text) ? resolve() : undefined);
      child.stdout.on('data', (c: Buffer) => ((out += String(c)), check()));
      child.on('exit', () => reject(new Error(`child exited before '${text}': ${out}`)));
      check();
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    await waitFor('manager listening on ');
    const url = /manager listening on (\S+)/.exec(out)![1]!;
    const inflight = fetch(`${url}/api/v1/probe/slow`, { headers: bearer(BOOTSTRAP) });
    await waitFor('entered');
    child.kill('SIGTERM');
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
    expect(await exited).toBe(0);
    expect(out).toContain('stopped');
  }, 60_000);
});

describe('serveManager host guard', () => {
  it('refuses a non-loopback host without NEXUS_MANAGER_TOKEN and creates nothing', async () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.10', 'example.com']) {
      const workspace = await tempWorkspace();
      const err = await rejection(serveManager({ workspace, host, port: 0, env: {}, handleSignals: false, print: () => undefined }));
      expect(err.code).toBe('SERVE_HOST_UNPROTECTED');
      expect(err.hint).toContain('NEXUS_MANAGER_TOKEN');
      await expect(access(join(workspace, '.nexus'))).rejects.toThrow();
    }
  });

  it('listens on a non-loopback host when a token is configured, and on loopback without one', async () => {
    const lines: string[] = [];
    const open = await serveManager({ workspace: await tempWorkspace(), host: '0.0.0.0', port: 0, env: { NEXUS_MANAGER_TOKEN: BOOTSTRAP }, handleSignals: false, print: (l) => lines.push(l) });
    const local = await serveManager({ workspace: await tempWorkspace(), host: '127.0.0.1', port: 0, env: {}, handleSignals: false, print: (l) => lines.push(l) });
    expect(lines).toEqual([`manager listening on ${open.url}`, `manager listening on ${local.url}`]);
    expect((await fetch(`${local.url}/health`)).status).toBe(200);
    await Promise.all([open.close(), local.close()]);
    await Promise.all([open.closed, local.closed]);
  });

  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', 'localhost.example.com', '::ffff:10.0.0.1']) expect(isLoopbackHost(h), h).toBe(false);
  });

  it('refuses a bootstrap token shorter than 16 characters', async () => {
    const err = await rejection(buildServer({ workspace: await tempWorkspace(), bootstrapToken: 'short' }));
    expect(err.code).toBe('CONFIG_INVALID');
  });
});

describe('signing key and token store', () => {
  it('creates a 32-byte key with mode 0600 once, the same for racing callers', async () => {
    const workspace = await tempWorkspace();
    const keys = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateKey(workspace)));
    const st = await stat(keyPath(workspace));
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.size).toBe(32);
    for (const k of keys) expect(Buffer.from(k).equals(Buffer.from(keys[0]!))).toBe(true);
    expect(Buffer.from(await loadOrCreateKey(workspace)).equals(await readFile(keyPath(workspace)))).toBe(true);
  });

  it('refuses a key file readable by group or others (0644, 0640) and one of the wrong size', async () => {
    const workspace = await tempWorkspace();
    await loadOrCreateKey(workspace);
    for (const mode of [0o644, 0o640, 0o604]) {
      await chmod(keyPath(workspace), mode);
      expect((await rejection(loadOrCreateKey(workspace))).code).toBe('MANAGER_KEY_INSECURE');
      expect((await rejection(buildServer({ workspace, bootstrapToken: BOOTSTRAP }))).code).toBe('MANAGER_KEY_INSECURE');
      expect((await rejection(createToken({ scope: 'viewer' }, { workspace }))).code).toBe('MANAGER_KEY_INSECURE');
    }
    await writeFile(keyPath(workspace), 'short', { mode: 0o600 });
    await chmod(keyPath(workspace), 0o600);
    expect((await rejection(loadOrCreateKey(workspace))).message).toMatch(/5 bytes/);
  });

  it('parses ttl strictly', () => {
    expect(parseTtl('30m')).toBe(1_800_000);
    expect(parseTtl('24h')).toBe(86_400_000);
    expect(parseTtl('90s')).toBe(90_000);
    expect(parseTtl('365d')).toBe(365 * 86_400_000);
    for (const bad of ['', '0m', '1.5h', '1h30m', '100', '-1h', '1 h', '1H', '366d', 'h', '1w', '01h']) expect(() => parseTtl(bad), bad).toThrow(AppError);
  });

  it('createToken records what it issued (never the token) in 0600 files; a revocation written by another process is honoured on the next request', async () => {
    const workspace = await tempWorkspace();
    const app = await buildServer({ workspace, plugins: { api: [probeRoutes()] } });
    const t = await createToken({ scope: 'operator', ttl: '2h', label: 'deploy bot', sub: 'ci' }, { workspace });
    expect(Date.parse(t.expiresAt) - Date.now()).toBeGreaterThan(7_100_000);
    for (const f of ['tokens.json', 'revoked-tokens.json']) {
      const file = join(workspace, '.nexus', f);
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect(await readFile(file, 'utf8')).not.toContain(t.token);
    }
    expect(await listTokens({ workspace })).toEqual([{ jti: t.jti, scope: 'operator', label: 'deploy bot', sub: 'ci', issuedAt: expect.any(String), expiresAt: t.expiresAt, revoked: false }]);
    expect((await app.inject({ method: 'POST', url: '/api/v1/probe/act', headers: bearer(t.token) })).statusCode).toBe(200);
    expect(await revokeToken({ token: t.token }, { workspace })).toEqual({ jti: t.jti, alreadyRevoked: false });
    expect(await revokeToken({ jti: t.jti }, { workspace })).toEqual({ jti: t.jti, alreadyRevoked: true });
    expect((await app.inject({ method: 'POST', url: '/api/v1/probe/act', headers: bearer(t.token) })).statusCode).toBe(401);
    expect((await listTokens({ workspace }))[0]!.revoked).toBe(true);
    await app.close();
  });

  it('expired entries are pruned from both files on the next write', async () => {
    const workspace = await tempWorkspace();
    const { ManualClock } = await import('../../src/clock.js');
    const clock = new ManualClock(Date.now());
    const old = await createToken({ scope: 'viewer', ttl: '1m' }, { workspace, clock });
    await revokeToken({ jti: old.jti }, { workspace, clock });
    clock.advance(120_000);
    await createToken({ scope: 'viewer', ttl: '1h' }, { workspace, clock });
    expect(await readFile(join(workspace, '.nexus', 'tokens.json'), 'utf8')).not.toContain(old.jti);
    expect(await readFile(join(workspace, '.nexus', 'revoked-tokens.json'), 'utf8')).not.toContain(old.jti);
  });

  it('bad input changes nothing', async () => {
    const workspace = await tempWorkspace();
    expect((await rejection(createToken({ scope: 'root' as 'admin' }, { workspace }))).code).toBe('USAGE');
    expect((await rejection(createToken({ scope: 'viewer', ttl: '5y' }, { workspace }))).code).toBe('USAGE');
    expect((await rejection(createToken({ scope: 'viewer', label: 'x'.repeat(101) }, { workspace }))).code).toBe('USAGE');
    await expect(access(join(workspace, '.nexus'))).rejects.toThrow();
    expect((await rejection(revokeToken({ token: 'not.a.token' }, { workspace }))).code).toBe('UNAUTHORIZED');
  });
});
