import { resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../config/config.js';
import { DockerEngine } from '../engine/docker.js';
import { AppError, ExitCode, isAppError, messageOf } from '../errors.js';
import type { FleetDeps } from '../fleet/context.js';
import { setLogLevel } from '../log.js';
import { openRegistry } from '../registry/open.js';
import { commands, type CommandResult } from './commands.js';
import { Progress, terminalSafe } from './render.js';

interface GlobalOpts {
  workspace?: string;
  json?: boolean;
  verbose?: boolean;
}

interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: Record<string, string | undefined>;
  cwd: string;
}

function parsePort(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 65535) throw new InvalidArgumentError('must be a port number (1-65535)');
  return n;
}
function parsePositive(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('must be a whole number');
  return n;
}

/**
 * The workspace: --workspace, else NEXUS_WORKSPACE, else the folder `npm run` was called from
 * (INIT_CWD), else the current folder.
 */
function workspaceOf(g: GlobalOpts, io: Io): string {
  return resolve(g.workspace ?? io.env.NEXUS_WORKSPACE ?? io.env.INIT_CWD ?? io.cwd);
}

/**
 * Run the CLI with `argv` (without node and script). Returns the exit code; never calls
 * process.exit. --json prints exactly the command's data (or {"error": ...}) on stdout.
 */
export async function main(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() }): Promise<number> {
  let exitCode: number = ExitCode.OK;
  let json = false;
  const program = new Command('agent')
    .description('Nexus Delta agents: run a fleet of tool-serving HTTP agents, one Docker container each.')
    .option('--workspace <dir>', 'workspace folder (nexus.yaml, agents/, .nexus/)')
    .option('--json', 'print machine-readable JSON on stdout')
    .option('-v, --verbose', 'debug logs on stderr')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(terminalSafe(s)) })
    .showSuggestionAfterError(true);

  const run = (fn: (deps: FleetDeps, opts: any, cmd: Command) => Promise<CommandResult>, progressTotal?: (deps: FleetDeps) => Promise<number>) =>
    async (opts: any, cmd: Command) => {
      const g = program.opts<GlobalOpts>();
      json = !!g.json;
      if (g.verbose) setLogLevel('debug');
      const config = loadConfig(workspaceOf(g, io), io.env);
      const registry = await openRegistry(config, config.registry, io.env);
      const engine = new DockerEngine({ env: io.env });
      const deps: FleetDeps = { config, registry, engine };
      const total = progressTotal ? await progressTotal(deps).catch(() => 0) : 0;
      const progress = new Progress(io.stderr as never, json, total);
      deps.onProgress = progress.onProgress;
      try {
        const r = await fn(deps, opts, cmd);
        progress.stop();
        if (json) io.stdout.write(JSON.stringify(r.data, null, 2) + '\n');
        else if (r.human) io.stdout.write(terminalSafe(r.human) + '\n');
        exitCode = r.exitCode ?? ExitCode.OK;
      } finally {
        progress.stop();
        await registry.close();
      }
    };
  const countAll = async (deps: FleetDeps) => (await deps.registry.list()).length;

  program
    .command('create')
    .description('scaffold a new agent from agent-template/ and reserve its port')
    .requiredOption('--name <name>', 'agent name, e.g. DataAgent (slug: data-agent)')
    .option('--port <port>', 'host port from the range (default: the lowest free one)', parsePort)
    .option('--capabilities <capability...>', 'capabilities, e.g. data analytics (pick the starter tools)')
    .option('--description <text>', 'one-line description')
    .option('--model <model>', 'model the agent uses (marketplace card)', 'none')
    .option('--agent-version <semver>', 'agent version', '0.1.0')
    .action(run((d, o) => commands.create(d, o)));
  program
    .command('build')
    .description('build the base image (cached) and agent images (skipped when unchanged)')
    .option('--name <name...>', 'only these agents')
    .option('--force', 'rebuild the base image even when up to date')
    .option('--offline', "build the base image from this host's Node runtime (no registry needed)")
    .action(run((d, o) => commands.build(d, o)));
  program
    .command('start')
    .description('build if needed and start agents, waiting for health')
    .requiredOption('--name <name...>', 'agents to start')
    .action(run((d, o) => commands.start(d, o), async (d) => 1));
  program
    .command('start-all')
    .description('build what is missing and start every agent in parallel (idempotent)')
    .action(run((d) => commands.startAll(d), countAll));
  program
    .command('stop')
    .description('stop agents (SIGTERM, then SIGKILL after --timeout) and remove their containers')
    .requiredOption('--name <name...>', 'agents to stop')
    .option('--timeout <seconds>', 'grace period before SIGKILL', parsePositive, 10)
    .action(run((d, o) => commands.stop(d, o)));
  program
    .command('stop-all')
    .description('stop every agent of the workspace')
    .option('--timeout <seconds>', 'grace period before SIGKILL', parsePositive, 10)
    .action(run((d, o) => commands.stop(d, o, true)));
  program
    .command('restart')
    .description('stop then start agents (ships source changes)')
    .requiredOption('--name <name...>', 'agents to restart')
    .option('--timeout <seconds>', 'grace period before SIGKILL', parsePositive, 10)
    .action(run((d, o) => commands.restart(d, o)));
  program
    .command('list')
    .alias('ls')
    .description('agents: registry record + live container state + health')
    .action(run((d) => commands.list(d)));
  program
    .command('logs')
    .description("an agent's container logs")
    .requiredOption('--name <name>', 'agent')
    .option('-f, --follow', 'keep streaming until Ctrl-C')
    .option('--tail <lines>', 'lines from the end', parsePositive, 100)
    .action(run((d, o) => commands.logs(d, o)));
  program
    .command('remove')
    .alias('rm')
    .description('remove an agent: container, image, record (releases the port)')
    .requiredOption('--name <name>', 'agent')
    .option('--purge', 'also delete its source folder agents/<slug>/')
    .action(run((d, o) => commands.remove(d, o)));
  program
    .command('demo')
    .description("create and start the seed's five demo agents and call a tool on each")
    .action(run((d) => commands.demo(d), async () => 5));
  program
    .command('register')
    .description('register agent cards with the marketplace (MARKETPLACE_URL, MARKETPLACE_API_KEY)')
    .option('--name <name...>', 'agents to register')
    .option('--all', 'every agent of the workspace')
    .option('--mark-unavailable', 'list agents that are not healthy as unavailable instead of refusing them')
    .action(run((d, o) => commands.register(d, o)));
  program
    .command('unregister')
    .description("remove agents' listings from the marketplace")
    .requiredOption('--name <name...>', 'agents to unregister')
    .action(run((d, o) => commands.unregister(d, o)));
  program
    .command('cards')
    .description('print agent cards: the marketplace card and the A2A AgentCard')
    .option('--name <name...>', 'only these agents')
    .action(run((d, o) => commands.cards(d, o)));
  program
    .command('compose')
    .description('write docker-compose-agents.yml: every agent behind a router (nginx by default)')
    .option('--output <file>', 'compose file to write', 'docker-compose-agents.yml')
    .addOption(new Option('--router <kind>', 'router in front of the agents').choices(['nginx', 'traefik', 'none']).default('nginx'))
    .option('--router-port <port>', 'host port the router publishes', parsePort, 8088)
    .option('--router-image <image>', 'router image (default nginx:1.27-alpine / traefik:v3.1)')
    .option('--registry <host[:port]>', 'qualify agent images with this container registry')
    .option('--network <name>', 'compose network of the agents and the router', 'nexus-agents')
    .option('--offline-router', "build the nginx router image from this host's nginx (no registry needed)")
    .action(run((d, o) => commands.compose(d, o)));
  program
    .command('routes')
    .description('write router configuration: nginx (conf.d + agents index) and/or traefik (file provider)')
    .option('--nginx', 'nginx server block and /.well-known/agents.json')
    .option('--traefik', 'traefik dynamic configuration')
    .option('--output-dir <dir>', 'where to write (default: nginx/ and traefik/ in the workspace)')
    .option('--router-port <port>', 'host port the router publishes (for the public URLs)', parsePort, 8088)
    .action(run((d, o) => commands.routes(d, o)));
  program
    .command('scale')
    .description('run N replicas of an agent on this engine, load-balanced by a local nginx router')
    .requiredOption('--name <name>', 'agent')
    .requiredOption('--replicas <n>', 'replicas (1 or more)', parsePositive)
    .option('--router-port <port>', 'host port of the local router', parsePort, 8088)
    .action(run((d, o) => commands.scale(d, o)));
  program
    .command('push')
    .description('tag and push the base and agent images to a container registry (for Swarm nodes)')
    .requiredOption('--registry <host[:port]>', 'registry address, e.g. localhost:5000')
    .option('--name <name...>', 'only these agents')
    .action(run((d, o) => commands.push(d, o)));
  program
    .command('deploy')
    .description('deploy the fleet as Docker Swarm services behind the nginx router (docker stack deploy)')
    .option('--swarm', 'deploy to the swarm this engine manages')
    .option('--remove', 'remove the deployed stack')
    .option('--stack <name>', 'stack name', 'nexus')
    .option('--replicas <n>', 'replicas per agent', parsePositive, 1)
    .option('--router-port <port>', 'port the router publishes on every node', parsePort, 8088)
    .option('--registry <host[:port]>', 'pull agent images from this registry (see push)')
    .option('--offline-router', "build the router image from this host's nginx")
    .option('--wait-timeout <seconds>', 'how long to wait for every service to run healthy (default 180)', parsePositive)
    .action(run((d, o) => commands.deploy(d, o)));
  const registryCmd = program.command('registry').description('move agent records between registries (local, firestore)');
  const registryKind = (v: string) => {
    if (v !== 'local' && v !== 'firestore') throw new InvalidArgumentError('must be local or firestore');
    return v;
  };
  registryCmd
    .command('export')
    .description('write every agent record as JSON (stdout, or --output FILE)')
    .option('--output <file>', 'file to write (mode 0600)')
    .action(run((d, o) => commands.registryExport(d, o)));
  registryCmd
    .command('import')
    .description("read an 'export' file into the configured registry (agents already there are skipped)")
    .requiredOption('--input <file>', 'file written by registry export')
    .action(run((d, o) => commands.registryImport(d, o)));
  registryCmd
    .command('migrate')
    .description('copy every record from one registry to the other (idempotent)')
    .requiredOption('--to <registry>', 'local or firestore', registryKind)
    .option('--from <registry>', 'local or firestore (default: the other one)', registryKind)
    .action(run((d, o) => commands.registryMigrate(d, o)));
  program
    .command('doctor')
    .description('check Node, the Docker engine, the base image, the port range and the registry')
    .action(run((d) => commands.doctor(d)));

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.OK;
      // commander has already printed its one-line message on stderr
      return ExitCode.USAGE;
    }
    const e = isAppError(err) ? err : new AppError('INTERNAL', messageOf(err), { cause: err });
    if (json) io.stdout.write(JSON.stringify({ error: e.toJSON() }, null, 2) + '\n');
    io.stderr.write(`error: ${terminalSafe(e.message, true)}\n`);
    if (e.hint) io.stderr.write(`hint: ${terminalSafe(e.hint, true)}\n`);
    const logs = e.details?.logs;
    if (typeof logs === 'string' && logs) io.stderr.write(`last log lines:\n${terminalSafe(logs)}\n`);
    if (e.code === 'INTERNAL' && program.opts<GlobalOpts>().verbose) io.stderr.write(`${(err as Error).stack ?? ''}\n`);
    return e.exitCode;
  }
}

const isEntry = process.argv[1] && import.meta.url === new URL(`file://${resolve(process.argv[1])}`).href;
if (isEntry) {
  // Guard: if a bug ever leaves main() pending with nothing keeping Node alive, fail loudly
  // instead of exiting 0 with half the work done.
  let settled = false;
  process.on('beforeExit', () => {
    if (!settled) {
      process.stderr.write('error: internal: the command stalled before finishing (please report this)\n');
      process.exit(ExitCode.INTERNAL);
    }
  });
  main(process.argv.slice(2)).finally(() => (settled = true)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`error: ${messageOf(err)}\n`);
      process.exit(ExitCode.INTERNAL);
    },
  );
}
