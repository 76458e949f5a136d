import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../../src/fleet/http.js';
import { createAgent, listAgents, removeAgent, startAgents, stopAgents } from '../../src/fleet/manager.js';
import { eventually } from '../helpers/wait.js';
import { makeWorkspace, workspaceContainers, type TestWorkspace } from '../helpers/workspace.js';

const docker = new Docker();
let ws: TestWorkspace;
let url: string;

beforeAll(async () => {
  ws = await makeWorkspace('9101-9110');
});
afterAll(async () => {
  await ws.cleanup();
  expect(await workspaceContainers(ws.dir)).toEqual([]);
});


describe('agent lifecycle on the real engine', () => {
  it('create reserves the first port of the range and renders the source', async () => {
    const r = await createAgent(ws.deps, { name: 'DataAgent', capabilities: ['data', 'analytics'] });
    expect(r.agent.port).toBe(9101);
    url = r.url;
    expect(url).toBe('http://127.0.0.1:9101');
    expect(JSON.parse(await readFile(join(r.path, 'agent.json'), 'utf8')).capabilities).toEqual(['data', 'analytics']);
  });

  it('start builds the images, runs the container and waits until healthy', async () => {
    const r = await startAgents(ws.deps, ['DataAgent']);
    expect(r.agents[0]).toMatchObject({ outcome: 'started', imageBuilt: true, port: 9101 });
    const health = await request(`${url}/health`, { timeoutMs: 2000 });
    expect(health).toMatchObject({ status: 200, body: { status: 'healthy', agent: 'DataAgent', version: '0.1.0' } });
    const rec = await ws.deps.registry.get('data-agent');
    expect(rec).toMatchObject({ status: 'running', desired: 'running' });
    expect(rec!.tools!.map((t) => t.name)).toEqual(['process_data']);
  });

  it("answers the seed's /execute example", async () => {
    const res = await fetch(`${url}/execute`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{"tool_name": "process_data", "parameters": {"data": [1,2,3,4,5]}}',
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ result: { count: 5, sum: 15, mean: 3, min: 1, max: 5 } });
    const bad = await request(`${url}/execute`, { method: 'POST', json: { tool_name: 'process_data', parameters: { data: 'x' } }, timeoutMs: 2000 });
    expect(bad).toEqual({ status: 400, body: { error: { code: 'INVALID_PARAMETERS', message: 'parameters.data must be array' } } });
  });

  it('runs hardened: non-root, read-only, no capabilities, no-new-privileges, limits, healthcheck, loopback binding', async () => {
    const [c] = await workspaceContainers(ws.dir);
    const info = await docker.getContainer(c!.Id).inspect();
    expect(info.Name).toBe(`/nexus-agent-${ws.config.project}-data-agent`);
    expect(info.Config.User).toBe('1000:1000');
    expect(info.HostConfig.ReadonlyRootfs).toBe(true);
    expect(info.HostConfig.CapDrop).toEqual(['ALL']);
    expect(info.HostConfig.SecurityOpt).toEqual(['no-new-privileges:true']);
    expect(info.HostConfig.Memory).toBe(128 * 1024 * 1024);
    expect(info.HostConfig.NanoCpus).toBe(0.5e9);
    expect(info.HostConfig.PidsLimit).toBe(128);
    expect(info.HostConfig.RestartPolicy?.Name).toBe('unless-stopped');
    expect(info.Config.Healthcheck?.Test).toEqual(['CMD', '/usr/local/bin/busybox', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/health']);
    expect(info.HostConfig.PortBindings).toEqual({ '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '9101' }] });
    // the process really runs as uid 1000 and cannot write the root filesystem
    const exec = await docker.getContainer(c!.Id).exec({
      Cmd: ['node', '-e', "const fs=require('fs');let w='rw';try{fs.writeFileSync('/app/x','1')}catch(e){w=e.code};let t='tmp-ok';try{fs.writeFileSync('/tmp/x','1')}catch(e){t=e.code};console.log(process.getuid()+' '+w+' '+t)"],
      AttachStdout: true,
      AttachStderr: true,
    });
    const stream = await exec.start({});
    const out = await new Promise<string>((resolve) => {
      let s = '';
      stream.on('data', (d: Buffer) => (s += d.toString('utf8')));
      stream.on('end', () => resolve(s));
    });
    // uid 1000; the root filesystem is read-only; the /tmp tmpfs is writable
    expect(out).toMatch(/1000 EROFS tmp-ok/);
  });

  it('the restart policy brings the agent back after its process is SIGKILLed from the host', async () => {
    const [c] = await workspaceContainers(ws.dir);
    const before = await docker.getContainer(c!.Id).inspect();
    process.kill(before.State.Pid, 'SIGKILL');
    const after = await eventually(async () => {
      const i = await docker.getContainer(c!.Id).inspect();
      return i.RestartCount >= 1 && i.State.Running ? i : undefined;
    });
    expect(after.State.Pid).not.toBe(before.State.Pid);
    const health = await eventually(async () => {
      const r = await request(`${url}/health`, { timeoutMs: 1000 });
      return r.status === 200 ? r : undefined;
    });
    expect(health.body).toMatchObject({ status: 'healthy' });
  });

  it('start again with nothing changed leaves the container alone', async () => {
    const [before] = await workspaceContainers(ws.dir);
    const r = await startAgents(ws.deps, 'all');
    expect(r.agents[0]).toMatchObject({ outcome: 'unchanged', imageBuilt: false });
    const [after] = await workspaceContainers(ws.dir);
    expect(after!.Id).toBe(before!.Id);
  });

  it('an edited source ships on the next start (image rebuilt, container recreated)', async () => {
    const tool = join(ws.dir, 'agents/data-agent/src/tools/process_data.ts');
    const src = await readFile(tool, 'utf8');
    await writeFile(tool, src.replace('return { count: data.length, sum, mean: sum / data.length, min, max };', 'return { count: data.length, sum, mean: sum / data.length, min, max, range: max - min };'));
    const r = await startAgents(ws.deps, ['DataAgent']);
    expect(r.agents[0]).toMatchObject({ outcome: 'recreated', imageBuilt: true });
    const res = await request(`${url}/execute`, { method: 'POST', json: { tool_name: 'process_data', parameters: { data: [1, 2, 3, 4, 5] } }, timeoutMs: 2000 });
    expect(res.body).toEqual({ result: { count: 5, sum: 15, mean: 3, min: 1, max: 5, range: 4 } });
    expect(await workspaceContainers(ws.dir)).toHaveLength(1);
  });

  it('list merges the record with the live container and health', async () => {
    const { agents, orphans } = await listAgents(ws.deps);
    expect(agents).toEqual([expect.objectContaining({ name: 'DataAgent', port: 9101, container: 'running', health: 'healthy', tools: ['process_data'] })]);
    expect(orphans).toEqual([]);
  });

  it('stop removes the container and records desired=stopped', async () => {
    const r = await stopAgents(ws.deps, 'all');
    expect(r.agents).toEqual([{ name: 'DataAgent', slug: 'data-agent', removed: 1 }]);
    expect(await workspaceContainers(ws.dir)).toEqual([]);
    expect(await ws.deps.registry.get('data-agent')).toMatchObject({ desired: 'stopped', status: 'stopped' });
    const { agents } = await listAgents(ws.deps);
    expect(agents[0]).toMatchObject({ container: 'none', health: '-' });
  });

  it('remove deletes the record (releasing the port) and the agent image', async () => {
    const img = (await ws.deps.registry.get('data-agent'))!.image!.ref;
    const r = await removeAgent(ws.deps, 'DataAgent', { purge: true });
    expect(r).toMatchObject({ slug: 'data-agent', port: 9101, purged: true });
    expect(await ws.deps.registry.list()).toEqual([]);
    await expect(docker.getImage(img).inspect()).rejects.toMatchObject({ statusCode: 404 });
    const again = await createAgent(ws.deps, { name: 'DataAgent', capabilities: ['data'] });
    expect(again.agent.port).toBe(9101);
  });
});
