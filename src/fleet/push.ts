import pLimit from 'p-limit';
import { agentImageRef, baseImageRef, validateRegistryHost } from '../names.js';
import type { FleetDeps } from './context.js';
import { buildAgents } from './build.js';
import { resolveTargets } from './targets.js';

export interface PushOutcome {
  image: string;
  pushed: string;
  digest: string;
}

/**
 * `agent push --registry HOST[:PORT]`: build what is missing, then tag the base image and the
 * agent images as `HOST[:PORT]/<name>:<tag>` and push them, since every Swarm node must pull
 * them. The generated files name these references with `--registry`.
 * @throws AppError USAGE for a malformed registry, ENGINE_ERROR when a push fails.
 */
export async function pushImages(deps: FleetDeps, registry: string, names: string[] | 'all' = 'all'): Promise<{ registry: string; images: PushOutcome[] }> {
  validateRegistryHost(registry);
  await buildAgents(deps, names);
  const records = await resolveTargets(deps, names);
  const refs = [baseImageRef(deps.config.images.tag), ...records.map((r) => agentImageRef(r.slug, deps.config.images.tag, deps.config.project))];
  const limit = pLimit(2);
  const images = await Promise.all(
    refs.map((image) =>
      limit(async () => {
        const pushed = `${registry}/${image}`;
        await deps.engine.tagImage(image, pushed);
        deps.onProgress?.({ phase: 'push', message: `pushing ${pushed}` });
        return { image, pushed, digest: await deps.engine.pushImage(pushed) };
      }),
    ),
  );
  return { registry, images };
}
