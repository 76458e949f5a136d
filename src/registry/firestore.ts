import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { deleteApp, initializeApp, applicationDefault, type App } from 'firebase-admin/app';
import { FieldValue, Timestamp, getFirestore, type Firestore, type DocumentData, type Transaction } from 'firebase-admin/firestore';
import pRetry, { AbortError } from 'p-retry';
import { AppError, messageOf } from '../errors.js';
import { logger } from '../log.js';
import { choosePort, portReserved } from '../ports/allocate.js';
import { nameTaken, notFound } from './errors.js';
import { checkHistoryEntry, checkRecordToWrite, parseAgentRecord } from './record.js';
import type { AgentPatch, AgentRecord, AgentStatus, HistoryEntry, HistoryEvent, NewAgent, PortRequest, Registry } from './registry.js';

const log = logger('registry');

/** gRPC status codes (google.rpc.Code) this module reacts to. */
const GRPC = { DEADLINE_EXCEEDED: 4, ALREADY_EXISTS: 6, RESOURCE_EXHAUSTED: 8, ABORTED: 10, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16, PERMISSION_DENIED: 7 } as const;
/** Worth retrying with backoff (Google's guidance for Firestore). */
const TRANSIENT: ReadonlySet<number> = new Set([GRPC.DEADLINE_EXCEEDED, GRPC.RESOURCE_EXHAUSTED, GRPC.ABORTED, GRPC.INTERNAL, GRPC.UNAVAILABLE]);

export interface FirestoreRegistryOptions {
  /** Google Cloud project id (GOOGLE_CLOUD_PROJECT). */
  projectId: string;
  /** Prefix of the collections: `<prefix>agents`, `<prefix>ports`. Default `nexus_`. */
  collectionPrefix?: string;
  /** Firestore database id; default `(default)`. */
  databaseId?: string;
  /** Deadline of one registry operation in ms, retries included (default 10000). */
  timeoutMs?: number;
  /** How an agent's endpoint URL is derived from its port (stored for console readers). */
  endpointOf?: (port: number) => string;
  /** Environment, to tell the emulator (FIRESTORE_EMULATOR_HOST) from real Firestore. */
  env?: Record<string, string | undefined>;
}

/** History events recorded in `<prefix>agents/{slug}/history` (src/registry/registry.ts). */
export type { HistoryEvent };

const EVENT_OF_STATUS: Partial<Record<AgentStatus, HistoryEvent>> = {
  built: 'built',
  running: 'started',
  stopped: 'stopped',
  unhealthy: 'unhealthy',
  failed: 'failed',
};

let appCounter = 0;

function toIso(v: unknown): string {
  if (v instanceof Timestamp) return v.toDate().toISOString();
  if (typeof v === 'string') return v;
  return new Date(0).toISOString();
}

/**
 * Where credentials come from when not using an emulator: GOOGLE_APPLICATION_CREDENTIALS, or the
 * gcloud application-default file. (The metadata server is not probed: that would send traffic
 * off this machine, and on a laptop it only adds a long wait before the same error.)
 */
function hasCredentials(env: Record<string, string | undefined>): boolean {
  if (env.GOOGLE_APPLICATION_CREDENTIALS) return true;
  const adc = join(env.CLOUDSDK_CONFIG ?? join(homedir(), '.config', 'gcloud'), 'application_default_credentials.json');
  return existsSync(adc) || env.NEXUS_FIRESTORE_USE_METADATA === 'true';
}

/**
 * The Firestore registry (firebase-admin), for teams: every workstation and server points at one
 * database. Layout, made for browsing in the Firebase console:
 * - `<prefix>agents/{slug}`: one document per agent with readable fields (name, slug,
 *   description, capabilities, category, model, version, port, image, status, health, endpoint,
 *   tools, marketplace, createdAt/updatedAt server timestamps);
 * - `<prefix>ports/{port}`: `{agent, createdAt}`, created in the same transaction as the agent
 *   (`create` fails if the document exists), so two machines can never take one port;
 * - `<prefix>agents/{slug}/history/{auto-id}`: lifecycle events `{event, status, at}`.
 * Works unchanged against real Firestore, the official emulator and any emulator speaking the same
 * gRPC API. Every operation has a deadline (timeoutMs) and retries transient errors with backoff.
 */
export class FirestoreRegistry implements Registry {
  readonly kind = 'firestore' as const;
  private readonly app: App;
  private readonly db: Firestore;
  readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly endpointOf: ((port: number) => string) | undefined;
  private readonly target: string;

  constructor(o: FirestoreRegistryOptions) {
    const env = o.env ?? process.env;
    const emulator = env.FIRESTORE_EMULATOR_HOST;
    if (!emulator && !hasCredentials(env)) {
      throw new AppError('CONFIG_INVALID', 'no Google credentials for Firestore', {
        hint: 'set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, run gcloud auth application-default login, or set FIRESTORE_EMULATOR_HOST',
      });
    }
    // Google's auth library otherwise probes the GCE metadata server (169.254.169.254, off this
    // machine) to look for credentials or a project: never, unless the user opts in on GCP.
    if (env.NEXUS_FIRESTORE_USE_METADATA !== 'true' && !process.env.METADATA_SERVER_DETECTION) process.env.METADATA_SERVER_DETECTION = 'none';
    this.prefix = o.collectionPrefix ?? 'nexus_';
    this.timeoutMs = o.timeoutMs ?? 10_000;
    this.endpointOf = o.endpointOf;
    this.target = emulator ? `the Firestore emulator at ${emulator}` : `Firestore (project ${o.projectId})`;
    this.app = initializeApp(emulator ? { projectId: o.projectId } : { projectId: o.projectId, credential: applicationDefault() }, `nexus-registry-${++appCounter}`);
    this.db = o.databaseId ? getFirestore(this.app, o.databaseId) : getFirestore(this.app);
    this.db.settings({ ignoreUndefinedProperties: true });
  }

  private agents() {
    return this.db.collection(`${this.prefix}agents`);
  }
  private ports() {
    return this.db.collection(`${this.prefix}ports`);
  }

  /** Run `fn` with transient retries, inside one overall deadline. AppErrors pass through. */
  private async op<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new AppError('REGISTRY_UNREACHABLE', `${this.target} did not answer within ${this.timeoutMs} ms (${what})`, {
              hint: 'check FIRESTORE_EMULATOR_HOST / your network and credentials, or raise firestore.timeoutMs',
            }),
          ),
        this.timeoutMs,
      );
    });
    const attempt = pRetry(
      async () => {
        try {
          return await fn();
        } catch (err) {
          const code = (err as { code?: unknown }).code;
          if (err instanceof AppError || typeof code !== 'number' || !TRANSIENT.has(code)) throw new AbortError(err as Error);
          log.debug({ what, code, err: messageOf(err) }, 'transient, retrying');
          throw err;
        }
      },
      { retries: 5, minTimeout: 100, maxTimeout: 2000, randomize: true },
    );
    try {
      return await Promise.race([attempt, deadline]);
    } catch (err) {
      throw this.wrap(err, what);
    } finally {
      clearTimeout(timer);
    }
  }

  private wrap(err: unknown, what: string): AppError {
    if (err instanceof AppError) return err;
    const code = (err as { code?: unknown }).code;
    if (code === GRPC.UNAUTHENTICATED || code === GRPC.PERMISSION_DENIED) {
      return new AppError('REGISTRY_UNREACHABLE', `${this.target} refused the credentials (${what})`, {
        hint: 'check GOOGLE_APPLICATION_CREDENTIALS and that the service account may use Firestore',
      });
    }
    if (typeof code === 'number' && TRANSIENT.has(code)) {
      return new AppError('REGISTRY_UNREACHABLE', `${this.target} kept failing (${what}): ${messageOf(err).split('\n')[0]}`, { hint: 'try again later' });
    }
    return new AppError('REGISTRY_CORRUPT', `${this.target}: ${what} failed: ${messageOf(err).split('\n')[0]}`, { cause: err });
  }

  private toDoc(r: Omit<AgentRecord, 'createdAt' | 'updatedAt'>): DocumentData {
    return {
      name: r.name,
      slug: r.slug,
      description: r.description,
      capabilities: r.capabilities,
      category: r.category,
      model: r.model,
      version: r.version,
      port: r.port,
      desired: r.desired,
      status: r.status,
      health: r.status === 'running' ? 'healthy' : r.status === 'unhealthy' ? 'unhealthy' : 'unknown',
      endpoint: this.endpointOf?.(r.port) ?? null,
      image: r.image ?? null,
      // JSON Schemas may hold nested arrays, which Firestore fields cannot: keep them as JSON text
      tools: r.tools ? r.tools.map((t) => ({ name: t.name, description: t.description, parameters: JSON.stringify(t.parameters) })) : null,
      marketplace: r.marketplace ?? null,
      lastError: r.lastError ?? null,
    };
  }

  /**
   * A document as an AgentRecord, checked by the record schema (documents may have been written by
   * anyone with access to the database).
   * @throws AppError REGISTRY_CORRUPT naming the document and its first bad field.
   */
  private fromDoc(id: string, d: DocumentData): AgentRecord {
    const where = `${this.target}: ${this.prefix}agents/${id}`;
    const hint = `fix or delete that document in the Firebase console; nothing was changed`;
    let tools: unknown = undefined;
    if (Array.isArray(d.tools)) {
      tools = d.tools.map((t: { name?: unknown; description?: unknown; parameters?: unknown }, i: number) => {
        let parameters: unknown = t?.parameters;
        if (typeof parameters === 'string') {
          try {
            parameters = JSON.parse(parameters);
          } catch {
            throw new AppError('REGISTRY_CORRUPT', `${where}: field 'tools.${i}.parameters' is not valid JSON`, { hint, details: { field: `tools.${i}.parameters` } });
          }
        }
        return { name: t?.name, description: t?.description, parameters };
      });
    } else if (d.tools !== null && d.tools !== undefined) tools = d.tools;
    const candidate = {
      name: d.name,
      slug: d.slug,
      description: d.description,
      capabilities: d.capabilities ?? [],
      category: d.category,
      model: d.model,
      version: d.version,
      port: d.port,
      desired: d.desired,
      status: d.status,
      ...(d.image ? { image: d.image } : {}),
      ...(tools !== undefined ? { tools } : {}),
      ...(d.marketplace ? { marketplace: d.marketplace } : {}),
      ...(d.lastError ? { lastError: d.lastError } : {}),
      createdAt: toIso(d.createdAt),
      updatedAt: toIso(d.updatedAt),
    };
    const record = parseAgentRecord(candidate, this.target, 'REGISTRY_CORRUPT', hint, `${this.prefix}agents/${id}`);
    if (record.slug !== id) {
      throw new AppError('REGISTRY_CORRUPT', `${where}: field 'slug' does not match the document id`, { hint, details: { field: 'slug' } });
    }
    return record;
  }

  private recordHistory(tx: Transaction, slug: string, event: HistoryEvent, status: AgentStatus | null): void {
    tx.create(this.agents().doc(slug).collection('history').doc(), { event, status, at: FieldValue.serverTimestamp() });
  }

  async create(agent: NewAgent, portReq: PortRequest): Promise<AgentRecord> {
    return this.op(`create ${agent.slug}`, async () => {
      // Real Firestore aborts (and the client retries) conflicting transactions; some emulators
      // instead fail the losing commit with ALREADY_EXISTS. Either way: re-read and try again.
      for (let attempt = 1; ; attempt++) {
        try {
          return await this.createOnce(agent, portReq);
        } catch (err) {
          if ((err as { code?: unknown }).code !== GRPC.ALREADY_EXISTS || attempt >= 20) throw err;
          if ((await this.agents().doc(agent.slug).get()).exists) throw nameTaken(agent.slug);
          if (portReq.requested !== undefined) {
            const holder = (await this.ports().doc(String(portReq.requested)).get()).data()?.agent as string | undefined;
            if (holder) throw portReserved(portReq.requested, holder);
          }
          await new Promise((r) => setTimeout(r, 10 + Math.random() * 40 * attempt));
        }
      }
    });
  }

  private async createOnce(agent: NewAgent, portReq: PortRequest): Promise<AgentRecord> {
    const port = await this.db.runTransaction(async (tx) => {
      const ref = this.agents().doc(agent.slug);
      const [existing, ports] = await Promise.all([tx.get(ref), tx.get(this.ports())]);
      if (existing.exists) throw nameTaken(agent.slug);
      const reserved = new Map(ports.docs.map((d) => [Number(d.id), String(d.data().agent)] as const));
      const chosen = await choosePort({ ...portReq, reserved });
      const rec = { ...agent, port: chosen, desired: 'stopped' as const, status: 'created' as const };
      checkRecordToWrite({ ...rec, createdAt: '', updatedAt: '' });
      tx.create(this.ports().doc(String(chosen)), { agent: agent.slug, createdAt: FieldValue.serverTimestamp() });
      tx.create(ref, { ...this.toDoc(rec), createdAt: FieldValue.serverTimestamp(), updatedAt: FieldValue.serverTimestamp() });
      this.recordHistory(tx, agent.slug, 'created', 'created');
      return chosen;
    });
    log.debug({ agent: agent.slug, port }, 'created record');
    return (await this.get(agent.slug))!;
  }

  async get(slug: string): Promise<AgentRecord | undefined> {
    return this.op(`get ${slug}`, async () => {
      const snap = await this.agents().doc(slug).get();
      return snap.exists ? this.fromDoc(snap.id, snap.data()!) : undefined;
    });
  }

  async list(): Promise<AgentRecord[]> {
    return this.op('list', async () => {
      const snap = await this.agents().orderBy('port').get();
      return snap.docs.map((d) => this.fromDoc(d.id, d.data()));
    });
  }

  async update(slug: string, patch: AgentPatch): Promise<AgentRecord> {
    return this.op(`update ${slug}`, async () => {
      await this.db.runTransaction(async (tx) => {
        const ref = this.agents().doc(slug);
        const snap = await tx.get(ref);
        if (!snap.exists) throw notFound(slug);
        const current = this.fromDoc(snap.id, snap.data()!);
        const next = checkRecordToWrite({ ...current, ...patch });
        const fields: DocumentData = { ...this.toDoc(next), updatedAt: FieldValue.serverTimestamp() };
        // an explicit `undefined` in the patch clears the field
        for (const [k, v] of Object.entries(patch)) if (v === undefined) fields[k] = FieldValue.delete();
        tx.update(ref, fields);
        const event = patch.status && patch.status !== current.status ? EVENT_OF_STATUS[patch.status] : undefined;
        if (event) this.recordHistory(tx, slug, event, patch.status!);
      });
      return (await this.get(slug))!;
    });
  }

  async remove(slug: string): Promise<boolean> {
    return this.op(`remove ${slug}`, () =>
      this.db.runTransaction(async (tx) => {
        const ref = this.agents().doc(slug);
        const snap = await tx.get(ref);
        if (!snap.exists) return false;
        const port = (snap.data() as { port: number }).port;
        const portRef = this.ports().doc(String(port));
        const portSnap = await tx.get(portRef);
        tx.delete(ref);
        if (portSnap.exists && portSnap.data()?.agent === slug) tx.delete(portRef);
        // the history stays as an audit trail (Firestore does not cascade deletes)
        this.recordHistory(tx, slug, 'removed', null);
        return true;
      }),
    );
  }

  async appendHistory(slug: string, entry: { event: HistoryEvent; reason?: string | undefined }): Promise<void> {
    const e = checkHistoryEntry(slug, entry);
    await this.op(`history ${slug}`, () => this.agents().doc(slug).collection('history').add({ event: e.event, status: null, ...(e.reason ? { reason: e.reason } : {}), at: FieldValue.serverTimestamp() }));
  }

  async history(slug: string): Promise<HistoryEntry[]> {
    return this.op(`history ${slug}`, async () => {
      const snap = await this.agents().doc(slug).collection('history').orderBy('at').get();
      return snap.docs.map((d) => {
        const x = d.data();
        return { event: x.event, status: x.status ?? null, at: toIso(x.at), ...(typeof x.reason === 'string' ? { reason: x.reason } : {}) };
      });
    });
  }

  /** Lifecycle events of an agent, oldest first (the same as `history`). */
  async historyOf(slug: string): Promise<HistoryEntry[]> {
    return this.history(slug);
  }

  async close(): Promise<void> {
    await deleteApp(this.app).catch(() => undefined);
  }
}
