import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { AppError } from '../errors.js';
import { agentUrl } from '../conventions.js';
import { logger } from '../log.js';
import { validateAgentName, validateAgentVersion } from '../names.js';
import { agentDir } from '../paths.js';
import { hostPortProbe } from '../ports/probe.js';
import { nameTaken } from '../registry/errors.js';
import type { AgentRecord } from '../registry/registry.js';
import { planCapabilities } from '../scaffold/capabilities.js';
import { renderAgentFiles, writeAgentDir } from '../scaffold/render.js';
import { agentTokenFile, issueAgentToken } from './agent-tokens.js';
import type { FleetDeps } from './context.js';

const log = logger('fleet');

export interface CreateOptions {
  name: string;
  capabilities?: string[] | undefined;
  port?: number | undefined;
  description?: string | undefined;
  model?: string | undefined;
  version?: string | undefined;
}

export interface CreateResult {
  agent: AgentRecord;
  /** Absolute path of the rendered source folder. */
  path: string;
  tools: string[];
  url: string;
  /**
   * The agent's connection token for `/ws/agent` (NEXUS_AGENT_TOKEN), shown this once: the
   * registry keeps only its sha256 (src/fleet/agent-tokens.ts).
   */
  agentToken: string;
}

/**
 * Create an agent: validate name, capabilities and port, reserve the port and write the record
 * in one registry step, then render agent-template/ into agents/<slug>/. Any failure leaves
 * nothing behind (the record is removed again if rendering fails).
 * @throws AppError NAME_INVALID, USAGE (bad version), CAPABILITY_UNKNOWN, SOURCE_EXISTS, NAME_TAKEN, PORT_*
 */
export async function createAgent(deps: FleetDeps, opts: CreateOptions): Promise<CreateResult> {
  const { config, registry } = deps;
  const slug = validateAgentName(opts.name);
  const version = validateAgentVersion(opts.version ?? '0.1.0');
  const plan = planCapabilities(opts.capabilities ?? []);
  const dir = agentDir(config.workspace, slug);
  const taken = await registry.get(slug);
  if (taken) {
    throw nameTaken(slug, taken.name);
  }
  if (existsSync(dir)) {
    throw new AppError('SOURCE_EXISTS', `${dir} already exists but no agent '${opts.name}' is registered`, {
      hint: 'move or delete that folder, or choose another --name',
    });
  }
  const description = opts.description ?? `${opts.name}: ${plan.capabilities.join(', ')} agent`;
  const record = await registry.create(
    {
      name: opts.name,
      slug,
      description,
      capabilities: plan.capabilities,
      category: plan.category,
      model: opts.model ?? 'none',
      version,
    },
    { range: config.ports.range, requested: opts.port, isHostPortFree: hostPortProbe(config.ports.bindAddress) },
  );
  let agentToken: string;
  try {
    agentToken = await issueAgentToken(deps, slug);
    const files = await renderAgentFiles({ ...record, tools: plan.tools });
    await writeAgentDir(dir, files);
  } catch (err) {
    await registry.remove(slug);
    await rm(agentTokenFile(config.workspace, slug), { force: true });
    throw err;
  }
  log.debug({ agent: slug, port: record.port }, 'agent created');
  return { agent: (await registry.get(slug)) ?? record, path: dir, tools: plan.tools, url: agentUrl(config, record.port), agentToken };
}

