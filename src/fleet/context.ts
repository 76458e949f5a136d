import type { Clock } from '../clock.js';
import type { Config } from '../config/config.js';
import type { Engine } from '../engine/engine.js';
import type { Registry } from '../registry/registry.js';

// Rules that live lower in the house, re-exported for the fleet's existing importers.
export { systemClock, type Clock } from '../clock.js';
export { agentUrl, dialHost, workspaceId, workspaceLabels } from '../conventions.js';

/** Progress of long work, per agent; the CLI renders it (spinner on a TTY, lines otherwise). */
export interface ProgressEvent {
  agent?: string;
  phase: string;
  message?: string;
}

/** What every use case receives. */
export interface FleetDeps {
  config: Config;
  registry: Registry;
  engine: Engine;
  /** Time for waits and stamps (default: the system clock). */
  clock?: Clock;
  /** Progress and one-line notices (e.g. the offline base fallback). */
  onProgress?: (ev: ProgressEvent) => void;
}
