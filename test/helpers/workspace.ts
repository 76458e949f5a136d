import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import yaml from 'js-yaml';
import { loadConfig, type Config } from '../../src/config/config.js';
import { DockerEngine } from '../../src/engine/docker.js';
import { LABEL } from '../../src/engine/labels.js';
import { workspaceId, type FleetDeps, type ProgressEvent } from '../../src/fleet/context.js';
import { LocalRegistry } from '../../src/registry/local.js';

/** Label on everything tests create, and the image tag tests build (set by global-setup). */
export const TEST_LABEL = 'dev.nexus-delta.test';
export const testRunId = (): string => process.env.NEXUS_TEST_RUN ?? 'local';
export const testImageTag = (): string => `test-${testRunId()}`;

export interface TestWorkspace {
  dir: string;
  config: Config;
  deps: FleetDeps;
  events: ProgressEvent[];
  /** Environment for running the CLI against this workspace. */
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

/**
 * A temporary workspace with its own port range, the test label and the test image tag.
 * cleanup() removes its containers and agent images (found by workspace label) and the folder.
 */
export async function makeWorkspace(range: string, extra: Record<string, unknown> = {}): Promise<TestWorkspace> {
  const dir = await mkdtemp(join(tmpdir(), 'nexus-test-'));
  await writeFile(
    join(dir, 'nexus.yaml'),
    yaml.dump({
      ports: { range },
      images: { tag: testImageTag() },
      labels: { [TEST_LABEL]: testRunId() },
      project: `t${testRunId()}`,
      start: { healthTimeoutS: 30 },
      ...extra,
    }),
  );
  const config = loadConfig(dir, {});
  const events: ProgressEvent[] = [];
  const deps: FleetDeps = { config, registry: new LocalRegistry(dir), engine: new DockerEngine(), onProgress: (e) => events.push(e) };
  return {
    dir,
    config,
    deps,
    events,
    env: { NEXUS_WORKSPACE: dir },
    async cleanup() {
      await removeByLabel({ [LABEL.workspace]: workspaceId(dir) });
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Remove containers, then images, carrying all the labels. Returns how many of each. */
export async function removeByLabel(labels: Record<string, string>): Promise<{ containers: number; images: number }> {
  const docker = new Docker();
  const label = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  const cs = await docker.listContainers({ all: true, filters: { label } });
  for (const c of cs) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  const imgs = await docker.listImages({ filters: { label } });
  for (const i of imgs) await docker.getImage(i.Id).remove({ force: true }).catch(() => undefined);
  const nets = await docker.listNetworks({ filters: { label } });
  for (const n of nets) await docker.getNetwork(n.Id).remove().catch(() => undefined);
  return { containers: cs.length, images: imgs.length };
}

/** Containers of a workspace on the engine now. */
export async function workspaceContainers(dir: string): Promise<Docker.ContainerInfo[]> {
  return new Docker().listContainers({ all: true, filters: { label: [`${LABEL.workspace}=${workspaceId(dir)}`] } });
}
