import { agentImageRef } from '../names.js';
import type { AgentRecord } from '../registry/registry.js';
import type { FleetDeps } from './context.js';
import { agentSource, type BaseImage } from './images.js';

/**
 * The image an agent should run: its reference and the hash of its current source, as
 * ensureAgentImage labels its images (agentSource in src/fleet/images.ts: bundle, manifest, base
 * image id, dependency layer). Installs npm dependencies on the host once per lockfile and bundles
 * the agent (esbuild, tens of ms); builds no image.
 * @throws AppError BUILD_FAILED (missing source folder, a dependency that cannot be installed or loaded, compile error with file:line)
 */
export async function desiredImage(deps: FleetDeps, record: AgentRecord, base: BaseImage): Promise<{ ref: string; sourceHash: string }> {
  const { sourceHash } = await agentSource(deps, record, base);
  return { ref: agentImageRef(record.slug, deps.config.images.tag, deps.config.project), sourceHash };
}
