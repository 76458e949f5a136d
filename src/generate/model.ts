import type { Config } from '../config/config.js';
import { agentImageRef } from '../names.js';
import type { AgentRecord } from '../registry/registry.js';
import { AGENT_TMP, CONTAINER_PORT, HARDENED, ROUTER_PORT, STOP_GRACE_S, dialUrl, routerPath, type Healthcheck } from '../conventions.js';
import { AppError } from '../errors.js';
import { composeLiteral } from './escape.js';

/** What the production generators need of one agent. Pure data, no I/O. */
export interface AgentTarget {
  name: string;
  slug: string;
  description: string;
  version: string;
  capabilities: string[];
  tools: { name: string; description: string }[];
  /** Image reference, registry-qualified when a registry prefix is given. */
  image: string;
  /** Path prefix the router serves the agent under: /agents/<slug>. */
  path: string;
  /** Whether agents/<slug>/.env exists: it is then referenced (env_file), never inlined. */
  envFile: boolean;
}

/** Shared settings of the generated files. */
export interface ProductionOptions {
  /** Compose network the agents and the router share. */
  network: string;
  /** Host address and port the router publishes. */
  routerBind: { address: string; port: number };
  /** Public base URL of the router (cards' api_endpoint), e.g. http://127.0.0.1:8088. */
  publicUrl: string;
  /** Registry prefix for images (e.g. localhost:5000/), or '' for local images. */
  registryPrefix: string;
  /** Body limit in bytes the router enforces (the agents enforce the same). */
  bodyLimitBytes: number;
}

export const DEFAULT_PRODUCTION: ProductionOptions = {
  network: 'nexus-agents',
  routerBind: { address: '127.0.0.1', port: ROUTER_PORT },
  publicUrl: dialUrl('127.0.0.1', ROUTER_PORT),
  registryPrefix: '',
  bodyLimitBytes: 1024 * 1024,
};

/** Port the agents listen on inside their containers (the house convention). */
export const AGENT_PORT = CONTAINER_PORT;

/** Compose/Swarm `healthcheck` of the house's HEALTHCHECK (durations as Compose strings). */
export function composeHealthcheck(hc: Healthcheck): Record<string, unknown> {
  return { test: ['CMD', ...hc.test], interval: `${hc.intervalS}s`, timeout: `${hc.timeoutS}s`, retries: hc.retries, start_period: `${hc.startPeriodS}s` };
}

/** Compose `stop_grace_period`: the house's SIGTERM-to-SIGKILL delay. */
export const STOP_GRACE_PERIOD = `${STOP_GRACE_S}s`;

/** Compose short-syntax tmpfs of an agent's /tmp. */
export const AGENT_TMPFS_SHORT = `${AGENT_TMP.path}:${AGENT_TMP.options}`;

/**
 * What every generated agent service has, in Compose and Swarm alike (pure): its image, an init
 * process, the non-root user, a read-only root filesystem, no capabilities, its environment (no
 * secrets: those come from agents/<slug>/.env through env_file).
 */
export function agentServiceCore(a: AgentTarget, o: ProductionOptions): Record<string, unknown> {
  return {
    image: a.image,
    init: HARDENED.init,
    user: HARDENED.user,
    read_only: HARDENED.readOnlyRootfs,
    cap_drop: [...HARDENED.capDrop],
    environment: { PORT: String(AGENT_PORT), LOG_LEVEL: 'info', AGENT_PUBLIC_URL: composeLiteral(`${o.publicUrl}${a.path}`) },
    ...(a.envFile ? { env_file: [`agents/${a.slug}/.env`] } : {}),
  };
}

/** Records -> generator input (pure). `hasEnvFile` tells which agents have an agents/<slug>/.env. */
export function agentTargets(config: Config, records: readonly AgentRecord[], opts: ProductionOptions, hasEnvFile: (slug: string) => boolean = () => false): AgentTarget[] {
  return records.map((r) => ({
    name: r.name,
    slug: r.slug,
    description: r.description,
    version: r.version,
    capabilities: r.capabilities,
    tools: (r.tools ?? []).map((t) => ({ name: t.name, description: t.description })),
    // the tag is interpolated by Compose/Swarm, so one file serves any tag: NEXUS_IMAGE_TAG=v2 docker-compose up
    image: `${opts.registryPrefix}${agentImageRef(r.slug, `\${NEXUS_IMAGE_TAG:-${config.images.tag}}`, config.project)}`,
    path: routerPath(r.slug),
    envFile: hasEnvFile(r.slug),
  }));
}

/** Compose network names: what Docker accepts for a network name (a letter or digit, then [A-Za-z0-9_.-]). */
const NETWORK_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/**
 * Refuse a file whose services or network cannot be expressed: an agent whose slug is `router`
 * when the file also has the router service (one would silently replace the other), two agents
 * with one slug, or a network name Docker would refuse.
 * @throws AppError USAGE naming the file kind and the clash.
 */
export function checkServiceNames(file: string, agents: readonly AgentTarget[], withRouter: boolean, network: string): void {
  if (!NETWORK_RE.test(network)) {
    throw new AppError('USAGE', `cannot write ${file}: network name ${JSON.stringify(network.slice(0, 60))} is not a Docker network name`, { hint: 'use letters, digits, "_", "." and "-" (--network)' });
  }
  const seen = new Set<string>();
  for (const a of agents) {
    if (withRouter && a.slug === 'router') {
      throw new AppError('USAGE', `cannot write ${file}: agent 'router' has the router service's name`, { hint: "rename the agent, or generate without a router (--router none)" });
    }
    if (seen.has(a.slug)) throw new AppError('USAGE', `cannot write ${file}: two agents have the slug '${a.slug}'`, { hint: 'check the registry (agent registry export)' });
    seen.add(a.slug);
  }
}
