import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { AppError, messageOf } from '../errors.js';
import { logger } from '../log.js';

const log = logger('rollout');

/**
 * A rollout's marker is stale (its process died without releasing it) when its mtime is older
 * than this, ms. The owner refreshes it every ROLLOUT_LOCK_STALE_MS / 3 (proper-lockfile's
 * `update`), so a live rollout never looks stale.
 */
export const ROLLOUT_LOCK_STALE_MS = 30_000;

/** Where rollout markers live: <workspace>/.nexus/rollouts/<slug>.lock (a directory, proper-lockfile's). */
export function rolloutLockDir(workspace: string): string {
  return join(workspace, '.nexus', 'rollouts');
}

/** The file proper-lockfile locks for an agent (it need not exist: realpath false); the marker is `${it}.lock`. */
const lockTarget = (workspace: string, slug: string) => join(rolloutLockDir(workspace), slug);
const options = { stale: ROLLOUT_LOCK_STALE_MS, realpath: false } as const;

/**
 * Mark a rollout of `slug` as in progress in this workspace, for every process (the CLI's
 * `rollout`, the manager's API, the supervisor that must not act on the agent meanwhile). The
 * marker is a lock directory kept fresh while this process lives (proper-lockfile, the same library
 * as the local registry's lock); a process that dies leaves a marker that is stale after
 * ROLLOUT_LOCK_STALE_MS and is then taken over. Returns the release function (idempotent, never
 * throws).
 * @throws AppError ROLLOUT_IN_PROGRESS when another rollout or rollback of the agent holds it;
 *   INTERNAL when the marker cannot be written.
 */
export async function acquireRolloutLock(workspace: string, slug: string, name = slug): Promise<() => Promise<void>> {
  await mkdir(rolloutLockDir(workspace), { recursive: true });
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(lockTarget(workspace, slug), {
      ...options,
      update: Math.round(ROLLOUT_LOCK_STALE_MS / 3),
      // the refresh failed (the marker was removed or taken over): the rollout goes on; the supervisor may act meanwhile
      onCompromised: (err: Error) => log.warn({ agent: slug, err: messageOf(err) }, 'rollout marker lost'),
    });
  } catch (err) {
    if ((err as { code?: string }).code === 'ELOCKED') {
      throw new AppError('ROLLOUT_IN_PROGRESS', `a rollout or rollback of agent '${name}' is already in progress`, {
        hint: 'wait for it to end; a marker left by a process that died expires after 30 s',
      });
    }
    throw new AppError('INTERNAL', `cannot mark the rollout of '${name}': ${messageOf(err)}`, { cause: err });
  }
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    await release().catch((err: unknown) => log.warn({ agent: slug, err: messageOf(err) }, 'cannot release the rollout marker'));
  };
}

/**
 * The agents (slugs) of the workspace with a rollout or rollback in progress: a fresh marker
 * (see acquireRolloutLock). Never throws: a marker that cannot be read counts as absent.
 */
export async function rolloutsInProgress(workspace: string): Promise<Set<string>> {
  const names = await readdir(rolloutLockDir(workspace)).catch(() => [] as string[]);
  const slugs = names.filter((n) => n.endsWith('.lock')).map((n) => n.slice(0, -'.lock'.length));
  const held = await Promise.all(slugs.map((s) => lockfile.check(lockTarget(workspace, s), options).catch(() => false)));
  return new Set(slugs.filter((_, i) => held[i]));
}
