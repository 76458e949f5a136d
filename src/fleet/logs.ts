import { isPrimaryReplica } from '../conventions.js';
import type { ContainerInfo } from '../engine/engine.js';
import { AppError } from '../errors.js';
import type { AgentRecord } from '../registry/registry.js';
import type { FleetDeps } from './context.js';
import { agentContainers } from './stop.js';
import { resolveTargets } from './targets.js';

/** The agent's primary container, or AppError AGENT_NOT_FOUND / a hint to start it. */
export async function findContainer(deps: FleetDeps, name: string): Promise<{ record: AgentRecord; container: ContainerInfo }> {
  const [record] = await resolveTargets(deps, [name]);
  const cs = await agentContainers(deps, record!.slug);
  const container = cs.find((c) => isPrimaryReplica(c.labels));
  if (!container) {
    throw new AppError('AGENT_NOT_FOUND', `agent '${record!.name}' has no container`, {
      hint: `start it first: agent start --name ${record!.name}`,
    });
  }
  return { record: record!, container };
}

/** The last `tail` log lines of an agent's container. */
export async function agentLogs(deps: FleetDeps, name: string, tail = 100): Promise<{ name: string; logs: string }> {
  await deps.engine.ping();
  const { record, container } = await findContainer(deps, name);
  return { name: record.name, logs: await deps.engine.containerLogs(container.id, tail) };
}

/**
 * `logs --follow`: stream an agent's logs (the last `tail` lines first) to `out` until `signal`
 * aborts or the container ends. Resolves when the stream is done.
 * @throws AppError ENGINE_UNREACHABLE, AGENT_NOT_FOUND (also when it has no container)
 */
export async function followAgentLogs(deps: FleetDeps, name: string, tail: number, out: NodeJS.WritableStream, signal?: AbortSignal): Promise<{ name: string; followed: true }> {
  await deps.engine.ping();
  const { container } = await findContainer(deps, name);
  const f = await deps.engine.followLogs(container.id, tail, out);
  const stop = () => f.stop();
  if (signal?.aborted) stop();
  signal?.addEventListener('abort', stop, { once: true });
  try {
    await f.done;
  } finally {
    signal?.removeEventListener('abort', stop);
  }
  return { name, followed: true };
}
