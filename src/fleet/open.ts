import { systemClock, type Clock } from '../clock.js';
import type { Config } from '../config/config.js';
import type { Engine } from '../engine/engine.js';
import { openDockerEngine } from '../engine/open.js';
import { logger } from '../log.js';
import { openRegistry } from '../registry/open.js';
import { emitterOf, type FleetDeps } from './context.js';
import type { FleetEvent } from './events.js';

/** An open fleet: the deps every use case takes; close (or `await using`) releases the registry. */
export interface Fleet extends AsyncDisposable {
  deps: FleetDeps;
  close(): Promise<void>;
}

export interface OpenFleetOptions {
  /** Where typed events go (the CLI's progress; the manager's streams). */
  onEvent?: (ev: FleetEvent) => void;
  clock?: Clock;
  /** An engine to use instead of Docker (tests: FakeEngine). */
  engine?: Engine;
}

/**
 * The composition root: the engine (Docker, loaded on first use), the registry the configuration
 * names (local, or Firestore loaded only then), the clock and the event sink, wired into FleetDeps.
 * The marketplace client is made on demand by fleet/marketplace.ts from config.marketplace. No shell
 * imports dockerode or a registry implementation; they open a fleet.
 * `await using fleet = await openFleet(config, env)` closes the registry at the end of the scope.
 * @throws AppError CONFIG_INVALID (registry settings)
 */
export async function openFleet(config: Config, env: Record<string, string | undefined> = process.env, opts: OpenFleetOptions = {}): Promise<Fleet> {
  const registry = await openRegistry(config, config.registry, env);
  const onEvent = opts.onEvent;
  const deps: FleetDeps = {
    config,
    registry,
    engine: opts.engine ?? openDockerEngine(env),
    clock: opts.clock ?? systemClock,
    ...(onEvent ? { onEvent } : {}),
  };
  // image work reports free-text progress: it joins the typed stream as notes, numbered in order
  if (onEvent) deps.onProgress = (p) => emitterOf(deps)({ kind: 'note', phase: p.phase, ...(p.agent ? { agent: p.agent } : {}), ...(p.message ? { message: p.message } : {}) });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    logger('fleet').debug({ workspace: config.workspace }, 'fleet closed');
    await registry.close();
  };
  return { deps, close, [Symbol.asyncDispose]: close };
}
