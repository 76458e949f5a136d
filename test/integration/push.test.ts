import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/fleet/manager.js';
import { runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/wait.js';
import { makeWorkspace, type TestWorkspace } from '../helpers/workspace.js';

let ws: TestWorkspace;
let registry: ChildProcess | undefined;
let storage: string;
let addr: string;

/**
 * Start the distribution registry (Debian's `docker-registry`) with `config`, listening on `addr`.
 * Throws a clear error when the binary is missing (scripts/setup.sh installs it), when it exits,
 * or when `GET /v2/` does not answer 200 within 10 s: this test never skips silently.
 */
async function startRegistry(config: string): Promise<ChildProcess> {
  const probe = spawnSync('docker-registry', ['--version']);
  if (probe.error) throw new Error(`docker-registry is not installed (${probe.error.message}): run \`bash scripts/setup.sh\` (installs Debian's docker-registry)`);
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let exited: string | undefined;
  child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000); });
  child.on('error', (e) => { exited = e.message; });
  child.on('exit', (code, signal) => { exited = `exited (${code ?? signal})`; });
  for (let i = 0; i < 50 && !exited; i++) {
    if (await fetch(`http://${addr}/v2/`).then((r) => r.status === 200, () => false)) return child;
    await new Promise((r) => setTimeout(r, 200));
  }
  child.kill('SIGTERM');
  throw new Error(`docker-registry ${exited ?? `did not answer on http://${addr}/v2/ within 10 s`}: ${stderr.trim()}`);
}

beforeAll(async () => {
  // the distribution registry, on loopback, storing in a temp folder
  storage = await mkdtemp(join(tmpdir(), 'nexus-registry-'));
  addr = `127.0.0.1:${await freePort()}`;
  const config = join(storage, 'config.yml');
  await writeFile(config, `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${storage}/data\nhttp:\n  addr: ${addr}\n`);
  registry = await startRegistry(config);
  ws = await makeWorkspace('9171-9172');
  await createAgent(ws.deps, { name: 'DataAgent', capabilities: ['data'] });
});
afterAll(async () => {
  registry?.kill('SIGTERM');
  // the registry-qualified tags this test made (the images themselves go with the workspace/run)
  const Docker = (await import('dockerode')).default;
  const docker = new Docker();
  for (const img of await docker.listImages()) {
    for (const tag of img.RepoTags ?? []) if (tag.startsWith(`${addr}/`)) await docker.getImage(tag).remove().catch(() => undefined);
  }
  await ws?.cleanup(); // undefined when the registry could not start
  await rm(storage, { recursive: true, force: true });
});

describe('agent push', () => {
  it('pushes the base and agent images to a real registry; digests match the registry', async () => {
    const r = await runCli(['push', '--registry', addr, '--json'], ws.env);
    expect(r.exitCode, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { images: { image: string; pushed: string; digest: string }[] };
    expect(out.images.map((i) => i.pushed)).toEqual([`${addr}/nexus-delta-agent:${ws.config.images.tag}`, `${addr}/nexus-delta-agent-${ws.config.project}-data-agent:${ws.config.images.tag}`]);
    const catalog = (await (await fetch(`http://${addr}/v2/_catalog`)).json()) as { repositories: string[] };
    expect(catalog.repositories.sort()).toEqual(['nexus-delta-agent', `nexus-delta-agent-${ws.config.project}-data-agent`]);
    for (const i of out.images) {
      const [, repoTag] = i.pushed.split(`${addr}/`);
      const [repo, tag] = repoTag!.split(':');
      const head = await fetch(`http://${addr}/v2/${repo}/manifests/${tag}`, { method: 'HEAD', headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
      expect(head.status).toBe(200);
      expect(head.headers.get('docker-content-digest')).toBe(i.digest);
    }
  });

  it('compose --registry names the pushed images', async () => {
    const r = await runCli(['compose', '--registry', addr, '--json'], ws.env);
    expect(r.exitCode).toBe(0);
    const text = await readFile(JSON.parse(r.stdout).files[0], 'utf8');
    expect(text).toContain(`image: ${addr}/nexus-delta-agent-${ws.config.project}-data-agent:${"$"}{NEXUS_IMAGE_TAG:-${ws.config.images.tag}}`);
  });

  it('rejects a malformed registry address without pushing anything', async () => {
    const r = await runCli(['push', '--registry', 'http://bad/'], ws.env);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/not a registry address\nhint: use HOST or HOST:PORT/);
  });
});
