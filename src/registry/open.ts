import type { Config } from '../config/config.js';
import { AppError } from '../errors.js';
import { LocalRegistry } from './local.js';
import type { Registry } from './registry.js';

/**
 * Open the registry the configuration names.
 * @throws AppError CONFIG_INVALID for a backend not available in this build.
 */
export function openRegistry(config: Config): Registry {
  if (config.registry === 'local') return new LocalRegistry(config.workspace);
  throw new AppError('CONFIG_INVALID', `registry '${config.registry}' is not available yet`, {
    hint: 'set registry: local in nexus.yaml (or unset NEXUS_REGISTRY)',
  });
}
