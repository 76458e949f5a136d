import { readFile } from 'node:fs/promises';
import * as z from 'zod';
import { AppError, messageOf } from '../errors.js';
import { parseAgentRecord } from '../registry/record.js';
import type { AgentRecord, Registry } from '../registry/registry.js';
import { isoNow, systemClock, type Clock } from '../clock.js';

/** The JSON document `registry export` writes and `registry import` reads (version 1). */
export interface RegistryExport {
  version: 1;
  registry: 'local' | 'firestore';
  exportedAt: string;
  agents: AgentRecord[];
}

const exportSchema = z.object({
  version: z.literal(1),
  registry: z.enum(['local', 'firestore']),
  exportedAt: z.string(),
  // each record is checked by the one record schema (parseAgentRecord), naming the bad one
  agents: z.array(z.unknown()),
});

/** Every record of a registry, as a portable document, stamped by `clock`. */
export async function exportRegistry(registry: Registry, clock: Clock = systemClock): Promise<RegistryExport> {
  return { version: 1, registry: registry.kind, exportedAt: isoNow(clock), agents: await registry.list() };
}

/**
 * Read and check an export file: its layout, then every record against the record schema
 * (src/registry/record.ts), so nothing unchecked reaches a registry.
 * @throws AppError USAGE when unreadable, of another shape, or holding a bad record (naming the
 *   record and the field).
 */
export async function readExport(path: string): Promise<RegistryExport> {
  let data: unknown;
  try {
    data = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new AppError('USAGE', `cannot read ${path}: ${messageOf(err)}`, { hint: "pass a file written by 'agent registry export'" });
  }
  const parsed = exportSchema.safeParse(data);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new AppError('USAGE', `${path} is not a registry export: ${i.path.join('.')}: ${i.message}`, { hint: "pass a file written by 'agent registry export'" });
  }
  const hint = `fix that record in ${path} or export again with 'agent registry export'; nothing was imported`;
  const agents = parsed.data.agents.map((a, i) => parseAgentRecord(a, path, 'USAGE', hint, `#${i + 1}`));
  return { ...parsed.data, agents };
}

export interface TransferResult {
  /** Records written to the target. */
  copied: string[];
  /** Records left alone, with why (already there, or its port is held by another agent there). */
  skipped: { slug: string; reason: string }[];
}

/**
 * Copy records into `target`, keeping each one's port, state, image, tools and marketplace
 * listing. Idempotent: a slug already in the target is skipped, so re-running copies nothing
 * twice. The host-port check is off: the port already belongs to this agent (its container may
 * be holding it right now).
 */
export async function importRecords(target: Registry, records: readonly AgentRecord[]): Promise<TransferResult> {
  const result: TransferResult = { copied: [], skipped: [] };
  for (const rec of records) {
    const existing = await target.get(rec.slug);
    if (existing) {
      result.skipped.push({ slug: rec.slug, reason: existing.port === rec.port ? 'already there' : `already there with port ${existing.port}` });
      continue;
    }
    try {
      await target.create(
        { name: rec.name, slug: rec.slug, description: rec.description, capabilities: rec.capabilities, category: rec.category, model: rec.model, version: rec.version },
        { range: { from: rec.port, to: rec.port }, requested: rec.port, isHostPortFree: async () => true },
      );
    } catch (err) {
      if (err instanceof AppError && (err.code === 'PORT_IN_USE' || err.code === 'NAME_TAKEN')) {
        result.skipped.push({ slug: rec.slug, reason: err.message });
        continue;
      }
      throw err;
    }
    await target.update(rec.slug, {
      desired: rec.desired,
      status: rec.status,
      image: rec.image,
      tools: rec.tools,
      marketplace: rec.marketplace,
      lastError: rec.lastError,
    });
    result.copied.push(rec.slug);
  }
  return result;
}
