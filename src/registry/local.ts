import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod';
import { isoNow, systemClock, type Clock } from '../clock.js';
import { AppError, messageOf } from '../errors.js';
import { logger } from '../log.js';
import { choosePort } from '../ports/allocate.js';
import { nameTaken, notFound } from './errors.js';
import { checkHistoryEntry, checkRecordToWrite, parseAgentRecord } from './record.js';
import { HISTORY_EVENTS, historyEventOfStatus, LOCAL_HISTORY_LIMIT, type AgentPatch, type AgentRecord, type AgentStatus, type HistoryEntry, type HistoryEvent, type NewAgent, type PortRequest, type Registry } from './registry.js';

let writers: Promise<{ lockfile: typeof import('proper-lockfile'); writeFileAtomic: typeof import('write-file-atomic') }> | undefined;
/** proper-lockfile and write-file-atomic, loaded on the first lock or write: reads (`list`) need neither. */
function loadWriters(): NonNullable<typeof writers> {
  return (writers ??= Promise.all([import('proper-lockfile'), import('write-file-atomic')]).then(([l, w]) => ({ lockfile: l.default, writeFileAtomic: w.default })));
}

const log = logger('registry');

/** On-disk shape of .nexus/registry.json (version 1); each record is then checked by parseAgentRecord. */
const fileSchema = z.object({
  version: z.literal(1),
  agents: z.record(z.string(), z.unknown()),
});
/** `agents` has no prototype: a slug such as `constructor` never finds Object.prototype's members. */
interface RegistryFile {
  version: 1;
  agents: Record<string, AgentRecord>;
}

/** On-disk shape of .nexus/history.json: the last LOCAL_HISTORY_LIMIT entries per agent slug. */
const historyFileSchema = z.object({
  version: z.literal(1),
  agents: z.record(
    z.string(),
    z.array(z.object({ event: z.enum(HISTORY_EVENTS), at: z.string(), status: z.string().nullable().optional(), reason: z.string().optional() })),
  ),
});

function emptyFile(): RegistryFile {
  return { version: 1, agents: Object.create(null) as Record<string, AgentRecord> };
}

/**
 * The embedded registry: one JSON file, `<workspace>/.nexus/registry.json`.
 * Every change runs read-modify-write under an exclusive lock (proper-lockfile, a lock directory
 * beside the file, stale after 10 s) and lands with an atomic rename (write-file-atomic), so
 * concurrent CLI processes never lose an update and a crash never leaves a torn file.
 * The port map is derived from the records, so a port and its record are written in one step.
 */
export class LocalRegistry implements Registry {
  readonly kind = 'local' as const;
  readonly path: string;
  /** `<workspace>/.nexus/history.json`: lifecycle events, written under the same lock. */
  readonly historyPath: string;
  private readonly dir: string;
  private readonly clock: Clock;

  /** `clock` stamps createdAt/updatedAt (default: the system clock). */
  constructor(workspace: string, opts: { clock?: Clock } = {}) {
    this.clock = opts.clock ?? systemClock;
    this.dir = join(workspace, '.nexus');
    this.path = join(this.dir, 'registry.json');
    this.historyPath = join(this.dir, 'history.json');
  }

  private async read(): Promise<RegistryFile> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return emptyFile();
      if (code === 'EISDIR') {
        throw new AppError('REGISTRY_CORRUPT', `${this.path} is a directory, not the registry file`, {
          hint: 'move that directory away (the registry is a JSON file); nothing was changed',
        });
      }
      throw new AppError('REGISTRY_UNREACHABLE', `cannot read ${this.path}: ${code ?? messageOf(err)}`, {
        hint: 'check the permissions of the workspace and its .nexus folder',
        cause: err,
      });
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new AppError('REGISTRY_CORRUPT', `${this.path} is not valid JSON: ${messageOf(err)}`, {
        hint: `restore it from a backup or 'agent registry export' output; it was not changed`,
      });
    }
    const parsed = fileSchema.safeParse(data);
    if (!parsed.success) {
      throw new AppError('REGISTRY_CORRUPT', `${this.path} has an unknown layout`, {
        hint: 'it was written by another version of this tool; it was not changed',
      });
    }
    const file = emptyFile();
    const hint = `fix or remove that record in ${this.path} (or restore a backup); the file was not changed`;
    for (const [key, value] of Object.entries(parsed.data.agents)) {
      const record = parseAgentRecord(value, this.path, 'REGISTRY_CORRUPT', hint, key);
      if (record.slug !== key) {
        throw new AppError('REGISTRY_CORRUPT', `${this.path}: agent '${record.slug}' is filed under another key (${JSON.stringify(key.slice(0, 60))})`, { hint, details: { field: 'slug' } });
      }
      file.agents[key] = record;
    }
    return file;
  }

  private async write(data: RegistryFile): Promise<void> {
    const { writeFileAtomic } = await loadWriters();
    await writeFileAtomic(this.path, JSON.stringify(data, null, 2) + '\n', { mode: 0o600 });
  }

  /**
   * Run `fn` with the registry locked; `fn` returns the new file content (or undefined for no
   * write) and the registry's own history entry that goes with it (created, a status change,
   * removed: like the Firestore registry), appended under the same lock after the record is written.
   */
  private async withLock<T>(fn: (data: RegistryFile) => Promise<{ data?: RegistryFile; result: T; history?: { slug: string; event: HistoryEvent; status: AgentStatus | null } }>): Promise<T> {
    return this.locked(async () => {
      const data = await this.read();
      const { data: next, result, history } = await fn(data);
      if (next) await this.write(next);
      if (history) await this.appendLocked(history.slug, { event: history.event, status: history.status });
      return result;
    });
  }

  /** Run `fn` holding the registry's lock (one lock for records and history). */
  private async locked<T>(fn: () => Promise<T>): Promise<T> {
    await mkdir(this.dir, { recursive: true });
    const { lockfile } = await loadWriters();
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(this.dir, {
        lockfilePath: join(this.dir, 'registry.lock'),
        stale: 10_000,
        retries: { retries: 100, factor: 1.3, minTimeout: 10, maxTimeout: 250, randomize: true },
      });
    } catch (err) {
      throw new AppError('REGISTRY_LOCKED', `registry ${this.path} is locked by another process`, {
        hint: 'wait for the other agent command to finish, then retry',
        cause: err,
      });
    }
    try {
      return await fn();
    } finally {
      await release();
    }
  }

  async create(agent: NewAgent, portReq: PortRequest): Promise<AgentRecord> {
    return this.withLock(async (data) => {
      const existing = Object.hasOwn(data.agents, agent.slug) ? data.agents[agent.slug] : undefined;
      if (existing) {
        throw nameTaken(agent.slug, existing.name);
      }
      const reserved = new Map(Object.values(data.agents).map((a) => [a.port, a.slug] as const));
      const port = await choosePort({ ...portReq, reserved });
      const now = isoNow(this.clock);
      const record = checkRecordToWrite({ ...agent, port, desired: 'stopped', status: 'created', createdAt: now, updatedAt: now });
      data.agents[agent.slug] = record;
      log.debug({ agent: agent.slug, port }, 'created record');
      return { data, result: record, history: { slug: agent.slug, event: 'created', status: 'created' } };
    });
  }

  async get(slug: string): Promise<AgentRecord | undefined> {
    const { agents } = await this.read();
    return Object.hasOwn(agents, slug) ? agents[slug] : undefined;
  }

  async list(): Promise<AgentRecord[]> {
    return Object.values((await this.read()).agents).sort((a, b) => a.port - b.port);
  }

  async update(slug: string, patch: AgentPatch): Promise<AgentRecord> {
    return this.withLock(async (data) => {
      const current = Object.hasOwn(data.agents, slug) ? data.agents[slug] : undefined;
      if (!current) throw notFound(slug);
      const next = checkRecordToWrite({ ...current, ...patch, updatedAt: isoNow(this.clock) });
      data.agents[slug] = next;
      const event = patch.status && patch.status !== current.status ? historyEventOfStatus(patch.status) : undefined;
      return { data, result: next, ...(event ? { history: { slug, event, status: patch.status! } } : {}) };
    });
  }

  async remove(slug: string): Promise<boolean> {
    return this.withLock(async (data) => {
      if (!Object.hasOwn(data.agents, slug)) return { result: false };
      delete data.agents[slug];
      // the history stays as an audit trail
      return { data, result: true, history: { slug, event: 'removed', status: null } };
    });
  }

  private async readHistory(): Promise<Record<string, HistoryEntry[]>> {
    let text: string;
    try {
      text = await readFile(this.historyPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Object.create(null) as Record<string, HistoryEntry[]>;
      throw new AppError('REGISTRY_UNREACHABLE', `cannot read ${this.historyPath}: ${messageOf(err)}`, { hint: 'check the permissions of the workspace and its .nexus folder', cause: err });
    }
    let parsed: z.infer<typeof historyFileSchema>;
    try {
      parsed = historyFileSchema.parse(JSON.parse(text));
    } catch {
      throw new AppError('REGISTRY_CORRUPT', `${this.historyPath} is not a history file this version reads`, { hint: 'move it away (only the agents\' lifecycle history is lost); nothing was changed' });
    }
    return Object.assign(Object.create(null) as Record<string, HistoryEntry[]>, parsed.agents as Record<string, HistoryEntry[]>);
  }

  async appendHistory(slug: string, entry: { event: HistoryEvent; reason?: string | undefined }): Promise<void> {
    const e = checkHistoryEntry(slug, entry);
    await this.locked(() => this.appendLocked(slug, e));
  }

  /** Append one entry to history.json (the caller holds the lock). */
  private async appendLocked(slug: string, e: Omit<HistoryEntry, 'at'>): Promise<void> {
    const agents = await this.readHistory();
    const list = (Object.hasOwn(agents, slug) ? agents[slug]! : []).concat({ ...e, at: isoNow(this.clock) });
    agents[slug] = list.slice(-LOCAL_HISTORY_LIMIT);
    const { writeFileAtomic } = await loadWriters();
    await writeFileAtomic(this.historyPath, JSON.stringify({ version: 1, agents }) + '\n', { mode: 0o600 });
  }

  async history(slug: string): Promise<HistoryEntry[]> {
    const agents = await this.readHistory();
    return Object.hasOwn(agents, slug) ? agents[slug]! : [];
  }

  async close(): Promise<void> {}
}
