/** Label keys put on every Docker object the tool creates, so it finds its own (by label, never by name). */
export const LABEL = {
  /** "true" on everything the tool manages. */
  managed: 'dev.nexus-delta.managed',
  /** Workspace id (hash of its absolute path): one engine can serve several workspaces. */
  workspace: 'dev.nexus-delta.workspace',
  /** Agent slug. */
  agent: 'dev.nexus-delta.agent',
  /** Replica number, 0 for the primary container. */
  replica: 'dev.nexus-delta.replica',
  /** Hash of the container spec, to detect drift (like com.docker.compose.config-hash). */
  configHash: 'dev.nexus-delta.config-hash',
  /** Hash of the bundled agent source + base image id, on agent images. */
  sourceHash: 'dev.nexus-delta.source-hash',
  /** Hash of the runtime bundle + Dockerfile.agent + FROM image, on base images. */
  runtimeHash: 'dev.nexus-delta.runtime-hash',
  /** Kind of object: base-image, agent-image, host-node-image, container. */
  kind: 'dev.nexus-delta.kind',
} as const;
