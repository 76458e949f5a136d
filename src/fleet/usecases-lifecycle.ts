import * as z from 'zod';
import { ExitCode } from '../errors.js';
import type { FleetDeps } from './context.js';
import { allAgents, fleet, lazy, names, or, startExitCode, timeout, type UseCase } from './usecase.js';

const stop = async (o: { name?: string[] | undefined; timeout: number }, deps: FleetDeps, all: boolean) => (await fleet()).stopAgents(deps, all ? 'all' : (o.name ?? []), o.timeout, { removeRouter: all });
const start = async (list: string[] | 'all', deps: FleetDeps) => (await import('./start.js')).startAgents(deps, list);

/** The lifecycle commands (see src/fleet/usecase.ts for the shape). */
export const LIFECYCLE_USE_CASES = [
  {
    name: 'create',
    description: 'scaffold a new agent from agent-template/ and reserve its port',
    options: [
      { flags: '--name <name>', description: 'agent name, e.g. DataAgent (slug: data-agent)', required: true },
      { flags: '--port <port>', description: 'host port from the range (default: the lowest free one)', parse: 'port' },
      { flags: '--capabilities <capability...>', description: 'capabilities, e.g. data analytics (pick the starter tools)' },
      { flags: '--description <text>', description: 'one-line description' },
      { flags: '--model <model>', description: 'model the agent uses (marketplace card)', default: 'none' },
      { flags: '--agent-version <semver>', description: 'agent version', default: '0.1.0' },
    ],
    input: lazy(() => z.object({ name: z.string(), port: z.number().optional(), capabilities: names, description: z.string().optional(), model: z.string().default('none'), agentVersion: z.string().default('0.1.0') })),
    run: async (o, deps) => (await import('./create.js')).createAgent(deps, { name: o.name, port: o.port, capabilities: o.capabilities, description: o.description, model: o.model, version: o.agentVersion }),
  } satisfies UseCase<{ name: string; port?: number | undefined; capabilities?: string[] | undefined; description?: string | undefined; model: string; agentVersion: string }>,
  {
    name: 'build',
    description: 'build the base image (cached) and agent images (skipped when unchanged)',
    options: [
      { flags: '--name <name...>', description: 'only these agents' },
      { flags: '--force', description: 'rebuild the base image even when up to date' },
      { flags: '--offline', description: "build the base image from this host's Node runtime (no registry needed)" },
    ],
    input: lazy(() => z.object({ name: names, force: z.boolean().optional(), offline: z.boolean().optional() })),
    run: async (o, deps) => (await import('./build.js')).buildAgents((await import('./commands.js')).withOffline(deps, o.offline), or(o.name, 'all'), { force: o.force ?? false }),
  } satisfies UseCase<{ name?: string[] | undefined; force?: boolean | undefined; offline?: boolean | undefined }>,
  {
    name: 'start',
    description: 'build if needed and start agents, waiting for health',
    options: [{ flags: '--name <name...>', description: 'agents to start', required: true }],
    input: lazy(() => z.object({ name: z.array(z.string()) })),
    run: (o, deps) => start(o.name, deps),
    exitCode: startExitCode,
    progressTotal: async () => 1,
  } satisfies UseCase<{ name: string[] }>,
  {
    name: 'start-all',
    description: 'build what is missing and start every agent in parallel (idempotent)',
    options: [],
    input: lazy(() => z.object({})),
    run: (_, deps) => start('all', deps),
    exitCode: startExitCode,
    progressTotal: allAgents,
  } satisfies UseCase<Record<string, never>>,
  {
    name: 'stop',
    description: 'stop agents (SIGTERM, then SIGKILL after --timeout) and remove their containers',
    options: [{ flags: '--name <name...>', description: 'agents to stop', required: true }, timeout],
    input: lazy(() => z.object({ name: z.array(z.string()), timeout: z.number().default(10) })),
    run: (o, deps) => stop(o, deps, false),
  } satisfies UseCase<{ name: string[]; timeout: number }>,
  {
    name: 'stop-all',
    description: 'stop every agent of the workspace',
    options: [timeout],
    input: lazy(() => z.object({ timeout: z.number().default(10) })),
    run: (o, deps) => stop(o, deps, true),
  } satisfies UseCase<{ timeout: number }>,
  {
    name: 'restart',
    description: 'stop then start agents (ships source changes)',
    options: [{ flags: '--name <name...>', description: 'agents to restart', required: true }, timeout],
    input: lazy(() => z.object({ name: z.array(z.string()), timeout: z.number().default(10) })),
    run: async (o, deps) => {
      await stop(o, deps, false);
      return start(o.name, deps);
    },
    exitCode: startExitCode,
  } satisfies UseCase<{ name: string[]; timeout: number }>,
  {
    name: 'list',
    alias: 'ls',
    description: 'agents: registry record + live container state + health',
    options: [],
    input: lazy(() => z.object({})),
    run: async (_, deps) => (await import('./list.js')).listAgents(deps),
  } satisfies UseCase<Record<string, never>>,
  {
    name: 'logs',
    description: "an agent's container logs",
    options: [
      { flags: '--name <name>', description: 'agent', required: true },
      { flags: '-f, --follow', description: 'keep streaming until Ctrl-C' },
      { flags: '--tail <lines>', description: 'lines from the end', parse: 'count', default: 100 },
    ],
    input: lazy(() => z.object({ name: z.string(), follow: z.boolean().optional(), tail: z.number().default(100) })),
    run: async (o, deps, io) => {
      const logs = await import('./logs.js');
      return o.follow ? logs.followAgentLogs(deps, o.name, o.tail, io.out, io.signal) : logs.agentLogs(deps, o.name, o.tail);
    },
  } satisfies UseCase<{ name: string; follow?: boolean | undefined; tail: number }>,
  {
    name: 'remove',
    alias: 'rm',
    description: 'remove an agent: container, image, record (releases the port)',
    options: [{ flags: '--name <name>', description: 'agent', required: true }, { flags: '--purge', description: 'also delete its source folder agents/<slug>/' }],
    input: lazy(() => z.object({ name: z.string(), purge: z.boolean().optional() })),
    run: async (o, deps) => (await import('./remove.js')).removeAgent(deps, o.name, { purge: o.purge ?? false }),
  } satisfies UseCase<{ name: string; purge?: boolean | undefined }>,
  {
    name: 'demo',
    description: "create and start the seed's five demo agents and call a tool on each",
    options: [],
    input: lazy(() => z.object({})),
    run: async (_, deps) => (await import('./commands.js')).demo(deps),
    exitCode: (r) => (r.partial ? ExitCode.PARTIAL : ExitCode.OK),
    progressTotal: async () => 5,
  } satisfies UseCase<Record<string, never>, { partial: boolean }>,
] as const satisfies readonly UseCase[];
