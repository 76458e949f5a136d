/**
 * Per-replica health as the supervisor's probes see it (Traefik's active health check, STYLE.md):
 * a new replica stays out of rotation until its first passing check; `failureThreshold` consecutive
 * failing checks (default 3, the source documents' "3 failures mark an agent unavailable") take it
 * out; one passing check puts it back. Pure: times are given by the caller.
 */

export interface ReplicaHealth {
  inRotation: boolean;
  /** Failing checks in a row since the last pass. */
  consecutiveFailures: number;
  /** ms since the epoch of the last check, 0 before any. */
  lastCheckAt: number;
  /** True once any check passed. */
  everPassed: boolean;
}

/** What one check changed: the replica entered or left the rotation, or nothing. */
export type RotationChange = 'in' | 'out' | null;

export class HealthTracker {
  private readonly replicas = new Map<string, ReplicaHealth>();

  /** @param failureThreshold consecutive failing checks that take a replica out (integer >= 1). */
  constructor(readonly failureThreshold = 3) {
    if (!Number.isInteger(failureThreshold) || failureThreshold < 1) throw new RangeError('failureThreshold must be an integer >= 1');
  }

  /** Start tracking a replica (out of rotation until its first passing check). Idempotent. */
  add(id: string): ReplicaHealth {
    let h = this.replicas.get(id);
    if (!h) {
      h = { inRotation: false, consecutiveFailures: 0, lastCheckAt: 0, everPassed: false };
      this.replicas.set(id, h);
    }
    return h;
  }

  remove(id: string): void {
    this.replicas.delete(id);
  }

  get(id: string): Readonly<ReplicaHealth> | undefined {
    return this.replicas.get(id);
  }

  /** Whether the gateway may send calls to it. Unknown replicas are out. */
  inRotation(id: string): boolean {
    return this.replicas.get(id)?.inRotation ?? false;
  }

  /**
   * Feed one check result taken at `at` (ms since the epoch); adds the replica if unknown.
   * Returns the rotation change it caused.
   */
  record(id: string, passed: boolean, at: number): RotationChange {
    const h = this.add(id);
    h.lastCheckAt = at;
    if (passed) {
      h.consecutiveFailures = 0;
      h.everPassed = true;
      if (h.inRotation) return null;
      h.inRotation = true;
      return 'in';
    }
    h.consecutiveFailures++;
    if (h.inRotation && h.consecutiveFailures >= this.failureThreshold) {
      h.inRotation = false;
      return 'out';
    }
    return null;
  }
}
