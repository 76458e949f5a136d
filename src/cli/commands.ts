import { ExitCode } from '../errors.js';
import type { FleetDeps } from '../fleet/context.js';
import type { ListingSync } from '../fleet/marketplace.js';
import type { StartResult } from '../fleet/start.js';
import { USE_CASES, type UseCase, type UseCaseIo, type UseCaseName } from '../fleet/usecases.js';
import { table } from './render.js';

/** What a command prints: data for --json, text for humans, and the exit code (default 0). */
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

/** How each command's result reads for a person, and (when it differs from the result) what --json prints. */
type View = { human: (r: any) => string; json?: (r: any) => unknown };

const startView: View = { human: renderStart };

/** The human renderers, by use case name (src/fleet/usecases.ts). */
export const VIEWS: Record<string, View> = {
  create: { human: (r) => `created ${r.agent.name} (${r.agent.slug}) on port ${r.agent.port}\n  source: ${r.path}\n  tools:  ${r.tools.join(', ')}\n  connection token (NEXUS_AGENT_TOKEN, shown once): ${r.agentToken}\nnext: npm run agent -- start --name ${r.agent.name}` },
  build: {
    human: (r) => {
      const rows = r.agents.map((a: any) => [a.name, a.image, a.built ? 'built' : 'up to date']);
      return `base image ${r.base.ref} (${r.base.built ? 'built' : 'up to date'}, FROM ${r.base.from || '?'})` + (rows.length ? `\n${table(['agent', 'image', 'result'], rows)}` : '');
    },
  },
  start: startView,
  'start-all': startView,
  restart: startView,
  stop: { human: (r) => (r.agents.length ? table(['agent', 'containers removed'], r.agents.map((a: any) => [a.name, a.removed])) : 'no agents') + renderListings(r.listings) },
  list: {
    human: (r) => {
      const rows = r.agents.map((a: any) => [a.name, a.port, a.container, a.health, a.capabilities.join(','), a.url]);
      let human = r.agents.length ? table(['name', 'port', 'container', 'health', 'capabilities', 'url'], rows) : 'no agents in this workspace';
      if (r.orphans.length) human += `\n\ncontainers without a record (remove with docker rm -f): ${r.orphans.join(', ')}`;
      return human;
    },
  },
  logs: { human: (r) => (r.followed ? '' : r.logs.trimEnd()) },
  remove: {
    human: (r) => {
      const gone = r.recordKept
        ? `removed ${r.name}'s containers and image; its record (and port ${r.port}) stays until its marketplace listing is removed`
        : `removed ${r.name} (port ${r.port} released)`;
      return `${gone}${r.purged ? ', source deleted' : `; source kept in agents/${r.slug}/ (delete it, or use --purge)`}${renderListings(r.listings)}`;
    },
  },
  demo: {
    json: (r) => r.demo,
    human: (r) => {
      const start = renderStart({ agents: r.demo.start, ok: r.ok, failed: r.failed });
      if (r.partial) return start;
      const rows = r.demo.calls.map((c: any) => [c.agent, c.url, c.tool, c.status, JSON.stringify((c.body as { result?: unknown }).result ?? c.body)]);
      return `${start}\n\n${table(['agent', 'url', 'tool', 'status', 'result'], rows)}\n\ntry: curl -X POST ${r.demo.calls[0]?.url ?? 'http://localhost:8081'}/execute -H "Content-Type: application/json" -d '{"tool_name": "process_data", "parameters": {"data": [1,2,3,4,5]}}'`;
    },
  },
  register: {
    human: (r) => {
      const rows = r.agents.map((a: any) => [a.name, a.outcome, a.api_endpoint, a.error ? `${a.error.message}${a.error.hint ? ` (${a.error.hint})` : ''}` : (a.id ?? '')]);
      return (r.agents.length ? `${table(['agent', 'outcome', 'api_endpoint', 'listing id / error'], rows)}\n\n${r.agents.length - r.failed} registered, ${r.failed} not` : 'no agents') + renderListings(r.listings);
    },
  },
  unregister: { human: (r) => r.agents.map((a: any) => `${a.name}: ${a.removed ? 'listing removed' : 'no listing was left at the marketplace'}`).join('\n') },
  cards: { human: (r) => JSON.stringify(r.agents, null, 2) },
  compose: { human: (r) => `wrote ${r.files.join(', ')} (${r.agents} agents behind ${r.router})\nrun: docker-compose -p nexus -f ${r.files[0]} up -d` },
  routes: { human: (r) => `wrote ${r.files.join(', ')}` },
  scale: { human: (r) => `${r.name}: ${r.replicas} replica(s) (${r.containers.join(', ')})\nload-balanced at ${r.url}` },
  rollout: { human: (r) => `${r.name}: ${r.from} -> ${r.to} (generation ${r.generation}, ${r.image.ref})\nserving: ${r.containers.join(', ')}\ndrained: ${r.drained.join(', ')}\nload-balanced at ${r.url}` },
  rollback: { human: (r) => `${r.name}: rolled back ${r.from} -> ${r.to} (${r.image.ref})\nserving: ${r.containers.join(', ')}\ndrained: ${r.drained.join(', ')}\nload-balanced at ${r.url}` },
  push: { human: (r) => table(['image', 'pushed as', 'digest'], r.images.map((i: any) => [i.image, i.pushed, i.digest])) },
  deploy: {
    json: (r) => r.removed ?? r.deployed,
    human: (r) => {
      if (r.removed) return `removed stack ${r.removed.stack}`;
      const d = r.deployed;
      const running = d.outcomes.map((x: any) => `  ${x.service}: ${x.running}/${x.desired} running`).join('\n');
      return `deployed stack ${d.stack} (${d.services.length} services on ${d.swarmNodes} node(s), router image ${d.routerImage}) from ${d.file}\n${running}\nwatch: docker stack services ${d.stack}`;
    },
  },
  'registry export': {
    // the export itself is the output, with or without --json
    json: (r) => r.doc ?? { output: r.written.output, agents: r.written.agents },
    human: (r) => (r.doc ? JSON.stringify(r.doc, null, 2) : `exported ${r.written.agents} agent(s) from the ${r.written.registry} registry to ${r.written.output}`),
  },
  'registry import': { json: ({ to, ...r }) => r, human: (r) => renderTransfer(r, `the ${r.to} registry`) },
  'registry migrate': {
    json: ({ configured, ...r }) => r,
    human: (r) => renderTransfer(r, `the ${r.to} registry`) + (r.to !== r.configured ? `\nnext: set registry: ${r.to} in nexus.yaml (or NEXUS_REGISTRY=${r.to})` : ''),
  },
  serve: { human: (r) => `manager stopped (was ${r.url})` },
  // the token alone on the first line (for scripts); it is shown once and stored nowhere
  'token create': { human: (r) => `${r.token}\n# id ${r.jti}, scope ${r.scope}, expires ${r.expiresAt}; shown once: store it now (revoke: agent token revoke ${r.jti})` },
  'token revoke': { human: (r) => (r.alreadyRevoked ? `token ${r.jti} was already revoked` : `revoked token ${r.jti}`) },
  'token list': {
    human: (r) => (r.tokens.length ? table(['id', 'scope', 'label', 'expires', 'revoked'], r.tokens.map((t: any) => [t.jti, t.scope, t.label ?? '', t.expiresAt, t.revoked ? 'yes' : 'no'])) : 'no live tokens'),
  },
  'token rotate-agent': { human: (r) => `${r.token}\n# new connection token of ${r.agent} (NEXUS_AGENT_TOKEN), shown once; the old one no longer connects` },
  'token revoke-agent': { human: (r) => (r.revoked ? `revoked the connection token of ${r.agent}` : `${r.agent} had no connection token`) },
  doctor: {
    human: (r) => {
      const mark = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' } as const;
      return r.checks.map((c: any) => `${mark[c.status as keyof typeof mark]}  ${c.name.padEnd(11)} ${c.detail}${c.hint && c.status !== 'ok' ? `\n      hint: ${c.hint}` : ''}`).join('\n');
    },
  },
};

/**
 * Run a use case and render its result: input validated by its schema, then data (--json),
 * human text and exit code. `o` are the parsed options (commander's camelCase names).
 */
export async function runCommand(uc: UseCase, deps: FleetDeps, o: Record<string, unknown>, io: UseCaseIo = { out: process.stdout }): Promise<CommandResult> {
  const r = await uc.run(uc.input().parse(o), deps, io);
  const view = VIEWS[uc.name];
  return { data: view?.json ? view.json(r) : r, human: view ? view.human(r) : JSON.stringify(r, null, 2), exitCode: uc.exitCode?.(r) ?? ExitCode.OK };
}

/** Every command as `(deps, options) => CommandResult`, by name (tests and scripts call these). */
export const commands = Object.fromEntries(
  USE_CASES.map((uc) => [uc.name, (deps: FleetDeps, o: Record<string, unknown> = {}) => runCommand(uc, deps, o)]),
) as Record<UseCaseName, (deps: FleetDeps, o?: Record<string, unknown>) => Promise<CommandResult<any>>>;
