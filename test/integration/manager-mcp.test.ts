import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createManager, type Manager } from '../../src/server/manager.js';
import { createToken } from '../../src/server/tokens.js';
import { BOOTSTRAP } from '../helpers/manager.js';
import { makeWorkspace, type TestWorkspace } from '../helpers/workspace.js';

// The manager's MCP door and agents.json on the REAL engine: two started agents behind /mcp,
// the MCP SDK's client over streamable HTTP with a manager token. Ports 9521-9524.
let ws: TestWorkspace;
let m: Manager;
let base: string;
let operator: string;
const clients: Client[] = [];

const api = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${BOOTSTRAP}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: (await res.json()) as any };
};

async function connect(token: string | undefined): Promise<Client> {
  const client = new Client({ name: 'door-it', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: token ? { authorization: `Bearer ${token}` } : {} } }));
  clients.push(client);
  return client;
}

beforeAll(async () => {
  ws = await makeWorkspace('9521-9524');
  m = await createManager({ config: ws.config, env: { ...process.env, NEXUS_MANAGER_TOKEN: BOOTSTRAP } });
  base = await m.app.listen({ host: '127.0.0.1', port: 0 });
  operator = (await createToken({ scope: 'operator' }, { workspace: ws.dir })).token;
  for (const name of ['DataAgent', 'TextAgent']) {
    expect((await api('POST', '/agents', { name, capabilities: ['data'] })).status).toBe(201);
    const started = await api('POST', `/agents/${name}/start`);
    expect(started.json, JSON.stringify(started.json)).toMatchObject({ ok: 1, failed: 0 });
  }
}, 300_000);
afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
  await m?.close();
  await ws?.cleanup();
}, 60_000);

describe('the manager as one MCP door (real engine, two agents)', () => {
  it('lists both agents’ tools as <slug>__<tool> and calls one on each; an invalid argument is a tool error', async () => {
    const client = await connect(operator);
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    expect(names).toContain('data-agent__process_data');
    expect(names).toContain('text-agent__process_data');
    const recorded = (await api('GET', '/agents/DataAgent?stats=false')).json.tools as string[];
    expect(names.filter((n) => n.startsWith('data-agent__')).sort()).toEqual(recorded.map((t) => `data-agent__${t}`).sort());

    for (const slug of ['data-agent', 'text-agent']) {
      const r = await client.callTool({ name: `${slug}__process_data`, arguments: { data: [2, 4, 6] } });
      expect(r.isError ?? false, JSON.stringify(r)).toBe(false);
      expect(r.structuredContent).toMatchObject({ sum: 12, count: 3 });
    }
    const bad = await client.callTool({ name: 'data-agent__process_data', arguments: { data: 'nope' } });
    expect(bad.isError).toBe(true);
    expect((bad.content as { text: string }[])[0]!.text).toMatch(/^INVALID_PARAMETERS: /);
  }, 60_000);

  it('agents.json lists both cards with the manager URLs', async () => {
    const r = await fetch(`${base}/.well-known/agents.json`, { headers: { authorization: `Bearer ${operator}` } });
    const { agents } = (await r.json()) as { agents: any[] };
    expect(agents.map((a) => a.slug)).toEqual(['data-agent', 'text-agent']);
    for (const a of agents) {
      expect(a.available).toBe(true);
      expect(a.manager.url).toBe(`${base}/api/v1/agents/${a.slug}`);
      expect(a.card.supportedInterfaces[0]).toMatchObject({ protocolBinding: 'HTTP+JSON', protocolVersion: '1.0' });
      expect(a.card.skills.map((s: { id: string }) => s.id)).toContain('process_data');
    }
  });

  it('no or bad token is refused with 401', async () => {
    await expect(connect(undefined)).rejects.toMatchObject({ code: 401 });
    await expect(connect('bad')).rejects.toMatchObject({ code: 401 });
  });

  it('a stopped agent’s tools leave the list, and the client receives tools/list_changed', async () => {
    const client = await connect(operator);
    await client.listTools();
    const changed = new Promise<void>((resolve) => client.setNotificationHandler(ToolListChangedNotificationSchema, () => resolve()));
    expect((await api('POST', '/agents/TextAgent/stop')).status).toBe(200);
    await changed;
    const names = (await client.listTools()).tools.map((t) => t.name);
    expect(names.some((n) => n.startsWith('text-agent__'))).toBe(false);
    expect(names).toContain('data-agent__process_data');
  }, 60_000);
});
