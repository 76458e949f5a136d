import pino from 'pino';
import { systemClock, type Clock } from '../clock.js';
import type { Config } from '../config/config.js';
import type { Engine } from '../engine/engine.js';
import type { AgentProbe } from '../fleet/context.js';
import { openFleet, type Fleet } from '../fleet/open.js';
import { findRecord, observedRotation, SnapshotCache, type RotationSource } from '../fleet/replicas.js';
import { agentsPlugin } from './agents.js';
import { agentRecordsPlugin } from './agent-records.js';
import { commandRoutes, CommandCenter } from './commands.js';
import { commandStoreFile, SqliteCommandStore, type CommandStore } from './command-store.js';
import { messageOf } from '../errors.js';
import { logger } from '../log.js';
import { agentSocketRoute, AgentConnections, connectionRoutes, recordLookup } from './connections.js';
import { agentsDirectoryPlugin } from './agents-directory.js';
import { A2aDoor, a2aCardPlugin, a2aDoorPlugin, type A2aDoorOptions } from './a2a-door.js';
import { McpDoor, mcpDoorPlugin, type McpDoorOptions } from './mcp-door.js';
import { dashboardApi, dashboardAssets } from './dashboard.js';
import { buildServer, type ManagerApp, type ManagerPlugin, type ServerDeps } from './app.js';
import { EventBus, fleetStreamEvent, startMetricsProducer, taskStreamEvent, type StreamEventInput } from './events-bus.js';
import { Gateway, type GatewayAgent, type GatewayOptions } from './gateway/gateway.js';
import { isLoopbackHost, serveManager } from './serve.js';
import { superviseManager } from './supervisor.js';
import { streamRoutes } from './streams.js';
import { GatewayFigures } from './gateway/figures.js';
import { createTasks, type DispatcherOptions, type RunningTasks } from '../tasks/index.js';

const storeLog = logger('commands');

/**
 * What the manager's domain plugins (agents, tasks, streams, dashboard) and the supervisor share.
 * Built once by createManager; every field is ready before the first request.
 */
export interface ManagerContext {
  config: Config;
  /** The open fleet: `deps` is what every fleet use case takes (its onEvent feeds `events`). */
  fleet: Fleet;
  /** The gateway (`POST /agents/{name}/execute`); its metrics are on the app's registry. */
  gateway: Gateway;
  /** The event bus the streams read (events-bus.ts): fleet events go in here; supervisor and task events publish here too. */
  events: EventBus;
  /** Records + containers, at most `snapshotTtlMs` old; lifecycle routes invalidate it. */
  snapshot: SnapshotCache;
  /** Who is in the gateway's rotation: the observed-state default, or the supervisor's view. */
  rotation: RotationSource;
  /** Gateway latency and throughput per agent (GET /metrics/performance). */
  figures: GatewayFigures;
  clock: Clock;
  env: Record<string, string | undefined>;
  /** Longest `GET /agents/{name}/logs?follow=true` stream, seconds. */
  logsFollowMaxS: number;
}

/**
 * The supervisor's seam (src/supervisor/supervisor.ts plugs in here). createManager calls the
 * factory once the fleet, the gateway and the event bus exist; when the returned supervisor has a
 * `rotation`, it replaces the observed-state default (the gateway then follows the supervisor's
 * health tracker: probes, 3 failures out, new replicas out until their first passing check).
 * `start()` runs after the app is built (before it listens); `close()` runs first on shutdown,
 * before the gateway and the fleet close.
 */
export interface ManagerSupervisor {
  rotation?: RotationSource | undefined;
  start?(): void | Promise<void>;
  close(): Promise<void>;
}

/** A domain plugin that needs the manager's context (tasks, streams, dashboard): a factory of a ManagerPlugin. */
export type ManagerPluginFactory = (ctx: ManagerContext) => ManagerPlugin;

export interface CreateManagerOptions {
  config: Config;
  /** Environment (NEXUS_MANAGER_TOKEN, registry settings); default process.env. */
  env?: Record<string, string | undefined> | undefined;
  clock?: Clock | undefined;
  /** An engine instead of Docker (unit tests: FakeEngine). */
  engine?: Engine | undefined;
  /** How the fleet probes agents over HTTP (unit tests on the FakeEngine); default real requests. */
  probe?: AgentProbe | undefined;
  /** Overrides env.NEXUS_MANAGER_TOKEN (serveManager passes the one it checked). */
  bootstrapToken?: string | undefined;
  limits?: ServerDeps['limits'];
  log?: ServerDeps['log'];
  /** Gateway tuning (breaker, retries, pools, time budget); `resolve` and `metrics` are the manager's. */
  gateway?: Omit<Partial<GatewayOptions>, 'resolve' | 'metrics'> | undefined;
  /** How old the shared records+containers snapshot may be, ms (default 1000). */
  snapshotTtlMs?: number | undefined;
  /** Longest logs?follow=true stream, seconds (default 300). */
  logsFollowMaxS?: number | undefined;
  /** Replay buffer of the event bus, events (default 10,000; also capped at 16 MiB). */
  eventCapacity?: number | undefined;
  /** ms between `metrics.snapshot` events on /metrics/stream (default 5000). */
  metricsIntervalMs?: number | undefined;
  /** ms between SSE heartbeat comments and WebSocket pings on the streams (default 15,000). */
  streamHeartbeatMs?: number | undefined;
  /** More domain plugins, after the agents plugin: `api` inside /api/v1 (protected), `root` at the root. */
  plugins?: { api?: ManagerPluginFactory[]; root?: ManagerPluginFactory[] } | undefined;
  /**
   * Tasks (src/tasks/): the store is `<workspace>/.nexus/tasks.db`, or Redis when `redisUrl` (default
   * env NEXUS_TASKS_REDIS_URL) is set; dispatcher tuning (per-agent limit, lease, backoff).
   */
  tasks?: { redisUrl?: string | undefined; dispatcher?: Omit<DispatcherOptions, 'store' | 'gateway' | 'resolveCapability' | 'clock'> } | undefined;
  /**
   * Agent connections (`/ws/agent`, connections.ts): heartbeat interval the welcome asks for,
   * seconds (default env NEXUS_AGENT_HEARTBEAT_S, else 30); intervals missed before offline (3);
   * ms a socket has to send its HELLO (10,000).
   */
  connections?: { heartbeatIntervalS?: number | undefined; missedHeartbeats?: number | undefined; helloTimeoutMs?: number | undefined } | undefined;
  /** Commands: the store they are written through (default `<workspace>/.nexus/commands.db`, command-store.ts). */
  commands?: { store?: CommandStore | undefined } | undefined;
  /** The MCP door at /mcp (sessions bounded and expiring, tool-list polling); src/server/mcp-door.ts. */
  mcp?: McpDoorOptions | undefined;
  /** The A2A door under /a2a/{slug} (its task store's bounds); src/server/a2a-door.ts. */
  a2a?: A2aDoorOptions | undefined;
  /** Where the dashboard's built assets are (default dist/dashboard, see src/server/dashboard.ts). */
  dashboardDir?: string | undefined;
  /** The supervisor (see ManagerSupervisor); none by default. */
  supervisor?: ((ctx: ManagerContext) => ManagerSupervisor | Promise<ManagerSupervisor>) | undefined;
}

export interface Manager {
  /** Built, not listening (serveManager listens; tests inject or listen on port 0). Closing it closes everything. */
  app: ManagerApp;
  fleet: Fleet;
  gateway: Gateway;
  events: EventBus;
  context: ManagerContext;
  /** The task store, its dispatcher (started) and routes. */
  tasks: RunningTasks;
  /** Agents connected at /ws/agent. */
  connections: AgentConnections;
  /** Commands sent to agents (POST /api/v1/commands). */
  commands: CommandCenter;
  /** The MCP door (`/mcp`): its sessions and tool list. */
  door: McpDoor;
  /** The A2A door (`/a2a/{slug}`): its task store. */
  a2a: A2aDoor;
  /** Close the app (in-flight requests finish), then the supervisor, the gateway's pools, the fleet. Idempotent. */
  close(): Promise<void>;
}

/**
 * The manager's composition root (issue 9 §1, §2, §4): opens the fleet (openFleet, its typed
 * events going to the EventBus of events-bus.ts), builds the app (buildServer) with the agents and
 * stream plugins and the given ones, publishes a metrics snapshot every `metricsIntervalMs`, builds the gateway over the rotation (observed state cached `snapshotTtlMs`, or the
 * supervisor's view), and ties shutdown together: `app.close()` (or `close()`) closes the
 * supervisor, the gateway's keep-alive pools, the event bus and the fleet's registry, in that order.
 * @throws AppError CONFIG_INVALID (registry settings, short bootstrap token), MANAGER_KEY_INSECURE;
 *   nothing stays open when it throws.
 */
export async function createManager(opts: CreateManagerOptions): Promise<Manager> {
  const env = opts.env ?? process.env;
  const clock = opts.clock ?? systemClock;
  const events = new EventBus({ clock, ...(opts.eventCapacity !== undefined ? { replayEvents: opts.eventCapacity } : {}) });
  const publish = (ev: StreamEventInput) => {
    try {
      events.publish(ev);
    } catch {
      // an event the bus refuses (a malformed agent name) must not stop a fleet action or a task
    }
  };
  const fleet = await openFleet(opts.config, env, { onEvent: (ev) => publish(fleetStreamEvent(ev)), clock, ...(opts.engine ? { engine: opts.engine } : {}) });
  const metricsProducer = startMetricsProducer(events, { intervalMs: opts.metricsIntervalMs ?? 5000 });
  if (opts.probe) fleet.deps.probe = opts.probe;
  const snapshot = new SnapshotCache(fleet.deps, opts.snapshotTtlMs ?? 1000);
  let gateway: Gateway | undefined;
  let supervisor: ManagerSupervisor | undefined;
  const ctx: ManagerContext = {
    config: opts.config,
    fleet,
    get gateway(): Gateway {
      if (!gateway) throw new Error('the gateway is not built yet (use ctx.gateway in handlers, not at registration)');
      return gateway;
    },
    events,
    snapshot,
    rotation: observedRotation(fleet.deps, snapshot),
    figures: new GatewayFigures(),
    clock,
    env,
    logsFollowMaxS: opts.logsFollowMaxS ?? 300,
  };

  const tasks = createTasks({
    workspace: opts.config.workspace,
    redisUrl: opts.tasks?.redisUrl ?? (env.NEXUS_TASKS_REDIS_URL || undefined),
    dispatcher: {
      ...opts.tasks?.dispatcher,
      clock,
      // lazy: the gateway is built after the app
      gateway: { executeViaGateway: (agent, req, o) => ctx.gateway.executeViaGateway(agent, req, o) },
      resolveCapability: (cap) => healthyWithCapability(ctx, cap),
      onEvent: (ev) => publish(taskStreamEvent(ev)),
    },
  });

  const heartbeatEnv = Number(env.NEXUS_AGENT_HEARTBEAT_S);
  const connections = new AgentConnections({
    lookup: recordLookup(async () => (await snapshot.get()).records),
    publish,
    clock,
    heartbeatIntervalS: opts.connections?.heartbeatIntervalS ?? (Number.isInteger(heartbeatEnv) && heartbeatEnv > 0 ? heartbeatEnv : undefined),
    missedHeartbeats: opts.connections?.missedHeartbeats,
    helloTimeoutMs: opts.connections?.helloTimeoutMs,
  });
  let commandStore: CommandStore;
  try {
    commandStore = opts.commands?.store ?? new SqliteCommandStore(commandStoreFile(opts.config.workspace));
  } catch (err) {
    await tasks.close().catch(() => undefined);
    connections.close();
    metricsProducer.stop();
    await fleet.close();
    throw err;
  }
  const commands = new CommandCenter({
    connections,
    records: async () => (await snapshot.get()).records,
    execute: (agent, req) => ctx.gateway.executeViaGateway(agent, req),
    publish,
    clock,
    store: commandStore,
    onStoreError: (err) => storeLog.error({ err: messageOf(err) }, 'command store write failed'),
  });

  const door = new McpDoor(ctx, opts.mcp);
  const a2a = new A2aDoor(ctx, opts.a2a);
  let torn = false;
  const teardown = async () => {
    if (torn) return;
    torn = true;
    await door.close();
    a2a.close();
    await tasks.close().catch(() => undefined);
    connections.close();
    commands.close();
    commandStore.close();
    await supervisor?.close().catch(() => undefined);
    await gateway?.close();
    metricsProducer.stop();
    events.closeAll();
    await fleet.close();
  };
  const shutdown: ManagerPlugin = async (app) => {
    app.addHook('onClose', teardown);
  };

  let app: ManagerApp;
  try {
    app = await buildServer({
      workspace: opts.config.workspace,
      bootstrapToken: opts.bootstrapToken ?? (env.NEXUS_MANAGER_TOKEN || undefined),
      clock,
      limits: opts.limits ?? opts.config.manager.rateLimits,
      log: opts.log,
      plugins: {
        api: [agentsPlugin(ctx), tasks.plugin, streamRoutes({ bus: events, ...(opts.streamHeartbeatMs ? { heartbeatMs: opts.streamHeartbeatMs } : {}) }), dashboardApi(ctx), agentRecordsPlugin(ctx), commandRoutes(commands), connectionRoutes(connections, { fleet: () => fleet.deps, invalidate: () => snapshot.invalidate() }), ...(opts.plugins?.api ?? []).map((f) => f(ctx))],
        root: [shutdown, dashboardAssets(opts.dashboardDir), agentSocketRoute(connections), a2aCardPlugin(ctx), ...(opts.plugins?.root ?? []).map((f) => f(ctx))],
        protectedRoot: [mcpDoorPlugin(door), agentsDirectoryPlugin(ctx), a2aDoorPlugin(a2a)],
      },
    });
  } catch (err) {
    await teardown();
    throw err;
  }
  gateway = new Gateway({ ...opts.gateway, clock, metrics: app.metrics, resolve: (name) => resolveAgent(ctx, name) });
  try {
    supervisor = await opts.supervisor?.(ctx);
    if (supervisor?.rotation) ctx.rotation = supervisor.rotation;
    await supervisor?.start?.();
  } catch (err) {
    await app.close();
    throw err;
  }
  tasks.dispatcher.start();
  commands.start();
  return { app, fleet, gateway, events, context: ctx, tasks, door, a2a, connections, commands, close: () => app.close() };
}

/** Slugs of the agents whose record lists `capability` and that have a replica in rotation now. */
async function healthyWithCapability(ctx: ManagerContext, capability: string): Promise<string[]> {
  const out: string[] = [];
  for (const rec of (await ctx.snapshot.get()).records) {
    if (!rec.capabilities.includes(capability)) continue;
    if ((await ctx.rotation.rotation(rec.slug)).some((v) => v.inRotation && v.url)) out.push(rec.slug);
  }
  return out;
}

/** The gateway's view of an agent (by name or slug): its replicas with a dialable URL, from the rotation source. */
async function resolveAgent(ctx: ManagerContext, name: string): Promise<GatewayAgent | undefined> {
  const rec = findRecord((await ctx.snapshot.get()).records, name);
  if (!rec) return undefined;
  const views = await ctx.rotation.rotation(rec.slug);
  return { slug: rec.slug, replicas: views.filter((v) => v.url).map((v) => ({ id: v.id, url: v.url, inRotation: v.inRotation })) };
}

/**
 * The manager URL `agent serve` gives the containers it starts when none is configured (pure):
 * `http://<host>:<port>` for the address it listens on, unless that is loopback (127.0.0.0/8,
 * `::1`, `localhost`), which a container on Linux cannot reach: then undefined. A wildcard host
 * (0.0.0.0, ::) becomes host.docker.internal in the container (src/fleet/containers.ts).
 */
export function servedManagerUrl(listening: string): string | undefined {
  const u = new URL(listening);
  return isLoopbackHost(u.hostname) ? undefined : `${u.protocol}//${u.host}`;
}

/** What `agent serve` returns once the manager has stopped. */
export interface ServeResult {
  url: string;
  stopped: true;
}

/**
 * `agent serve [--port 8070] [--host 127.0.0.1]`: the workspace's manager in the foreground
 * (createManager behind serveManager) with its supervisor (src/server/supervisor.ts: health
 * checks, restarts, desired state, autoscaling; the gateway follows its rotation). Prints `manager listening on <url>` to `io.out`; request
 * logs (pino, tokens redacted) go to stderr. Stops cleanly when `io.signal` aborts (the CLI aborts
 * it on SIGTERM/SIGINT): new requests get 503, in-flight ones finish, then everything closes.
 * @throws AppError SERVE_HOST_UNPROTECTED for a non-loopback host without NEXUS_MANAGER_TOKEN
 *   (nothing starts), PORT_IN_USE, CONFIG_INVALID, MANAGER_KEY_INSECURE.
 */
export async function serveWorkspace(
  deps: { config: Config; engine?: Engine | undefined; clock?: Clock | undefined },
  opts: { port?: number | undefined; host?: string | undefined },
  io: { out: NodeJS.WritableStream; signal?: AbortSignal | undefined; env?: Record<string, string | undefined> | undefined },
): Promise<ServeResult> {
  const env = io.env ?? process.env;
  const running = await serveManager({
    workspace: deps.config.workspace,
    host: opts.host,
    port: opts.port,
    env: env as NodeJS.ProcessEnv,
    handleSignals: false,
    print: (line) => io.out.write(`${line}\n`),
    // pino's own synchronous writer on fd 2 (as src/log.ts): nothing lost, and no Writable stream machinery per line
    log: { level: 'info', stream: pino.destination({ fd: 2, sync: true }) },
    build: async (d) => (await createManager({ config: deps.config, env, engine: deps.engine, clock: deps.clock, bootstrapToken: d.bootstrapToken, log: d.log, supervisor: superviseManager() })).app,
  });
  if (deps.config.manager.url === undefined) {
    // containers this manager starts (start, restart, scale, the supervisor) dial it back
    const url = servedManagerUrl(running.url);
    if (url) deps.config.manager = { ...deps.config.manager, url };
    else io.out.write(`agents' containers will not dial this manager: it listens on loopback only (set manager.url in nexus.yaml, or serve --host 0.0.0.0 with NEXUS_MANAGER_TOKEN)\n`);
  }
  const stop = () => void running.close();
  if (io.signal?.aborted) stop();
  io.signal?.addEventListener('abort', stop, { once: true });
  try {
    await running.closed;
  } finally {
    io.signal?.removeEventListener('abort', stop);
  }
  return { url: running.url, stopped: true };
}
