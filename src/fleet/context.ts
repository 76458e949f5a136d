import type { Clock } from '../clock.js';
import type { Config } from '../config/config.js';
import type { Engine } from '../engine/engine.js';
import type { Registry, ToolSummary } from '../registry/registry.js';
import { eventEmitter, type Emit, type FleetEvent } from './events.js';
import type { HealthProbe } from './health.js';

// Rules that live lower in the house, re-exported for the fleet's existing importers.
export { systemClock, type Clock } from '../clock.js';
export { agentUrl, dialHost, workspaceId, workspaceLabels } from '../conventions.js';
export type { FleetEvent } from './events.js';

/** Free-text progress of image work (pull, bundle, build, notices); see FleetEvent for the typed stream. */
export interface ProgressEvent {
  agent?: string;
  phase: string;
  message?: string;
}

/** How the fleet asks a running agent about itself over HTTP (injected by tests on the fake engine). */
export interface AgentProbe {
  /** One GET <url>/health with a deadline in ms; never throws. */
  health(url: string, timeoutMs: number): Promise<HealthProbe>;
  /** GET <url>/tools; undefined when it does not answer 200. Never throws. */
  tools(url: string): Promise<ToolSummary[] | undefined>;
  /**
   * The generation the local router at `url` serves (GET <url>/.well-known/nexus-router), or
   * undefined when it does not answer it. Never throws. A probe without it (unit tests' fakes)
   * means: do not wait for router reloads to take effect.
   */
  routerGeneration?(url: string): Promise<string | undefined>;
}

/** What every use case receives (built by openFleet, src/fleet/open.ts, or by a test). */
export interface FleetDeps {
  config: Config;
  registry: Registry;
  engine: Engine;
  /** Time for waits and stamps (default: the system clock). */
  clock?: Clock;
  /** Typed events of what the fleet does (plan actions, agent outcomes, notes). */
  onEvent?: (ev: FleetEvent) => void;
  /** Free-text progress and one-line notices (e.g. the offline base fallback); also sent as `note` events. */
  onProgress?: (ev: ProgressEvent) => void;
  /** HTTP probe of agents (default: real requests, src/fleet/health.ts). */
  probe?: AgentProbe;
}

const emitters = new WeakMap<object, Emit>();
const silent: Emit = () => undefined;

/**
 * The event emitter of a deps' sink (one per sink, so `seq` runs across a whole command even when
 * a use case copies its deps). Sends to `onEvent`; without it, to `onProgress` as
 * `{agent, phase: action or outcome, message}`.
 */
export function emitterOf(deps: FleetDeps): Emit {
  const key = deps.onEvent ?? deps.onProgress;
  if (!key) return silent;
  let e = emitters.get(key);
  if (!e) {
    const legacy = deps.onProgress;
    const sink = deps.onEvent ?? (legacy ? (ev: FleetEvent) => legacy({ ...(ev.agent ? { agent: ev.agent } : {}), phase: ev.kind === 'action' ? `${ev.action}` : (ev.outcome ?? ev.phase), ...(ev.message ? { message: ev.message } : ev.error ? { message: ev.error.message } : {}) }) : undefined);
    e = eventEmitter(sink, deps.clock);
    emitters.set(key, e);
  }
  return e;
}
