import * as z from 'zod';
import { AppError } from '../errors.js';
import { lazy, or, names, registerExitCode, routerPort, type UseCase } from './usecase.js';

const opt = z.string().optional();
const flag = z.boolean().optional();
const kind = z.enum(['local', 'firestore']);
const market = () => import('./marketplace.js');

/** Marketplace, generators, deploy, registry transfer and doctor (see src/fleet/usecase.ts for the shape). */
export const MORE_USE_CASES = [
  {
    name: 'register',
    description: 'register agent cards with the marketplace (MARKETPLACE_URL, MARKETPLACE_API_KEY)',
    options: [
      { flags: '--name <name...>', description: 'agents to register' },
      { flags: '--all', description: 'every agent of the workspace' },
      { flags: '--mark-unavailable', description: 'list agents that are not healthy as unavailable instead of refusing them' },
    ],
    input: lazy(() => z.object({ name: names, all: flag, markUnavailable: flag })),
    run: async (o, deps) => {
      if (!o.all && !o.name?.length) throw new AppError('USAGE', 'register needs --name X or --all', { hint: 'agent register --all' });
      return (await market()).registerAgents(deps, o.all ? 'all' : o.name!, { markUnavailable: o.markUnavailable ?? false });
    },
    exitCode: registerExitCode,
  } satisfies UseCase<{ name?: string[] | undefined; all?: boolean | undefined; markUnavailable?: boolean | undefined }>,
  {
    name: 'unregister',
    description: "remove agents' listings from the marketplace",
    options: [{ flags: '--name <name...>', description: 'agents to unregister', required: true }],
    input: lazy(() => z.object({ name: z.array(z.string()) })),
    run: async (o, deps) => (await market()).unregisterAgents(deps, o.name),
  } satisfies UseCase<{ name: string[] }>,
  {
    name: 'cards',
    description: 'print agent cards: the marketplace card and the A2A AgentCard',
    options: [{ flags: '--name <name...>', description: 'only these agents' }],
    input: lazy(() => z.object({ name: names })),
    run: async (o, deps) => (await market()).agentCards(deps, or(o.name, 'all')),
  } satisfies UseCase<{ name?: string[] | undefined }>,
  {
    name: 'compose',
    description: 'write docker-compose-agents.yml: every agent behind a router (nginx by default)',
    options: [
      { flags: '--output <file>', description: 'compose file to write', default: 'docker-compose-agents.yml' },
      { flags: '--router <kind>', description: 'router in front of the agents', choices: ['nginx', 'traefik', 'none'], default: 'nginx' },
      routerPort('host port the router publishes'),
      { flags: '--router-image <image>', description: 'router image (default nginx:1.27-alpine / traefik:v3.1)' },
      { flags: '--registry <host[:port]>', description: 'qualify agent images with this container registry' },
      { flags: '--network <name>', description: 'compose network of the agents and the router', default: 'nexus-agents' },
      { flags: '--offline-router', description: "build the nginx router image from this host's nginx (no registry needed)" },
    ],
    input: lazy(() => z.object({ output: opt, router: z.enum(['nginx', 'traefik', 'none']).optional(), routerPort: z.number().optional(), routerImage: opt, registry: opt, network: opt, offlineRouter: flag })),
    run: async (o, deps) => (await import('./production.js')).writeCompose(deps, o as never),
  } satisfies UseCase<{ output?: string | undefined; router?: 'nginx' | 'traefik' | 'none' | undefined; routerPort?: number | undefined; routerImage?: string | undefined; registry?: string | undefined; network?: string | undefined; offlineRouter?: boolean | undefined }>,
  {
    name: 'routes',
    description: 'write router configuration: nginx (conf.d + agents index) and/or traefik (file provider)',
    options: [
      { flags: '--nginx', description: 'nginx server block and /.well-known/agents.json' },
      { flags: '--traefik', description: 'traefik dynamic configuration' },
      { flags: '--output-dir <dir>', description: 'where to write (default: nginx/ and traefik/ in the workspace)' },
      routerPort('host port the router publishes (for the public URLs)'),
    ],
    input: lazy(() => z.object({ nginx: flag, traefik: flag, outputDir: opt, routerPort: z.number().optional() })),
    run: async (o, deps) => (await import('./commands.js')).routes(deps, o),
  } satisfies UseCase<{ nginx?: boolean | undefined; traefik?: boolean | undefined; outputDir?: string | undefined; routerPort?: number | undefined }>,
  {
    name: 'scale',
    description: 'run N replicas of an agent on this engine, load-balanced by a local nginx router',
    options: [
      { flags: '--name <name>', description: 'agent', required: true },
      { flags: '--replicas <n>', description: 'replicas (1 or more)', parse: 'count', required: true },
      routerPort('host port of the local router'),
    ],
    input: lazy(() => z.object({ name: z.string(), replicas: z.number(), routerPort: z.number().optional() })),
    run: async (o, deps) => (await import('./scale.js')).scaleAgent(deps, o.name, o.replicas, { routerPort: o.routerPort }),
  } satisfies UseCase<{ name: string; replicas: number; routerPort?: number | undefined }>,
  {
    name: 'push',
    description: 'tag and push the base and agent images to a container registry (for Swarm nodes)',
    options: [{ flags: '--registry <host[:port]>', description: 'registry address, e.g. localhost:5000', required: true }, { flags: '--name <name...>', description: 'only these agents' }],
    input: lazy(() => z.object({ registry: z.string(), name: names })),
    run: async (o, deps) => (await import('./push.js')).pushImages(deps, o.registry, or(o.name, 'all')),
  } satisfies UseCase<{ registry: string; name?: string[] | undefined }>,
  {
    name: 'deploy',
    description: 'deploy the fleet as Docker Swarm services behind the nginx router (docker stack deploy)',
    options: [
      { flags: '--swarm', description: 'deploy to the swarm this engine manages' },
      { flags: '--remove', description: 'remove the deployed stack' },
      { flags: '--stack <name>', description: 'stack name', default: 'nexus' },
      { flags: '--replicas <n>', description: 'replicas per agent', parse: 'count', default: 1 },
      routerPort('port the router publishes on every node'),
      { flags: '--registry <host[:port]>', description: 'pull agent images from this registry (see push)' },
      { flags: '--offline-router', description: "build the router image from this host's nginx" },
      { flags: '--wait-timeout <seconds>', description: 'how long to wait for every service to run healthy (default 180)', parse: 'count' },
    ],
    input: lazy(() => z.object({ swarm: flag, remove: flag, stack: opt, replicas: z.number().optional(), routerPort: z.number().optional(), registry: opt, offlineRouter: flag, waitTimeout: z.number().optional() })),
    run: async (o, deps) => {
      if (!o.swarm) throw new AppError('USAGE', 'deploy needs a target: --swarm', { hint: 'agent deploy --swarm' });
      const swarm = await import('./swarm.js');
      if (o.remove) return { removed: await swarm.removeSwarm(deps, o) };
      return { deployed: await swarm.deploySwarm(deps, { ...o, waitTimeoutS: o.waitTimeout } as never) };
    },
  } satisfies UseCase<{ swarm?: boolean | undefined; remove?: boolean | undefined; stack?: string | undefined; replicas?: number | undefined; routerPort?: number | undefined; registry?: string | undefined; offlineRouter?: boolean | undefined; waitTimeout?: number | undefined }>,
  {
    name: 'registry export',
    description: 'write every agent record as JSON (stdout, or --output FILE)',
    options: [{ flags: '--output <file>', description: 'file to write (mode 0600)' }],
    input: lazy(() => z.object({ output: opt })),
    run: async (o, deps) => (await import('./commands.js')).registryExport(deps, o.output),
  } satisfies UseCase<{ output?: string | undefined }>,
  {
    name: 'registry import',
    description: "read an 'export' file into the configured registry (agents already there are skipped)",
    options: [{ flags: '--input <file>', description: 'file written by registry export', required: true }],
    input: lazy(() => z.object({ input: z.string() })),
    run: async (o, deps) => (await import('./commands.js')).registryImport(deps, o.input),
  } satisfies UseCase<{ input: string }>,
  {
    name: 'registry migrate',
    description: 'copy every record from one registry to the other (idempotent)',
    options: [
      { flags: '--to <registry>', description: 'local or firestore', parse: 'registry-kind', required: true },
      { flags: '--from <registry>', description: 'local or firestore (default: the other one)', parse: 'registry-kind' },
    ],
    input: lazy(() => z.object({ to: kind, from: kind.optional() })),
    run: async (o, deps, io) => (await import('./commands.js')).registryMigrate(deps, o.to, o.from, io.env),
  } satisfies UseCase<{ to: 'local' | 'firestore'; from?: 'local' | 'firestore' | undefined }>,
  {
    name: 'doctor',
    description: 'check Node, the Docker engine, the base image, the port range and the registry',
    options: [],
    input: lazy(() => z.object({})),
    run: async (_, deps) => (await import('./doctor.js')).runDoctor(deps),
    exitCode: (r) => r.exitCode,
  } satisfies UseCase<Record<string, never>, { exitCode: number }>,
] as const;
