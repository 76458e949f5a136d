import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import getPort from 'get-port';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, resolveConfig, type Config } from '../../src/config/config.js';
import { LABEL } from '../../src/conventions.js';
import { AGENT_TOKEN_MOUNT, agentContainerSpec, containerManagerUrl, replicaContainerSpec } from '../../src/fleet/containers.js';
import type { AgentRecord } from '../../src/registry/registry.js';
import { agentTokenFromEnv } from '../../src/runtime/main.js';
import { FakeEngine } from '../../src/engine/fake.js';
import { agentTokenFile, agentTokenMatches, AGENT_TOKEN_RE, hashAgentToken, issueAgentToken, newAgentToken, prepareTokenMount, revokeAgentToken, rotateAgentToken } from '../../src/fleet/agent-tokens.js';
import { createAgent } from '../../src/fleet/create.js';
import { LocalRegistry } from '../../src/registry/local.js';
import { agentRecordSchema } from '../../src/registry/record.js';
import { agentSocketUrl, reconnectDelay } from '../../src/runtime/connect.js';
import { HelloSchema } from '../../src/server/connections.js';
import { createManager, servedManagerUrl } from '../../src/server/manager.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { eventually } from '../helpers/wait.js';
import { BOOTSTRAP } from '../helpers/manager.js';

describe('per-agent tokens', () => {
  let dir: string;
  let config: Config;
  let registry: LocalRegistry;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nexus-agent-tokens-'));
    const port = await getPort();
    config = loadConfig(dir, { NEXUS_PORT_RANGE: `${port}-${port}` });
    registry = new LocalRegistry(dir);
  });
  afterEach(async () => {
    await registry.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('create shows the token once and stores only its sha256; the clear copy for containers is in a 0700 folder, readable through its mount (0644)', async () => {
    const r = await createAgent({ config, registry, engine: new FakeEngine() }, { name: 'DataAgent', capabilities: ['data'] });
    expect(r.agentToken).toMatch(AGENT_TOKEN_RE);
    const stored = await readFile(join(dir, '.nexus', 'registry.json'), 'utf8');
    expect(stored).not.toContain(r.agentToken);
    expect(r.agent.agentToken).toEqual({ scheme: 'sha256', hash: expect.stringMatching(/^[0-9a-f]{64}$/), issuedAt: expect.any(String) });
    expect(agentTokenMatches(r.agent.agentToken, r.agentToken)).toBe(true);
    const file = agentTokenFile(dir, 'data-agent');
    expect((await stat(file)).mode & 0o777).toBe(0o644);
    expect((await stat(dirname(file))).mode & 0o777).toBe(0o700);
    expect((await readFile(file, 'utf8')).trim()).toBe(r.agentToken);
  });

  it('rotate replaces the token (the old one no longer matches); revoke leaves none', async () => {
    const r = await createAgent({ config, registry, engine: new FakeEngine() }, { name: 'DataAgent', capabilities: ['data'] });
    const rotated = await rotateAgentToken({ config, registry }, { name: 'DataAgent' });
    expect(rotated.token).not.toBe(r.agentToken);
    const rec = (await registry.get('data-agent'))!;
    expect(agentTokenMatches(rec.agentToken, r.agentToken)).toBe(false);
    expect(agentTokenMatches(rec.agentToken, rotated.token)).toBe(true);
    expect(await revokeAgentToken({ config, registry }, { name: 'data-agent' })).toEqual({ agent: 'data-agent', revoked: true });
    expect((await registry.get('data-agent'))!.agentToken).toBeUndefined();
    await expect(stat(agentTokenFile(dir, 'data-agent'))).rejects.toThrow();
    await expect(rotateAgentToken({ config, registry }, { name: 'Nope' })).rejects.toMatchObject({ code: 'AGENT_NOT_FOUND' });
  });

  it('the record schema refuses a hash that is not a sha256 digest, and a clear token in its place', () => {
    const base = { name: 'A', slug: 'a', description: '', capabilities: [], category: 'general', model: 'none', version: '1.0.0', port: 8081, desired: 'stopped', status: 'created', createdAt: 'x', updatedAt: 'x' };
    const token = newAgentToken();
    expect(agentRecordSchema.safeParse({ ...base, agentToken: hashAgentToken(token, 'x') }).success).toBe(true);
    expect(agentRecordSchema.safeParse({ ...base, agentToken: { scheme: 'sha256', hash: token, issuedAt: 'x' } }).success).toBe(false);
    expect(agentRecordSchema.safeParse({ ...base, agentToken: { ...hashAgentToken(token, 'x'), token } }).success).toBe(false);
  });

  it('tokens of the wrong shape or without a stored hash never match', () => {
    const token = newAgentToken();
    const stored = hashAgentToken(token, 'x');
    expect(agentTokenMatches(undefined, token)).toBe(false);
    expect(agentTokenMatches(stored, `${token}x`)).toBe(false);
    expect(agentTokenMatches(stored, '')).toBe(false);
  });
});

describe('connection protocol (pure parts)', () => {
  it('the HELLO has exactly the source documents fields', () => {
    const hello = { type: 'hello', agent_id: 'a', site: 's', version: '1.0.0', capabilities: ['data'], auth_token: 't' };
    expect(HelloSchema.safeParse(hello).success).toBe(true);
    expect(HelloSchema.safeParse({ ...hello, extra: 1 }).success).toBe(false);
    const { site: _s, ...noSite } = hello;
    expect(HelloSchema.safeParse(noSite).success).toBe(false);
    expect(HelloSchema.safeParse({ ...hello, type: 'welcome' }).success).toBe(false);
  });

  it('reconnect delays grow exponentially to the cap, with the random half as jitter', () => {
    expect([0, 1, 2, 3].map((a) => reconnectDelay(a, 1000, 30_000, () => 0))).toEqual([500, 1000, 2000, 4000]);
    expect([0, 1, 2, 3].map((a) => reconnectDelay(a, 1000, 30_000, () => 1))).toEqual([1000, 2000, 4000, 8000]);
    expect(reconnectDelay(20, 1000, 30_000, () => 1)).toBe(30_000);
    expect(reconnectDelay(20, 1000, 30_000, () => 0)).toBe(15_000);
  });

  it('the socket URL comes from the manager base URL', () => {
    expect(agentSocketUrl('http://10.0.0.5:8070')).toBe('ws://10.0.0.5:8070/ws/agent');
    expect(agentSocketUrl('https://m.example/base/')).toBe('wss://m.example/base/ws/agent');
    expect(agentSocketUrl('ws://h:1/ws/agent')).toBe('ws://h:1/ws/agent');
    expect(() => agentSocketUrl('ftp://h')).toThrow(/http\(s\) or ws\(s\)/);
  });
});

describe('commands and tokens over the API', () => {
  let dir: string;
  beforeEach(async () => void (dir = await mkdtemp(join(tmpdir(), 'nexus-commands-'))));
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('bad commands are refused with one clear error and nothing is sent; rotate needs admin and returns the token once', async () => {
    const port = await getPort();
    const m = await createManager({ config: loadConfig(dir, { NEXUS_PORT_RANGE: `${port}-${port}`, NEXUS_OFFLINE: 'always' }), env: { NEXUS_MANAGER_TOKEN: BOOTSTRAP }, engine: new FakeEngine() });
    try {
      const admin = { authorization: `Bearer ${BOOTSTRAP}` };
      const post = (url: string, payload: object) => m.app.inject({ method: 'POST', url: `/api/v1${url}`, headers: admin, payload });
      const created = await post('/agents', { name: 'DataAgent', capabilities: ['data'] });
      expect(created.statusCode).toBe(201);
      expect(created.json().agentToken).toMatch(AGENT_TOKEN_RE);
      expect(JSON.stringify(created.json().agent)).not.toContain('hash');
      const both = await post('/commands', { verb: 'get_telemetry', agent_targets: ['DataAgent'], capability: 'data' });
      expect(both.statusCode).toBe(400);
      expect(both.json().error.message).toBe('give exactly one of agent_targets and capability');
      expect((await post('/commands', { verb: 'execute', args: {}, agent_targets: ['DataAgent'] })).json().error.message).toMatch(/execute needs args.tool_name/);
      expect((await post('/commands', { verb: 'get_telemetry', agent_targets: ['Ghost'] })).statusCode).toBe(404);
      expect((await post('/commands', { verb: 'get_telemetry', capability: 'nobody_has' })).statusCode).toBe(404);
      expect((await post('/commands', { verb: 'reboot', agent_targets: ['DataAgent'] })).statusCode).toBe(400);
      const missing = await m.app.inject({ method: 'GET', url: '/api/v1/commands/00000000-0000-4000-8000-000000000000', headers: admin });
      expect(missing.json().error.code).toBe('COMMAND_NOT_FOUND');
      const rotated = await post('/agents/DataAgent/token', {});
      expect(rotated.statusCode).toBe(200);
      expect(rotated.json()).toEqual({ agent: 'data-agent', token: expect.stringMatching(AGENT_TOKEN_RE), issuedAt: expect.any(String) });
      const plain = await m.app.inject({ method: 'GET', url: '/ws/agent' });
      expect(plain.statusCode).toBe(426);
    } finally {
      await m.close();
    }
  });
});

describe('runAgent with a manager link (what a container runs)', () => {
  it('serves, dials the manager with the token from NEXUS_AGENT_TOKEN_FILE, and leaves cleanly on SIGTERM', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nexus-run-agent-'));
    const port = await getPort();
    const config = loadConfig(dir, { NEXUS_PORT_RANGE: `${port}-${port}`, NEXUS_OFFLINE: 'always' });
    const registry = new LocalRegistry(dir);
    await registry.create({ name: 'RunAgentLink', slug: 'run-agent-link', description: '', capabilities: ['alpha'], category: 'general', model: 'none', version: '1.0.0' }, { range: { from: port, to: port }, isHostPortFree: async () => true });
    await issueAgentToken({ config, registry }, 'run-agent-link');
    await registry.close();
    const m = await createManager({ config, env: { NEXUS_MANAGER_TOKEN: BOOTSTRAP }, engine: new FakeEngine(), connections: { heartbeatIntervalS: 1 } });
    let child: ChildProcess | undefined;
    try {
      await m.app.listen({ host: '127.0.0.1', port: 0 });
      const managerPort = (m.app.server.address() as { port: number }).port;
      const agentPort = await getPort();
      child = spawn(process.execPath, ['--import', 'tsx', '-e', `import { runAgent } from './src/runtime/main.ts'; await runAgent('test/fixtures/connections/agent-module.ts');`], {
        cwd: PACKAGE_ROOT,
        env: { ...process.env, PORT: String(agentPort), LOG_LEVEL: 'warn', NEXUS_MANAGER_URL: `http://127.0.0.1:${managerPort}`, NEXUS_AGENT_TOKEN: '', NEXUS_AGENT_TOKEN_FILE: agentTokenFile(dir, 'run-agent-link'), NEXUS_AGENT_ID: 'run-agent-link' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let err = '';
      child.stderr!.on('data', (d) => (err += d));
      const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
      const online = await eventually(async () => {
        if (child!.exitCode !== null) throw new Error(`runAgent exited: ${err}`);
        return m.connections.list().find((c) => c.agent === 'run-agent-link' && c.state === 'online');
      }, 30_000, 100).catch((e: unknown) => {
        throw new Error(`${String(e)}: ${err}`);
      });
      expect(online).toMatchObject({ agent: 'run-agent-link', version: '1.0.0', capabilities: ['alpha'] });
      expect((await fetch(`http://127.0.0.1:${agentPort}/health`)).status).toBe(200);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      await eventually(async () => (m.connections.list().find((c) => c.agent === 'run-agent-link')?.state === 'offline' ? true : undefined), 10_000, 50);
    } finally {
      if (child && child.exitCode === null) child.kill('SIGKILL');
      await m.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('containers the fleet starts dial the manager', () => {
  const rec: AgentRecord = {
    name: 'DataAgent', slug: 'data-agent', description: '', capabilities: ['data'], category: 'data', model: 'none', version: '0.1.0',
    port: 8081, desired: 'running', status: 'built', createdAt: '', updatedAt: '',
  };
  const img = { ref: 'nexus-delta-agent-data-agent:latest', id: 'sha256:aaa' };
  const token = newAgentToken();
  const withToken: AgentRecord = { ...rec, agentToken: hashAgentToken(token, '2026-01-01T00:00:00.000Z') };

  it('manager.url comes from nexus.yaml or NEXUS_MANAGER_URL (env wins) and must be an http(s)/ws(s) URL without credentials', () => {
    expect(resolveConfig('/ws', {}, {}).manager.url).toBeUndefined();
    expect(resolveConfig('/ws', { manager: { url: 'http://10.0.0.5:8070/' } }, {}).manager.url).toBe('http://10.0.0.5:8070');
    expect(resolveConfig('/ws', { manager: { url: 'http://10.0.0.5:8070' } }, { NEXUS_MANAGER_URL: 'wss://m.example:443' }).manager.url).toBe('wss://m.example:443');
    for (const bad of ['ftp://x', 'http://u:p@x:1', 'http://x:1/?a=1', 'not a url']) {
      expect(() => resolveConfig('/ws', {}, { NEXUS_MANAGER_URL: bad })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.not.stringContaining(bad) }));
    }
  });

  it('loopback and wildcard hosts become host.docker.internal (mapped to host-gateway); other hosts are kept', () => {
    expect(containerManagerUrl('http://127.0.0.1:8070')).toEqual({ url: 'http://host.docker.internal:8070', extraHosts: ['host.docker.internal:host-gateway'] });
    expect(containerManagerUrl('http://0.0.0.0:8070')).toEqual({ url: 'http://host.docker.internal:8070', extraHosts: ['host.docker.internal:host-gateway'] });
    expect(containerManagerUrl('http://[::1]:8070').url).toBe('http://host.docker.internal:8070');
    expect(containerManagerUrl('http://localhost:8070').url).toBe('http://host.docker.internal:8070');
    expect(containerManagerUrl('http://172.17.0.1:8070')).toEqual({ url: 'http://172.17.0.1:8070', extraHosts: [] });
    expect(containerManagerUrl('https://manager.example')).toEqual({ url: 'https://manager.example', extraHosts: [] });
  });

  it('agent serve offers its own address unless it listens on loopback only', () => {
    expect(servedManagerUrl('http://127.0.0.1:8070')).toBeUndefined();
    expect(servedManagerUrl('http://[::1]:8070')).toBeUndefined();
    expect(servedManagerUrl('http://0.0.0.0:8070')).toBe('http://0.0.0.0:8070');
    expect(servedManagerUrl('http://172.17.0.1:9761')).toBe('http://172.17.0.1:9761');
  });

  it('with a manager URL and a token the spec has the URL and a read-only token file, never the token; without either it is unchanged', () => {
    const plain = agentContainerSpec(resolveConfig('/ws', {}, {}), withToken, img);
    const noToken = agentContainerSpec(resolveConfig('/ws', { manager: { url: 'http://127.0.0.1:8070' } }, {}), rec, img);
    expect(plain.env.NEXUS_MANAGER_URL).toBeUndefined();
    expect(noToken.env.NEXUS_MANAGER_URL).toBeUndefined();
    // neither gives a link, so neither changes the hash of a container started before links existed
    expect(noToken.labels[LABEL.configHash]).toBe(plain.labels[LABEL.configHash]);
    expect(plain.secretFiles).toBeUndefined();

    const linked = agentContainerSpec(resolveConfig('/ws', { manager: { url: 'http://127.0.0.1:8070' } }, {}), withToken, img);
    expect(linked.env).toMatchObject({ NEXUS_MANAGER_URL: 'http://host.docker.internal:8070', NEXUS_AGENT_ID: 'data-agent', NEXUS_AGENT_TOKEN_FILE: AGENT_TOKEN_MOUNT });
    expect(linked.secretFiles).toEqual([{ source: agentTokenFile('/ws', 'data-agent'), target: AGENT_TOKEN_MOUNT }]);
    expect(linked.extraHosts).toEqual(['host.docker.internal:host-gateway']);
    expect(JSON.stringify(linked)).not.toContain(token);
    expect(JSON.stringify(linked)).not.toContain(withToken.agentToken!.hash);
    expect(linked.labels[LABEL.configHash]).not.toBe(plain.labels[LABEL.configHash]);
    // replicas dial in too
    expect(replicaContainerSpec(resolveConfig('/ws', { manager: { url: 'http://127.0.0.1:8070' } }, {}), withToken, img, 1, 'net', 'http://r').env.NEXUS_MANAGER_URL).toBe('http://host.docker.internal:8070');
  });

  it('a changed manager URL or a rotated token changes the config hash (the next start recreates the container)', () => {
    const cfg = (url: string) => resolveConfig('/ws', { manager: { url } }, {});
    const a = agentContainerSpec(cfg('http://10.0.0.5:8070'), withToken, img).labels[LABEL.configHash];
    expect(agentContainerSpec(cfg('http://10.0.0.5:8070'), withToken, img).labels[LABEL.configHash]).toBe(a);
    expect(agentContainerSpec(cfg('http://10.0.0.6:8070'), withToken, img).labels[LABEL.configHash]).not.toBe(a);
    const rotated = { ...withToken, agentToken: hashAgentToken(newAgentToken(), '2026-02-01T00:00:00.000Z') };
    expect(agentContainerSpec(cfg('http://10.0.0.5:8070'), rotated, img).labels[LABEL.configHash]).not.toBe(a);
  });

  it('the runtime reads its token from NEXUS_AGENT_TOKEN, else from NEXUS_AGENT_TOKEN_FILE; an unreadable file warns without the token', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nexus-token-file-'));
    try {
      const file = join(dir, 'token');
      await writeFile(file, `${token}\n`);
      const warned: object[] = [];
      const log = { info: () => undefined, warn: (o: object) => void warned.push(o) };
      expect(agentTokenFromEnv({ NEXUS_AGENT_TOKEN_FILE: file }, log)).toBe(token);
      expect(agentTokenFromEnv({ NEXUS_AGENT_TOKEN: 'nxa_direct', NEXUS_AGENT_TOKEN_FILE: file }, log)).toBe('nxa_direct');
      expect(agentTokenFromEnv({}, log)).toBeUndefined();
      expect(agentTokenFromEnv({ NEXUS_AGENT_TOKEN_FILE: join(dir, 'missing') }, log)).toBeUndefined();
      expect(warned).toEqual([{ file: join(dir, 'missing'), code: 'ENOENT' }]);
      // prepareTokenMount: a file with a token gets the mountable modes; a missing one is refused
      await writeFile(file, `${token}\n`, { mode: 0o600 });
      await chmod(file, 0o600);
      expect(await prepareTokenMount(file)).toBe(true);
      expect((await stat(file)).mode & 0o777).toBe(0o644);
      expect(await prepareTokenMount(join(dir, 'missing'))).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
