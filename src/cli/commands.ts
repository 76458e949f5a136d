import { AppError, ExitCode } from '../errors.js';
import { type FleetDeps } from '../fleet/context.js';
import { openRegistry } from '../registry/open.js';
import { join } from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import {
  agentLogs,
  buildAgents,
  createAgent,
  findContainer,
  listAgents,
  removeAgent,
  startAgents,
  stopAgents,
  type StartResult,
} from '../fleet/manager.js';
import { table } from './render.js';
import type { ListingSync } from '../fleet/marketplace.js';

// Use cases beyond the core load on demand: each command pays only for what it uses (axios,
// firebase-admin, the generators...), which keeps `agent list` and friends quick to start.
const lazy = {
  demo: () => import('../fleet/demo.js'),
  doctor: () => import('../fleet/doctor.js'),
  marketplace: () => import('../fleet/marketplace.js'),
  transfer: () => import('../fleet/registry-transfer.js'),
  production: () => import('../fleet/production.js'),
  swarm: () => import('../fleet/swarm.js'),
  push: () => import('../fleet/push.js'),
  scale: () => import('../fleet/scale.js'),
};

/** What a command returns: data for --json, text for humans, and the exit code (default 0). */
export interface CommandResult<T = unknown> {
  data: T;
  human: string;
  exitCode?: number;
}

function renderTransfer(r: { copied: string[]; skipped: { slug: string; reason: string }[] }, where: string): string {
  const lines = [`copied ${r.copied.length} agent(s) to ${where}${r.copied.length ? `: ${r.copied.join(', ')}` : ''}`];
  for (const s of r.skipped) lines.push(`skipped ${s.slug}: ${s.reason}`);
  return lines.join('\n');
}

/**
 * The lines a lifecycle command adds about marketplace listings: what changed, and a warning for
 * each stale one (the data keeps them in `listings`, with marketplace.pending in the record).
 */
export function renderListings(listings: ListingSync[] | undefined): string {
  const lines = (listings ?? []).flatMap((l) => {
    const what = l.change === 'unregister' ? 'removal' : `mark ${l.status ?? l.change}`;
    if (l.outcome === 'stale') return [`warning: ${l.name}'s marketplace listing is stale (pending ${what}): ${l.error?.message ?? 'not sent'}; retried by the next start/stop/remove or agent register`];
    if (l.outcome === 'done') return [`${l.name}: marketplace listing ${l.change === 'unregister' ? 'removed' : `marked ${l.status}`}`];
    return [];
  });
  return lines.length ? `\n\n${lines.join('\n')}` : '';
}

function renderStart(r: StartResult): string {
  if (r.agents.length === 0) return "no agents in this workspace; create one: agent create --name MyAgent --capabilities data";
  const rows = r.agents.map((a) => [a.name, a.outcome, a.port, a.outcome === 'failed' ? a.error?.message ?? '' : a.url]);
  let out = table(['agent', 'outcome', 'port', 'url / error'], rows);
  for (const a of r.agents.filter((x) => x.logs)) out += `\n\n${a.name}: last log lines:\n${a.logs}`;
  out += `\n\n${r.ok} healthy, ${r.failed} failed`;
  return out + renderListings(r.listings);
}

function startResult(r: StartResult): CommandResult<StartResult> {
  return { data: r, human: renderStart(r), exitCode: r.failed === 0 ? ExitCode.OK : r.failed === r.agents.length && r.agents.length === 1 ? ExitCode.UNHEALTHY : ExitCode.PARTIAL };
}

export const commands = {
  async create(deps: FleetDeps, o: { name: string; port?: number; capabilities?: string[]; description?: string; model?: string; agentVersion?: string }) {
    const r = await createAgent(deps, { name: o.name, port: o.port, capabilities: o.capabilities, description: o.description, model: o.model, version: o.agentVersion });
    return {
      data: r,
      human: `created ${r.agent.name} (${r.agent.slug}) on port ${r.agent.port}\n  source: ${r.path}\n  tools:  ${r.tools.join(', ')}\nnext: npm run agent -- start --name ${r.agent.name}`,
    };
  },

  async build(deps: FleetDeps, o: { name?: string[]; force?: boolean; offline?: boolean }) {
    if (o.offline) deps = { ...deps, config: { ...deps.config, images: { ...deps.config.images, offline: 'always' } } };
    const r = await buildAgents(deps, o.name?.length ? o.name : 'all', { force: o.force ?? false });
    const rows = r.agents.map((a) => [a.name, a.image, a.built ? 'built' : 'up to date']);
    return {
      data: r,
      human: `base image ${r.base.ref} (${r.base.built ? 'built' : 'up to date'}, FROM ${r.base.from || '?'})` + (rows.length ? `\n${table(['agent', 'image', 'result'], rows)}` : ''),
    };
  },

  async start(deps: FleetDeps, o: { name: string[] }) {
    return startResult(await startAgents(deps, o.name));
  },

  async startAll(deps: FleetDeps) {
    return startResult(await startAgents(deps, 'all'));
  },

  async stop(deps: FleetDeps, o: { name?: string[]; timeout?: number }, all = false) {
    const r = await stopAgents(deps, all ? 'all' : (o.name ?? []), o.timeout ?? 10);
    if (all) await (await lazy.scale()).removeLocalRouter(deps);
    return { data: r, human: (r.agents.length ? table(['agent', 'containers removed'], r.agents.map((a) => [a.name, a.removed])) : 'no agents') + renderListings(r.listings) };
  },

  async restart(deps: FleetDeps, o: { name: string[]; timeout?: number }) {
    await stopAgents(deps, o.name, o.timeout ?? 10);
    return startResult(await startAgents(deps, o.name));
  },

  async list(deps: FleetDeps) {
    const r = await listAgents(deps);
    const rows = r.agents.map((a) => [a.name, a.port, a.container, a.health, a.capabilities.join(','), a.url]);
    let human = r.agents.length ? table(['name', 'port', 'container', 'health', 'capabilities', 'url'], rows) : 'no agents in this workspace';
    if (r.orphans.length) human += `\n\ncontainers without a record (remove with docker rm -f): ${r.orphans.join(', ')}`;
    return { data: r, human };
  },

  async logs(deps: FleetDeps, o: { name: string; follow?: boolean; tail?: number }) {
    if (!o.follow) {
      const r = await agentLogs(deps, o.name, o.tail ?? 100);
      return { data: r, human: r.logs.trimEnd() };
    }
    await deps.engine.ping();
    const { container } = await findContainer(deps, o.name);
    const f = await deps.engine.followLogs(container.id, o.tail ?? 100, process.stdout);
    const onSig = () => f.stop();
    process.once('SIGINT', onSig);
    process.once('SIGTERM', onSig);
    await f.done;
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
    return { data: { name: o.name, followed: true }, human: '' };
  },

  async remove(deps: FleetDeps, o: { name: string; purge?: boolean }) {
    const r = await removeAgent(deps, o.name, { purge: o.purge ?? false });
    const gone = r.recordKept
      ? `removed ${r.name}'s containers and image; its record (and port ${r.port}) stays until its marketplace listing is removed`
      : `removed ${r.name} (port ${r.port} released)`;
    return { data: r, human: `${gone}${r.purged ? ', source deleted' : `; source kept in agents/${r.slug}/ (delete it, or use --purge)`}${renderListings(r.listings)}` };
  },

  async demo(deps: FleetDeps) {
    try {
      const { runDemo } = await lazy.demo();
      const r = await runDemo(deps);
      const rows = r.calls.map((c) => [c.agent, c.url, c.tool, c.status, JSON.stringify((c.body as { result?: unknown }).result ?? c.body)]);
      return {
        data: r,
        human: `${renderStart({ agents: r.start, ok: r.start.length, failed: 0 })}\n\n${table(['agent', 'url', 'tool', 'status', 'result'], rows)}\n\ntry: curl -X POST ${r.calls[0]?.url ?? 'http://localhost:8081'}/execute -H "Content-Type: application/json" -d '{"tool_name": "process_data", "parameters": {"data": [1,2,3,4,5]}}'`,
      };
    } catch (err) {
      if (err instanceof AppError && err.code === 'PARTIAL_FAILURE') {
        const d = err.details as unknown as { start: StartResult['agents'] };
        return { data: err.details, human: renderStart({ agents: d.start, ok: d.start.filter((a) => a.outcome !== 'failed').length, failed: d.start.filter((a) => a.outcome === 'failed').length }), exitCode: ExitCode.PARTIAL };
      }
      throw err;
    }
  },

  async register(deps: FleetDeps, o: { name?: string[]; all?: boolean; markUnavailable?: boolean }) {
    if (!o.all && !o.name?.length) throw new AppError('USAGE', 'register needs --name X or --all', { hint: 'agent register --all' });
    const { registerAgents } = await lazy.marketplace();
    const r = await registerAgents(deps, o.all ? 'all' : o.name!, { markUnavailable: o.markUnavailable ?? false });
    const rows = r.agents.map((a) => [a.name, a.outcome, a.api_endpoint, a.error ? `${a.error.message}${a.error.hint ? ` (${a.error.hint})` : ''}` : (a.id ?? '')]);
    const human = (r.agents.length ? `${table(['agent', 'outcome', 'api_endpoint', 'listing id / error'], rows)}\n\n${r.agents.length - r.failed} registered, ${r.failed} not` : 'no agents') + renderListings(r.listings);
    const single = r.agents.length === 1 ? r.agents[0] : undefined;
    const exitCode = r.failed === 0 ? ExitCode.OK : single?.outcome === 'refused' ? ExitCode.UNHEALTHY : single?.error?.code.startsWith('MARKETPLACE') ? ExitCode.MARKETPLACE : ExitCode.PARTIAL;
    return { data: r, human, exitCode };
  },

  async unregister(deps: FleetDeps, o: { name: string[] }) {
    const { unregisterAgents } = await lazy.marketplace();
    const r = await unregisterAgents(deps, o.name);
    return { data: r, human: r.agents.map((a) => `${a.name}: ${a.removed ? 'listing removed' : 'no listing was left at the marketplace'}`).join('\n') };
  },

  async cards(deps: FleetDeps, o: { name?: string[] }) {
    const { agentCards } = await lazy.marketplace();
    const r = await agentCards(deps, o.name?.length ? o.name : 'all');
    return { data: r, human: JSON.stringify(r.agents, null, 2) };
  },

  async registryExport(deps: FleetDeps, o: { output?: string }) {
    const { exportRegistry } = await lazy.transfer();
    const doc = await exportRegistry(deps.registry, deps.clock);
    if (o.output) {
      await writeFileAtomic(o.output, JSON.stringify(doc, null, 2) + '\n', { mode: 0o600 });
      return { data: { output: o.output, agents: doc.agents.length }, human: `exported ${doc.agents.length} agent(s) from the ${doc.registry} registry to ${o.output}` };
    }
    // the export itself is the output, with or without --json
    return { data: doc, human: JSON.stringify(doc, null, 2) };
  },

  async registryImport(deps: FleetDeps, o: { input: string }) {
    const { readExport, importRecords } = await lazy.transfer();
    const doc = await readExport(o.input);
    const r = await importRecords(deps.registry, doc.agents);
    return { data: r, human: renderTransfer(r, `the ${deps.registry.kind} registry`) };
  },

  async registryMigrate(deps: FleetDeps, o: { to: 'local' | 'firestore'; from?: 'local' | 'firestore' }) {
    const from = o.from ?? (o.to === 'firestore' ? 'local' : 'firestore');
    if (from === o.to) throw new AppError('USAGE', `--from and --to are both ${from}`, { hint: 'agent registry migrate --to firestore' });
    const source = from === deps.registry.kind ? deps.registry : await openRegistry(deps.config, from);
    const target = o.to === deps.registry.kind ? deps.registry : await openRegistry(deps.config, o.to);
    try {
      const { importRecords } = await lazy.transfer();
      const r = await importRecords(target, await source.list());
      return { data: { from, to: o.to, ...r }, human: renderTransfer(r, `the ${o.to} registry`) + (o.to !== deps.config.registry ? `\nnext: set registry: ${o.to} in nexus.yaml (or NEXUS_REGISTRY=${o.to})` : '') };
    } finally {
      if (source !== deps.registry) await source.close();
      if (target !== deps.registry) await target.close();
    }
  },

  async compose(deps: FleetDeps, o: { output?: string; router?: 'nginx' | 'traefik' | 'none'; routerPort?: number; routerImage?: string; registry?: string; network?: string; offlineRouter?: boolean }) {
    const { writeCompose } = await lazy.production();
    const r = await writeCompose(deps, o);
    return { data: r, human: `wrote ${r.files.join(', ')} (${r.agents} agents behind ${r.router})\nrun: docker-compose -p nexus -f ${r.files[0]} up -d` };
  },

  async routes(deps: FleetDeps, o: { nginx?: boolean; traefik?: boolean; outputDir?: string; routerPort?: number; registry?: string }) {
    if (!o.nginx && !o.traefik) throw new AppError('USAGE', 'routes needs --nginx or --traefik', { hint: 'agent routes --nginx' });
    const { writeNginxRoutes, writeTraefikRoutes } = await lazy.production();
    const files: string[] = [];
    const base = o.outputDir ?? deps.config.workspace;
    if (o.nginx) files.push(...(await writeNginxRoutes(deps, o.outputDir ?? join(base, 'nginx'), o)));
    if (o.traefik) files.push(...(await writeTraefikRoutes(deps, join(o.outputDir ?? join(base, 'traefik'), 'nexus-agents.yml'), o)));
    return { data: { files }, human: `wrote ${files.join(', ')}` };
  },

  async deploy(deps: FleetDeps, o: { swarm?: boolean; remove?: boolean; stack?: string; replicas?: number; routerPort?: number; registry?: string; offlineRouter?: boolean; waitTimeout?: number }) {
    if (!o.swarm) throw new AppError('USAGE', 'deploy needs a target: --swarm', { hint: 'agent deploy --swarm' });
    if (o.remove) {
      const { removeSwarm } = await lazy.swarm();
      const r = await removeSwarm(deps, o);
      return { data: r, human: `removed stack ${r.stack}` };
    }
    const { deploySwarm } = await lazy.swarm();
    const r = await deploySwarm(deps, { ...o, waitTimeoutS: o.waitTimeout });
    const running = r.outcomes.map((x) => `  ${x.service}: ${x.running}/${x.desired} running`).join('\n');
    return { data: r, human: `deployed stack ${r.stack} (${r.services.length} services on ${r.swarmNodes} node(s), router image ${r.routerImage}) from ${r.file}\n${running}\nwatch: docker stack services ${r.stack}` };
  },

  async scale(deps: FleetDeps, o: { name: string; replicas: number; routerPort?: number }) {
    const { scaleAgent } = await lazy.scale();
    const r = await scaleAgent(deps, o.name, o.replicas, { routerPort: o.routerPort });
    return { data: r, human: `${r.name}: ${r.replicas} replica(s) (${r.containers.join(', ')})\nload-balanced at ${r.url}` };
  },

  async push(deps: FleetDeps, o: { registry: string; name?: string[] }) {
    const { pushImages } = await lazy.push();
    const r = await pushImages(deps, o.registry, o.name?.length ? o.name : 'all');
    return { data: r, human: table(['image', 'pushed as', 'digest'], r.images.map((i) => [i.image, i.pushed, i.digest])) };
  },

  async doctor(deps: FleetDeps) {
    const { runDoctor } = await lazy.doctor();
    const r = await runDoctor(deps);
    const mark = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' } as const;
    const human = r.checks.map((c) => `${mark[c.status]}  ${c.name.padEnd(11)} ${c.detail}${c.hint && c.status !== 'ok' ? `\n      hint: ${c.hint}` : ''}`).join('\n');
    return { data: r, human, exitCode: r.exitCode };
  },
} satisfies Record<string, (deps: FleetDeps, o: any, ...rest: any[]) => Promise<CommandResult>>;
