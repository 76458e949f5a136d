import pLimit from 'p-limit';
import { isoNow } from '../clock.js';
import type { AgentRecord } from '../registry/registry.js';
import type { FleetDeps } from './context.js';
import { ensureAgentImage, ensureBaseImage, type AgentImage, type BaseImage } from './images.js';
import { resolveTargets } from './targets.js';

export interface BuildResult {
  base: BaseImage;
  agents: { name: string; slug: string; image: string; id: string; built: boolean }[];
}

/**
 * Build the base image (cached by runtime hash) and the agent images (skipped when the source
 * hash is unchanged). names: agent names/slugs, or 'all'.
 * @throws AppError ENGINE_UNREACHABLE, BASE_IMAGE_FAILED, BUILD_FAILED, AGENT_NOT_FOUND
 */
export async function buildAgents(deps: FleetDeps, names: string[] | 'all', opts: { force?: boolean } = {}): Promise<BuildResult> {
  await deps.engine.ping();
  const targets = await resolveTargets(deps, names);
  const base = await ensureBaseImage(deps, { force: opts.force ?? false });
  const limit = pLimit(2);
  const agents = await Promise.all(
    targets.map((rec) =>
      limit(async () => {
        const img = await ensureAgentImage(deps, rec, base);
        await recordImage(deps, rec, img);
        deps.onProgress?.({ agent: rec.slug, phase: img.built ? 'built' : 'cached' });
        return { name: rec.name, slug: rec.slug, image: img.ref, id: img.id, built: img.built };
      }),
    ),
  );
  return { base, agents };
}

function imageRecord(deps: FleetDeps, img: AgentImage): NonNullable<AgentRecord['image']> {
  return { ref: img.ref, id: img.id, sourceHash: img.sourceHash, builtAt: isoNow(deps.clock) };
}

async function recordImage(deps: FleetDeps, rec: AgentRecord, img: AgentImage): Promise<void> {
  await deps.registry.update(rec.slug, {
    image: imageRecord(deps, img),
    ...(rec.status === 'created' ? { status: 'built' as const } : {}),
  });
}

