import { existsSync } from 'node:fs';
import { AppError } from '../errors.js';
import { agentImageRef } from '../names.js';
import { agentDir } from '../paths.js';
import type { AgentRecord } from '../registry/registry.js';
import { readManifest } from '../scaffold/render.js';
import { bundleAgent, sha256 } from './bundle.js';
import type { FleetDeps } from './context.js';
import type { BaseImage } from './images.js';

/**
 * The image an agent should run: its reference and the hash of its current source, computed as
 * ensureAgentImage (src/fleet/images.ts) labels its images: sha256(bundle hash, manifest JSON,
 * base image id). Bundles the agent (esbuild, tens of ms); builds nothing.
 * @throws AppError BUILD_FAILED (missing source folder, compile error with file:line)
 */
export async function desiredImage(deps: FleetDeps, record: AgentRecord, base: BaseImage): Promise<{ ref: string; sourceHash: string }> {
  const { config } = deps;
  const dir = agentDir(config.workspace, record.slug);
  if (!existsSync(dir)) {
    throw new AppError('BUILD_FAILED', `source folder ${dir} of agent '${record.name}' is missing`, {
      hint: `restore it, or remove the agent: agent remove --name ${record.name}`,
    });
  }
  const manifest = await readManifest(dir);
  deps.onProgress?.({ agent: record.slug, phase: 'bundle' });
  const bundle = await bundleAgent(dir);
  return { ref: agentImageRef(record.slug, config.images.tag, config.project), sourceHash: sha256(bundle.hash, JSON.stringify(manifest), base.id) };
}
