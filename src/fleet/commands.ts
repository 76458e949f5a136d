import { join } from 'node:path';
import { AppError } from '../errors.js';
import type { FleetDeps } from './context.js';
import type { DemoResult } from './demo.js';
import type { StartOutcome } from './start.js';

// The decisions of commands that are more than one call: they used to live in the CLI.

/** `build --offline`: the same build with images.offline forced to `always` (no pull). */
export function withOffline(deps: FleetDeps, offline: boolean | undefined): FleetDeps {
  return offline ? { ...deps, config: { ...deps.config, images: { ...deps.config.images, offline: 'always' } } } : deps;
}

/** The demo's result, also when an agent failed (then `partial`, with the counts of its start). */
export async function demo(deps: FleetDeps): Promise<{ demo: DemoResult; ok: number; failed: number; partial: boolean }> {
  const { runDemo } = await import('./demo.js');
  try {
    const r = await runDemo(deps);
    return { demo: r, ok: r.start.length, failed: 0, partial: false };
  } catch (err) {
    if (!(err instanceof AppError && err.code === 'PARTIAL_FAILURE')) throw err;
    const d = err.details as unknown as DemoResult;
    const failed = d.start.filter((a: StartOutcome) => a.outcome === 'failed').length;
    return { demo: d, ok: d.start.length - failed, failed, partial: true };
  }
}

/**
 * `registry export`: every record as JSON; with `output`, written to that file atomically with
 * mode 0600 (records name ports and hosts; nothing else may read them).
 */
export async function registryExport(deps: FleetDeps, output: string | undefined) {
  const { exportRegistry } = await import('./registry-transfer.js');
  const doc = await exportRegistry(deps.registry, deps.clock);
  if (!output) return { doc };
  const { default: writeFileAtomic } = await import('write-file-atomic');
  await writeFileAtomic(output, JSON.stringify(doc, null, 2) + '\n', { mode: 0o600 });
  return { written: { output, agents: doc.agents.length, registry: doc.registry } };
}

/** `registry import`: records of an export file into the configured registry (existing ones skipped). */
export async function registryImport(deps: FleetDeps, input: string) {
  const { readExport, importRecords } = await import('./registry-transfer.js');
  const r = await importRecords(deps.registry, (await readExport(input)).agents);
  return { ...r, to: deps.registry.kind };
}

/**
 * `registry migrate`: copy every record from one registry kind to the other (default: the other
 * one), opening whichever is not the configured one and closing it after.
 * @throws AppError USAGE when from and to are the same kind.
 */
export async function registryMigrate(deps: FleetDeps, to: 'local' | 'firestore', fromKind?: 'local' | 'firestore', env: Record<string, string | undefined> = process.env) {
  const from = fromKind ?? (to === 'firestore' ? 'local' : 'firestore');
  if (from === to) throw new AppError('USAGE', `--from and --to are both ${from}`, { hint: 'agent registry migrate --to firestore' });
  const { openRegistry } = await import('../registry/open.js');
  const source = from === deps.registry.kind ? deps.registry : await openRegistry(deps.config, from, env);
  try {
    const target = to === deps.registry.kind ? deps.registry : await openRegistry(deps.config, to, env);
    try {
      const { importRecords } = await import('./registry-transfer.js');
      const r = await importRecords(target, await source.list());
      return { from, to, ...r, configured: deps.config.registry };
    } finally {
      if (target !== deps.registry) await target.close();
    }
  } finally {
    if (source !== deps.registry) await source.close();
  }
}

/**
 * `routes`: nginx files into `outputDir` (default <workspace>/nginx) and/or the Traefik file
 * provider into `outputDir` (default <workspace>/traefik)/nexus-agents.yml.
 * @throws AppError USAGE without --nginx or --traefik.
 */
export async function routes(deps: FleetDeps, o: { nginx?: boolean | undefined; traefik?: boolean | undefined; outputDir?: string | undefined; routerPort?: number | undefined }) {
  if (!o.nginx && !o.traefik) throw new AppError('USAGE', 'routes needs --nginx or --traefik', { hint: 'agent routes --nginx' });
  const { writeNginxRoutes, writeTraefikRoutes } = await import('./production.js');
  const files: string[] = [];
  const base = o.outputDir ?? deps.config.workspace;
  if (o.nginx) files.push(...(await writeNginxRoutes(deps, o.outputDir ?? join(base, 'nginx'), o)));
  if (o.traefik) files.push(...(await writeTraefikRoutes(deps, join(o.outputDir ?? join(base, 'traefik'), 'nexus-agents.yml'), o)));
  return { files };
}
