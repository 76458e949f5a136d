/**
 * Where the supervisor reads an agent's autoscaling: the `autoscale` field of its manifest
 * (agents/<slug>/agent.json) wins over `autoscale.<slug>` in nexus.yaml (Config.autoscale, validated
 * when the configuration loads). Both follow AutoscaleSchema (src/supervisor/autoscale.ts):
 * `{min, max, target_inflight_per_replica, scale_in_cooldown_s, scale_out_window_s}`.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/config.js';
import { AppError } from '../errors.js';
import { agentDir } from '../paths.js';
import { AutoscaleSchema, type AutoscaleConfig } from './autoscale.js';

/** An agent's autoscaling, or undefined when it has none (its replicas are left alone). */
export type AutoscaleSource = (slug: string) => Promise<AutoscaleConfig | undefined>;

/**
 * The workspace's autoscale source (rules in the module docstring). The manifest is read at every
 * call (a few hundred bytes), so an edit applies at the next tick without a restart.
 * @throws AppError CONFIG_INVALID naming the manifest and the bad field (the value is not echoed)
 */
export function workspaceAutoscale(config: Config): AutoscaleSource {
  return async (slug) => {
    const path = join(agentDir(config.workspace, slug), 'agent.json');
    let manifest: { autoscale?: unknown } | undefined;
    try {
      manifest = JSON.parse(await readFile(path, 'utf8')) as { autoscale?: unknown };
    } catch {
      manifest = undefined; // missing or unreadable: the start use case reports that one
    }
    if (manifest?.autoscale === undefined) return config.autoscale?.[slug];
    const parsed = AutoscaleSchema.safeParse(manifest.autoscale);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0]!;
    const field = ['autoscale', ...issue.path.map(String)].join('.');
    throw new AppError('CONFIG_INVALID', `${path}: ${field}: ${issue.message}`, { hint: `fix ${field} in ${path}; the agent's replicas are left as they are` });
  };
}
