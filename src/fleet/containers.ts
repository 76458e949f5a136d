import { createHash } from 'node:crypto';
import type { Config } from '../config/config.js';
import type { ContainerInfo, ContainerSpec } from '../engine/engine.js';
import { AGENT_HEALTHCHECK, AGENT_TMP, CONTAINER_PORT, HARDENED, LABEL, agentUrl, isPrimaryReplica, workspaceLabels } from '../conventions.js';
import { containerName } from '../names.js';
import type { AgentRecord } from '../registry/registry.js';

/**
 * The hardened container spec of one agent (pure): non-root, read-only root filesystem with a
 * small /tmp tmpfs, all capabilities dropped, no-new-privileges, memory/CPU/pids limits, restart
 * unless-stopped (memory: the image's own limit from agent.json, else the workspace's), a HEALTHCHECK on /health, host port bound to the configured address.
 * The config-hash label covers everything (image id included), so any change recreates it.
 */
export function agentContainerSpec(config: Config, record: AgentRecord, image: { ref: string; id: string; memoryMiB?: number | undefined }): ContainerSpec {
  const spec: ContainerSpec = {
    name: containerName(record.slug, 0, config.project),
    image: image.ref,
    labels: {
      ...config.labels,
      ...workspaceLabels(config),
      [LABEL.kind]: 'container',
      [LABEL.agent]: record.slug,
      [LABEL.replica]: '0',
    },
    env: {
      PORT: String(CONTAINER_PORT),
      LOG_LEVEL: 'info',
      AGENT_PUBLIC_URL: agentUrl(config, record.port),
    },
    containerPort: CONTAINER_PORT,
    hostPort: { address: config.ports.bindAddress, port: record.port },
    // field by field, in this order: the config hash is over this object's JSON, and a new order
    // would recreate every running agent once
    user: HARDENED.user,
    readOnlyRootfs: HARDENED.readOnlyRootfs,
    tmpfs: { [AGENT_TMP.path]: AGENT_TMP.options },
    capDrop: [...HARDENED.capDrop],
    securityOpt: [...HARDENED.securityOpt],
    // an agent that needs more (OCR) says so in agent.json resources.memoryMiB
    memoryMiB: image.memoryMiB ?? config.resources.memoryMiB,
    cpus: config.resources.cpus,
    pidsLimit: config.resources.pids,
    restartPolicy: HARDENED.restartPolicy,
    healthcheck: { ...AGENT_HEALTHCHECK, test: [...AGENT_HEALTHCHECK.test] },
    init: HARDENED.init,
  };
  const hash = createHash('sha256').update(JSON.stringify({ spec, imageId: image.id })).digest('hex').slice(0, 16);
  spec.labels[LABEL.configHash] = hash;
  return spec;
}

/** What to do with an agent's container to reach the desired spec. */
export type ContainerPlan =
  | { action: 'create'; remove: string[] }
  | { action: 'recreate'; remove: string[] }
  | { action: 'start'; id: string; remove: string[] }
  | { action: 'keep'; id: string; remove: string[] };

/**
 * Diff desired against observed (pure, docker/compose's reconcile in small): observed are the
 * containers labelled with this agent (primary replica). Extra containers are removed.
 * - none -> create; config hash differs -> recreate; same hash and running -> keep;
 *   same hash but stopped -> start.
 */
export function planContainer(desiredHash: string, observed: readonly ContainerInfo[]): ContainerPlan {
  const primary = observed.filter((c) => isPrimaryReplica(c.labels));
  const [first, ...extra] = primary;
  const extraIds = extra.map((c) => c.id);
  if (!first) return { action: 'create', remove: extraIds };
  if (first.labels[LABEL.configHash] !== desiredHash) return { action: 'recreate', remove: [first.id, ...extraIds] };
  if (first.state === 'running' || first.state === 'restarting') return { action: 'keep', id: first.id, remove: extraIds };
  if (first.state === 'removing' || first.state === 'dead') return { action: 'recreate', remove: [first.id, ...extraIds] };
  return { action: 'start', id: first.id, remove: extraIds };
}

/**
 * Replica `n` (>= 1) of an agent (pure): the agent's spec without a host port, on the workspace
 * `network` with the slug as DNS alias, advertising the router's URL `routedUrl`.
 */
export function replicaContainerSpec(config: Config, record: AgentRecord, image: { ref: string; id: string }, n: number, network: string, routedUrl: string): ContainerSpec {
  const spec = agentContainerSpec(config, record, image);
  spec.name = containerName(record.slug, n, config.project);
  spec.labels[LABEL.replica] = String(n);
  spec.hostPort = undefined;
  spec.network = network;
  spec.networkAliases = [record.slug];
  spec.env.AGENT_PUBLIC_URL = routedUrl;
  return spec;
}
