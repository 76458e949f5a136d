import { createHash } from 'node:crypto';
import type { Config } from '../config/config.js';
import type { ContainerInfo, ContainerSpec } from '../engine/engine.js';
import { AGENT_HEALTHCHECK, AGENT_TMP, CONTAINER_PORT, HARDENED, LABEL, agentUrl, isPrimaryReplica, workspaceLabels } from '../conventions.js';
import { containerName } from '../names.js';
import type { AgentRecord } from '../registry/registry.js';
import { agentTokenFile } from './agent-tokens.js';

/** Where a container reads its connection token (NEXUS_AGENT_TOKEN_FILE): Docker's /run/secrets convention, a read-only file mount. */
export const AGENT_TOKEN_MOUNT = '/run/secrets/nexus-agent-token';
/** The name containers use for the host (Docker Desktop defines it; on Linux the spec maps it to `host-gateway`, the bridge's gateway, Docker 20.10+). */
export const HOST_GATEWAY_NAME = 'host.docker.internal';

/**
 * The manager URL as a container dials it (pure). Loopback and wildcard hosts (`localhost`,
 * 127.0.0.0/8, `::1`, `0.0.0.0`, `::`) name the container itself there, so they become
 * host.docker.internal, mapped to Docker's `host-gateway`; any other host is kept. On Linux the
 * manager must then listen where the bridge reaches it (`agent serve --host 0.0.0.0` or the
 * bridge's gateway address, with NEXUS_MANAGER_TOKEN). Returns the URL and the /etc/hosts lines.
 */
export function containerManagerUrl(url: string): { url: string; extraHosts: string[] } {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  const local = host === 'localhost' || host === '::1' || host === '::' || host === '0.0.0.0' || /^127\.\d+\.\d+\.\d+$/.test(host);
  if (local) u.hostname = HOST_GATEWAY_NAME;
  const extraHosts = u.hostname === HOST_GATEWAY_NAME ? [`${HOST_GATEWAY_NAME}:host-gateway`] : [];
  return { url: u.toString().replace(/\/+$/, ''), extraHosts };
}

/**
 * The hardened container spec of one agent (pure): non-root, read-only root filesystem with a
 * small /tmp tmpfs, all capabilities dropped, no-new-privileges, memory/CPU/pids limits, restart
 * unless-stopped (memory: the image's own limit from agent.json, else the workspace's), a HEALTHCHECK on /health, host port bound to the configured address.
 * The config-hash label covers everything (image id included), so any change recreates it.
 *
 * The manager link (issue 10 §5): when a manager URL is known (`config.manager.url`) and the agent
 * has a connection token (`record.agentToken`), the container gets NEXUS_MANAGER_URL (see
 * containerManagerUrl), NEXUS_AGENT_ID (the slug) and NEXUS_AGENT_TOKEN_FILE, with the token file
 * `.nexus/agent-tokens/<slug>` mounted read-only at AGENT_TOKEN_MOUNT: the token itself is never
 * in the spec, its environment (which `docker inspect` shows) or a label. The hash also covers the
 * token's issue time, so a rotated token recreates the container on the next start.
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
  const link = config.manager.url && record.agentToken ? containerManagerUrl(config.manager.url) : undefined;
  if (link) {
    spec.env.NEXUS_MANAGER_URL = link.url;
    spec.env.NEXUS_AGENT_ID = record.slug;
    spec.env.NEXUS_AGENT_TOKEN_FILE = AGENT_TOKEN_MOUNT;
    spec.secretFiles = [{ source: agentTokenFile(config.workspace, record.slug), target: AGENT_TOKEN_MOUNT }];
    if (link.extraHosts.length) spec.extraHosts = link.extraHosts;
  }
  // without a link the hashed object is what it was before links existed: no agent is recreated for it
  const hashed = link ? { spec, imageId: image.id, tokenIssuedAt: record.agentToken!.issuedAt } : { spec, imageId: image.id };
  const hash = createHash('sha256').update(JSON.stringify(hashed)).digest('hex').slice(0, 16);
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
