import type { Config } from '../config/config.js';
import { AppError } from '../errors.js';
import { agentUrl } from '../conventions.js';
import { LocalRegistry } from './local.js';
import type { Registry } from './registry.js';

/**
 * Open the registry the configuration names: `local` (.nexus/registry.json) or `firestore`.
 * The Firestore backend (firebase-admin, ~350 ms to import) loads only when it is used.
 * @throws AppError CONFIG_INVALID naming what to set (project id, credentials).
 */
export async function openRegistry(config: Config, kind: 'local' | 'firestore' = config.registry, env: Record<string, string | undefined> = process.env): Promise<Registry> {
  if (kind === 'local') return new LocalRegistry(config.workspace);
  const f = config.firestore;
  if (!f.projectId) {
    throw new AppError('CONFIG_INVALID', 'the firestore registry needs a Google Cloud project id', {
      hint: 'set GOOGLE_CLOUD_PROJECT (or firestore.projectId in nexus.yaml)',
    });
  }
  const { FirestoreRegistry } = await import('./firestore.js');
  return new FirestoreRegistry({
    projectId: f.projectId,
    collectionPrefix: f.collectionPrefix,
    databaseId: f.databaseId,
    timeoutMs: f.timeoutMs,
    endpointOf: (port) => agentUrl(config, port),
    env,
  });
}
