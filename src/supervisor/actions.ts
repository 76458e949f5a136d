/**
 * What the supervisor does to the fleet, always through the fleet's use cases (start = desire ->
 * observe -> plan -> execute; scale), never beside them, and what it writes down: an event with its
 * reason, the registry history, the record's status, and the marketplace listing of registered
 * agents. Every function here reports its failure as a value; none throws into the loop.
 */
import pLimit from 'p-limit';
import { messageOf } from '../errors.js';
import { logger } from '../log.js';
import { emitterOf, type FleetDeps } from '../fleet/context.js';
import type { AgentPatch, AgentRecord, HistoryEvent, ListingChange } from '../registry/registry.js';
import type { SupervisorEvent } from './prober.js';

const log = logger('supervisor');

/** Prefix of `lastError` when the supervisor gave up on an agent: such a record is not restored again until an operator starts it. */
export const SUPERVISOR_FAILED = 'supervisor: ';

/** Whether the supervisor gave up on this record (status failed with its mark). */
export function givenUp(rec: AgentRecord): boolean {
  return rec.status === 'failed' && !!rec.lastError?.startsWith(SUPERVISOR_FAILED);
}

/**
 * One fleet action at a time per process: after a reboot every agent is restored at once, and
 * parallel start use cases would each build the shared base image.
 */
const serial = pLimit(1);

/** The result of converging one agent through the fleet's start use case. */
export type ConvergeResult = { ok: true } | { ok: false; reason: string };

/**
 * Start an agent again through the fleet's start use case (`startWith`: builds what changed,
 * creates or starts its containers, waits for health, records running). `remove`: container ids
 * to remove first (a hung replica is recreated, not signalled). `replicas`: the count to keep
 * when the agent runs more than one container. Never throws: a failure is the result.
 */
export function convergeAgent(deps: FleetDeps, slug: string, opts: { remove?: string[]; replicas?: number | undefined } = {}): Promise<ConvergeResult> {
  return serial(() => convergeNow(deps, slug, opts));
}

async function convergeNow(deps: FleetDeps, slug: string, opts: { remove?: string[]; replicas?: number | undefined }): Promise<ConvergeResult> {
  try {
    for (const id of opts.remove ?? []) await deps.engine.removeContainer(id);
    const { startWith } = await import('../fleet/start.js');
    const { result } = await startWith(deps, [slug], opts.replicas && opts.replicas > 1 ? { replicas: opts.replicas } : {});
    const out = result.agents[0];
    if (!out || out.outcome === 'failed') return { ok: false, reason: out?.error?.message ?? 'the start use case reported no outcome' };
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: messageOf(err) };
  }
}

/** Scale an agent through the fleet's scale use case. Never throws. */
export function scaleTo(deps: FleetDeps, slug: string, replicas: number, routerPort: number | undefined): Promise<ConvergeResult> {
  return serial(async () => {
    try {
      const { scaleAgent } = await import('../fleet/scale.js');
      await scaleAgent(deps, slug, replicas, { routerPort });
      return { ok: true };
    } catch (err) {
      return { ok: false, reason: messageOf(err) };
    }
  });
}

/** The supervisor's bookkeeping side: events, history, record status, listings. */
export class Recorder {
  constructor(
    private readonly deps: FleetDeps,
    private readonly emit: (e: SupervisorEvent) => void,
  ) {}

  /** Append `e` to the agent's history as `event` when given, then emit it (whoever sees the event finds it in the history). */
  async note(e: SupervisorEvent, event?: HistoryEvent): Promise<void> {
    if (event) await this.deps.registry.appendHistory(e.agent, { event, reason: e.reason }).catch((err) => log.warn({ agent: e.agent, err: messageOf(err) }, 'history not written'));
    log.info({ agent: e.agent, type: e.type, reason: e.reason }, 'supervisor');
    try {
      this.emit(e);
    } catch (err) {
      log.warn({ agent: e.agent, type: e.type, err: messageOf(err) }, 'event sink failed'); // a sink never stops the loop
    }
  }

  /** Patch the record (a record removed meanwhile is fine). */
  async status(slug: string, patch: AgentPatch): Promise<void> {
    await this.deps.registry.update(slug, patch).catch((err) => log.debug({ agent: slug, err: messageOf(err) }, 'record not updated'));
  }

  /** Listings follow health: only for agents registered in the marketplace (src/fleet/listings.ts). */
  async listing(rec: AgentRecord | undefined, change: ListingChange): Promise<void> {
    if (!rec?.marketplace) return;
    try {
      const { syncListingsIfRegistered } = await import('../fleet/listings.js');
      await syncListingsIfRegistered(this.deps, [{ slug: rec.slug, change }]);
    } catch (err) {
      log.warn({ agent: rec.slug, err: messageOf(err) }, 'listing not synced');
    }
  }

  /** Give up on an agent: status failed with the reason, history, event `failed`, listing unavailable. */
  async fail(rec: AgentRecord | undefined, slug: string, at: number, reason: string, replica?: string): Promise<void> {
    await this.status(slug, { status: 'failed', lastError: `${SUPERVISOR_FAILED}${reason}` });
    await this.note({ type: 'failed', agent: slug, ...(replica ? { replica } : {}), at, reason }, 'failed');
    await this.listing(rec, 'unavailable');
  }
}

/** SupervisorEvents into the fleet's typed stream (the manager's event bus) as notes. */
export function asFleetNotes(deps: FleetDeps): (e: SupervisorEvent) => void {
  const emit = emitterOf(deps);
  return (e) => emit({ kind: 'note', phase: e.type, agent: e.agent, message: e.reason });
}
