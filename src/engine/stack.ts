import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { StackDeploySpec } from './engine.js';

const run = promisify(execFile);

/**
 * `docker stack deploy --prune` of a stack file (the docker CLI implements stacks; the Engine API
 * has services but no stacks). `resolveImage: never` keeps locally built images (single node, or
 * images already on every node); `always` pins registry digests (multi-node, after `agent push`).
 * Used by DockerEngine.deployStack, which logs and wraps the error.
 * @throws the CLI's error (`stderr` holds the engine's message).
 */
export async function dockerStackDeploy(spec: StackDeploySpec, env: Record<string, string | undefined> = process.env): Promise<void> {
  await run('docker', ['stack', 'deploy', '--prune', '--resolve-image', spec.resolveImage, '-c', spec.file, spec.stack], { maxBuffer: 1 << 24, env });
}

/** `docker stack rm`. @throws the CLI's error ("Nothing found in stack" when absent). */
export async function dockerStackRemove(stack: string, env: Record<string, string | undefined> = process.env): Promise<void> {
  await run('docker', ['stack', 'rm', stack], { maxBuffer: 1 << 24, env });
}
