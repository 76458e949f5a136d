import { agentUrl, LABEL, isPrimaryReplica, workspaceLabels } from '../conventions.js';
import type { ContainerInfo } from '../engine/engine.js';
import { AppError } from '../errors.js';
import type { AgentRecord } from '../registry/registry.js';
import type { FleetDeps } from './context.js';
import { httpProbe } from './health.js';

/** One row of `list`: the record merged with live container state and health. */
export interface AgentRow {
  name: string;
  slug: string;
  port: number;
  url: string;
  capabilities: string[];
  category: string;
  /** Recorded status. */
  status: AgentRecord['status'];
  desired: AgentRecord['desired'];
  /** Live container state, or 'none'. */
  container: string;
  /** GET /health now: healthy, unhealthy, or '-' when no container runs. */
  health: 'healthy' | 'unhealthy' | '-';
  tools: string[];
  image?: string | undefined;
}

/**
 * The registry's agents merged with what the engine runs (found by label) and a live /health
 * probe (1 s each, in parallel). Containers of this workspace without a record are `orphans`.
 * An unreachable engine is shown in the rows, not thrown.
 */
export async function listAgents(deps: FleetDeps, opts: { probe?: boolean } = {}): Promise<{ agents: AgentRow[]; orphans: string[] }> {
  const records = await deps.registry.list();
  let containers: ContainerInfo[] = [];
  let engineUp = true;
  try {
    containers = await deps.engine.listContainers(workspaceLabels(deps.config));
  } catch (err) {
    if (!(err instanceof AppError && err.code === 'ENGINE_UNREACHABLE')) throw err;
    engineUp = false;
  }
  const bySlug = new Map<string, ContainerInfo>();
  for (const c of containers) {
    const slug = c.labels[LABEL.agent];
    if (slug && isPrimaryReplica(c.labels)) bySlug.set(slug, c);
  }
  const probe = deps.probe ?? httpProbe;
  const agents = await Promise.all(
    records.map(async (rec): Promise<AgentRow> => {
      const c = bySlug.get(rec.slug);
      const url = agentUrl(deps.config, rec.port);
      let health: AgentRow['health'] = '-';
      if (c?.state === 'running' && opts.probe !== false) health = (await probe.health(url, 1000)).ok ? 'healthy' : 'unhealthy';
      return {
        name: rec.name,
        slug: rec.slug,
        port: rec.port,
        url,
        capabilities: rec.capabilities,
        category: rec.category,
        status: rec.status,
        desired: rec.desired,
        container: engineUp ? (c?.state ?? 'none') : 'unknown (engine unreachable)',
        health,
        tools: (rec.tools ?? []).map((t) => t.name),
        image: rec.image?.ref,
      };
    }),
  );
  const known = new Set(records.map((r) => r.slug));
  const orphans = containers.filter((c) => !known.has(c.labels[LABEL.agent] ?? '')).map((c) => c.name);
  return { agents, orphans };
}
