import { createHash } from 'node:crypto';
import type { Config } from '../config/config.js';
import type { Engine } from '../engine/engine.js';
import { LABEL } from '../engine/labels.js';
import type { Registry } from '../registry/registry.js';

/** A clock tests can control (style: testcontainers' common/clock.ts). */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

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
  clock?: Clock;
  /** Progress and one-line notices (e.g. the offline base fallback). */
  onProgress?: (ev: ProgressEvent) => void;
}

/** Short stable id of a workspace (sha256 of its absolute path), used in labels. */
export function workspaceId(workspace: string): string {
  return createHash('sha256').update(workspace).digest('hex').slice(0, 12);
}

/** Labels that select everything this workspace owns on the engine. */
export function workspaceLabels(config: Config): Record<string, string> {
  return { [LABEL.managed]: 'true', [LABEL.workspace]: workspaceId(config.workspace) };
}

/** Host to dial for a port bound on `bindAddress` (wildcards are reached over loopback). */
export function dialHost(bindAddress: string): string {
  return bindAddress === '0.0.0.0' || bindAddress === '::' ? '127.0.0.1' : bindAddress;
}

export function agentUrl(config: Config, port: number): string {
  const host = dialHost(config.ports.bindAddress);
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}
