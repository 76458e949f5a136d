import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { AppError } from '../errors.js';
import { logger } from '../log.js';

const run = promisify(execFile);
const log = logger('engine');

/**
 * `docker stack deploy` of a stack file (the docker CLI implements stacks; the Engine API has
 * services but no stacks). `resolveImage: never` keeps locally built images (single node, or
 * images already on every node); `always` pins registry digests (multi-node, after `agent push`).
 * @throws AppError ENGINE_ERROR with the CLI's message.
 */
export async function stackDeploy(file: string, stack: string, resolveImage: 'always' | 'changed' | 'never'): Promise<string> {
  try {
    const { stdout, stderr } = await run('docker', ['stack', 'deploy', '--prune', '--resolve-image', resolveImage, '-c', file, stack], { maxBuffer: 1 << 24 });
    log.debug({ stack, stderr }, 'stack deployed');
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new AppError('ENGINE_ERROR', `docker stack deploy ${stack} failed: ${(e.stderr || e.message).trim().split('\n').slice(-3).join(' ')}`, {
      hint: 'check the stack file and that this engine is a swarm manager (docker node ls)',
      cause: err,
    });
  }
}

/** `docker stack rm`; a stack that does not exist is fine. */
export async function stackRemove(stack: string): Promise<void> {
  try {
    await run('docker', ['stack', 'rm', stack], { maxBuffer: 1 << 24 });
  } catch (err) {
    const msg = (err as { stderr?: string }).stderr ?? '';
    if (/Nothing found in stack/i.test(msg)) return;
    throw new AppError('ENGINE_ERROR', `docker stack rm ${stack} failed: ${msg.trim()}`, { cause: err });
  }
}
