import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drawTextPng } from '../../src/fleet/demo.js';
import { request } from '../../src/fleet/http.js';
import { dependencyImageRef } from '../../src/fleet/images.js';
import { createAgent, startAgents } from '../../src/fleet/manager.js';
import { agentImageRef, baseImageRef } from '../../src/names.js';
import { runCli } from '../helpers/cli.js';
import { makeWorkspace, workspaceContainers, type TestWorkspace } from '../helpers/workspace.js';

// ports 9341-9350 (this file's band: 9341-9360)
const docker = new Docker();
let ws: TestWorkspace;

beforeAll(async () => {
  ws = await makeWorkspace('9341-9350');
});
afterAll(async () => {
  await ws.cleanup();
  expect(await workspaceContainers(ws.dir)).toEqual([]);
});

const layers = async (ref: string): Promise<string[]> => (await docker.getImage(ref).inspect()).RootFS.Layers ?? [];
const imageSize = async (ref: string): Promise<number> => (await docker.getImage(ref).inspect()).Size;
const call = (port: number, tool_name: string, parameters: unknown) =>
  request(`http://127.0.0.1:${port}/execute`, { method: 'POST', json: { tool_name, parameters }, timeoutMs: 60_000 });
const idleMiB = async (slug: string): Promise<number> => {
  const [c] = (await workspaceContainers(ws.dir)).filter((x) => x.Labels['dev.nexus-delta.agent'] === slug);
  return (await ws.deps.engine.containerMemory(c!.Id)) / 2 ** 20;
};

describe('an agent importing sharp (native addon + libvips)', () => {
  const slug = 'pix-agent';
  let port: number;
  let depsLayers: string[];
  let containerId: string;

  it('builds, starts and answers; the dependency layer sits under the code layer', async () => {
    const created = await createAgent(ws.deps, { name: 'PixAgent', capabilities: ['image'] });
    port = created.agent.port;
    expect(JSON.parse(await readFile(join(created.path, 'package.json'), 'utf8')).dependencies).toEqual({ sharp: '0.35.5' });
    const r = await startAgents(ws.deps, ['PixAgent']);
    expect(r.agents[0]).toMatchObject({ outcome: 'started', imageBuilt: true });
    const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#123456' } }).png().toBuffer();
    expect(await call(port, 'image_info', { image: png.toString('base64') })).toMatchObject({ status: 200, body: { result: { format: 'png', width: 64, height: 48, channels: 3 } } });
    const thumb = await call(port, 'resize', { image: png.toString('base64'), width: 32, format: 'webp' });
    expect(thumb).toMatchObject({ status: 200, body: { result: { format: 'webp', width: 32, height: 24 } } });

    depsLayers = await layers(dependencyImageRef(slug, ws.config.images.tag, ws.config.project));
    const base = await layers(baseImageRef(ws.config.images.tag));
    const agent = await layers(agentImageRef(slug, ws.config.images.tag, ws.config.project));
    expect(depsLayers.slice(0, base.length)).toEqual(base);
    // node_modules, plus (offline base) the host libraries sharp's libvips needs besides node's
    expect(depsLayers.length - base.length).toBeGreaterThanOrEqual(1);
    expect(depsLayers.length - base.length).toBeLessThanOrEqual(2);
    expect(agent).toEqual([...depsLayers, agent.at(-1)]);
    // the lockfile is written next to package.json, on the host
    expect(JSON.parse(await readFile(join(created.path, 'package-lock.json'), 'utf8')).packages['node_modules/sharp'].version).toBe('0.35.5');
    containerId = (await workspaceContainers(ws.dir))[0]!.Id;
  });

  it('a code-only change rebuilds the code layer and reuses the dependency layer', async () => {
    const depsId = (await docker.getImage(dependencyImageRef(slug, ws.config.images.tag, ws.config.project)).inspect()).Id;
    const before = await layers(agentImageRef(slug, ws.config.images.tag, ws.config.project));
    const tool = join(ws.dir, 'agents', slug, 'src/tools/image_info.ts');
    await writeFile(tool, (await readFile(tool, 'utf8')).replace("description: 'Format,", "description: 'Image format,"));
    const r = await startAgents(ws.deps, ['PixAgent']);
    expect(r.agents[0]).toMatchObject({ outcome: 'recreated', imageBuilt: true });
    const after = await layers(agentImageRef(slug, ws.config.images.tag, ws.config.project));
    expect((await docker.getImage(dependencyImageRef(slug, ws.config.images.tag, ws.config.project)).inspect()).Id).toBe(depsId);
    expect(after.slice(0, -1)).toEqual(depsLayers);
    expect(after.at(-1)).not.toBe(before.at(-1));
    const tools = await request(`http://127.0.0.1:${port}/tools`, { timeoutMs: 2000 });
    expect(JSON.stringify(tools.body)).toContain('Image format,');
  });

  it('a dependency that cannot be installed fails build with exit 6 naming it, and the running container is untouched', async () => {
    containerId = (await workspaceContainers(ws.dir))[0]!.Id;
    const pkgPath = join(ws.dir, 'agents', slug, 'package.json');
    const good = await readFile(pkgPath, 'utf8');
    await writeFile(pkgPath, good.replace('"sharp": "0.35.5"', '"sharp": "0.0.999-nope"'));
    const r = await runCli(['build', '--name', 'PixAgent'], ws.env);
    expect(r.exitCode).toBe(6);
    expect(r.stderr).toContain("cannot install 'sharp@0.0.999-nope'");
    expect(r.stderr).toMatch(/No matching version found/);
    const [c] = await workspaceContainers(ws.dir);
    expect(c).toMatchObject({ Id: containerId, State: 'running' });
    expect((await request(`http://127.0.0.1:${port}/health`, { timeoutMs: 2000 })).status).toBe(200);
    await writeFile(pkgPath, good);
  });

  it('changing a dependency rebuilds the dependency layer', async () => {
    const depsRef = dependencyImageRef(slug, ws.config.images.tag, ws.config.project);
    const depsId = (await docker.getImage(depsRef).inspect()).Id;
    const pkgPath = join(ws.dir, 'agents', slug, 'package.json');
    const pkg = JSON.parse(await readFile(pkgPath, 'utf8'));
    // a package sharp already brings (so npm finds it in its cache), now a direct dependency
    const semver = JSON.parse(await readFile(join(ws.dir, 'agents', slug, 'package-lock.json'), 'utf8')).packages['node_modules/semver'].version as string;
    pkg.dependencies.semver = semver;
    await writeFile(pkgPath, JSON.stringify(pkg, null, 2));
    const r = await startAgents(ws.deps, ['PixAgent']);
    expect(r.agents[0]).toMatchObject({ outcome: 'recreated', imageBuilt: true });
    expect((await docker.getImage(depsRef).inspect()).Id).not.toBe(depsId);
    expect((await call(port, 'image_info', { image: (await drawTextPng('x')).toString('base64') })).status).toBe(200);
  });
});

describe('the demo capabilities do real work in their containers', () => {
  it('ImageAgent (vision ocr) reads the text of a PNG drawn from an SVG; idle at or under 32 MiB with a 256 MiB limit', async () => {
    const created = await createAgent(ws.deps, { name: 'ImageAgent', capabilities: ['vision', 'ocr'] });
    const r = await startAgents(ws.deps, ['ImageAgent']);
    expect(r.agents[0]).toMatchObject({ outcome: 'started' });
    const idle = await idleMiB('image-agent');
    const png = await drawTextPng('Nexus Delta 2025');
    const res = await call(created.agent.port, 'extract_text', { image: png.toString('base64') });
    expect(res).toMatchObject({ status: 200, body: { result: { text: 'Nexus Delta 2025' } } });
    expect(idle).toBeLessThanOrEqual(32);
    const [c] = (await workspaceContainers(ws.dir)).filter((x) => x.Labels['dev.nexus-delta.agent'] === 'image-agent');
    expect((await docker.getContainer(c!.Id).inspect()).HostConfig.Memory).toBe(256 * 2 ** 20);
    // the plan sees the same limit (image label) and the same source hash (dependency layer included): nothing drifts
    expect((await startAgents(ws.deps, ['ImageAgent', 'PixAgent'])).agents.map((a) => a.outcome)).toEqual(['unchanged', 'unchanged']);
  });

  it('CodeAgent (programming) reports a syntax error at its line and formats code; idle at or under 32 MiB', async () => {
    const created = await createAgent(ws.deps, { name: 'CodeAgent', capabilities: ['programming'] });
    const r = await startAgents(ws.deps, ['CodeAgent']);
    expect(r.agents[0]).toMatchObject({ outcome: 'started' });
    const idle = await idleMiB('code-agent');
    const bad = await call(created.agent.port, 'analyze_code', { code: 'const a = 1;\nfunction f(x: number) {\n  return x +;\n}\n' });
    expect(bad).toMatchObject({ status: 200, body: { result: { valid: false, diagnostics: [{ line: 3, column: 13, message: 'Expression expected.' }] } } });
    const fmt = await call(created.agent.port, 'format_code', { code: 'let  a={b:1}' });
    expect(fmt).toMatchObject({ status: 200, body: { result: { formatted: 'let a = { b: 1 };\n', changed: true } } });
    expect(idle).toBeLessThanOrEqual(32);
    // typescript and prettier are plain JavaScript: bundled (in lazily loaded chunks), no dependency layer
    expect(await docker.getImage(dependencyImageRef('code-agent', ws.config.images.tag, ws.config.project)).inspect().catch(() => undefined)).toBeUndefined();
  });

  it('an agent with no dependencies adds under 2 MB to the base image, one with sharp adds its layer', async () => {
    await createAgent(ws.deps, { name: 'DataAgent', capabilities: ['data'] });
    const r = await startAgents(ws.deps, ['DataAgent']);
    expect(r.agents[0]).toMatchObject({ outcome: 'started' });
    const base = await imageSize(baseImageRef(ws.config.images.tag));
    const plain = (await imageSize(agentImageRef('data-agent', ws.config.images.tag, ws.config.project))) - base;
    const withSharp = (await imageSize(agentImageRef('pix-agent', ws.config.images.tag, ws.config.project))) - base;
    expect(plain).toBeLessThan(2_000_000);
    expect(withSharp).toBeGreaterThan(10_000_000);
  });
});
