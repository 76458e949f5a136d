/**
 * The manager's gateway: one tool call (`POST /execute` of the agent contract) sent to a healthy
 * replica of an agent, with a keep-alive pool per replica origin (undici), a circuit breaker per
 * replica (cockatiel), retries of connection failures on another replica with exponential backoff
 * and jitter (cockatiel's decorrelated-jitter ExponentialBackoff), in-flight counters the autoscaler
 * reads, and Prometheus metrics.
 *
 * What counts against a replica (opens its breaker) and what is an answer passed through:
 * - answers (passed through, the breaker sees a success): every HTTP response except 502 and 503,
 *   i.e. the contract's 200, 400, 404, 413, 415, 499, 500 (TOOL_ERROR is the tool's fault, not the
 *   replica's) and 504 (TOOL_TIMEOUT: the tool's own budget ran out and the agent said so);
 * - failures (count against the breaker): connection-level errors (refused, reset, socket closed,
 *   DNS, TLS), a 502 or 503 response (a proxy in front of a dead agent, or an agent that is closing:
 *   fastify's return503OnClosing answers 503 before any route runs), and the gateway's own time
 *   budget running out with no answer.
 * A failure is retried on ANOTHER replica only when the request never reached the tool: the
 * connection failed before the request was written (undici's handler saw neither onBodySent,
 * onRequestSent nor a response), or the agent answered 503 (refused before routing). After the
 * request was written, it is retried only if the tool is marked idempotent; otherwise the caller
 * gets 502 AGENT_CALL_FAILED (or 504 AGENT_TIMEOUT), never a second execution.
 * Traefik's model (STYLE.md): passive health, one breaker per server, unhealthy servers out of
 * rotation; a replica whose breaker is open is out of rotation until its cool-down ends, then one
 * trial call half-opens it (cockatiel: one success closes it, one failure re-opens it).
 */
import { BrokenCircuitError, CircuitState, ConsecutiveBreaker, ExponentialBackoff, circuitBreaker, handleWhenResult } from 'cockatiel';
import type { CircuitBreakerPolicy, IBackoff } from 'cockatiel';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import { systemClock, type Clock } from '../../clock.js';
import { AppError, messageOf } from '../../errors.js';
import { createBalancer, type Balancer, type BalanceStrategy, type Candidate } from './balancer.js';

/** A replica as the supervisor reports it. */
export interface GatewayReplica {
  /** Stable id (container id or name). */
  id: string;
  /** Base URL of the agent runtime, e.g. http://127.0.0.1:9101. */
  url: string;
  /** The supervisor's health view: false while a replica is new (no passing check yet) or failing. */
  inRotation: boolean;
  /** Relative weight for the weighted strategy (positive integer, default 1). */
  weight?: number;
}

/** An agent as the gateway needs it; returned by GatewayOptions.resolve. */
export interface GatewayAgent {
  /** The agent's slug (metrics label, error details). */
  slug: string;
  /** Default round-robin. */
  strategy?: BalanceStrategy;
  replicas: readonly GatewayReplica[];
  /** Tools safe to run twice (a retry after the call reached the replica is allowed). */
  idempotentTools?: readonly string[];
}

export interface GatewayOptions {
  /** The agent by name or slug, with its replicas now; undefined when there is no such agent. */
  resolve: (agent: string) => GatewayAgent | undefined | Promise<GatewayAgent | undefined>;
  /** Where the gateway's metrics are registered; none when absent. */
  metrics?: Registry;
  /** Sleeps between retries go through it (tests: ManualClock). */
  clock?: Clock;
  /** Consecutive failures that open a replica's breaker (default 5). */
  breakerFailures?: number;
  /**
   * Cool-down in ms before an open breaker lets one trial call through (default 5000). Measured with
   * Date.now(), as cockatiel does: tests fake Date (vi.useFakeTimers) rather than inject a clock.
   */
  breakerHalfOpenAfterMs?: number;
  /** Replicas tried per call, the first included (default 3). */
  maxAttempts?: number;
  /** First retry delay in ms (default 10); grows exponentially with decorrelated jitter. */
  retryInitialDelayMs?: number;
  /** Largest retry delay in ms (default 200). */
  retryMaxDelayMs?: number;
  /** Connections per replica origin (default 32). */
  connectionsPerReplica?: number;
  /** Idle keep-alive in ms before a pooled connection closes (default 4000, under Node's 5 s server default). */
  keepAliveTimeoutMs?: number;
  /** Time budget of a call in ms when the caller gives none (default 35000: the contract's 30 s tool budget + margin). */
  defaultTimeoutMs?: number;
  /** Retry-After in s when no replica is in rotation and no breaker cool-down tells better (default 5, the probe interval). */
  unavailableRetryAfterS?: number;
}

/** A tool call: the body of the agent contract's POST /execute. */
export interface ExecuteRequest {
  tool_name: string;
  parameters?: Record<string, unknown>;
}

export interface ExecuteOptions {
  /** The caller withdrew (client gone, server closing): the call is aborted, nothing is retried. */
  signal?: AbortSignal;
  /** Time budget of the whole call in ms (all attempts). */
  timeoutMs?: number;
}

/** The agent's own answer, passed through. */
export interface ExecuteResult {
  /** The agent's HTTP status (200, 400, 404, 500, 504, ...). */
  status: number;
  /** The agent's JSON body (the raw text if it was not JSON). */
  body: unknown;
  /** Id of the replica that answered. */
  replica: string;
  /** Slug of the agent that answered (the caller may have named it by name); always set by the Gateway. */
  agent?: string;
}

/** One attempt on one replica, as the breaker sees it. */
type Attempt =
  | { kind: 'answer'; status: number; body: unknown }
  | { kind: 'failure'; written: boolean; status?: number; body?: unknown; error?: Error }
  | { kind: 'timeout' }
  | { kind: 'aborted' };

interface ReplicaState {
  /** Origin of its pool. */
  origin: string;
  /** The replica URL `path` was computed from (recomputed when the replica's URL changes). */
  url: string;
  /** Path of its POST /execute (the URL's path + /execute). */
  path: string;
  breaker: CircuitBreakerPolicy;
  /** Date.now() when the breaker last opened; 0 when closed. */
  openedAt: number;
  inflight: number;
}

interface AgentState {
  balancer: Balancer;
  strategy: BalanceStrategy;
  /** Replica ids last seen, to close what left. */
  ids: Set<string>;
  inflight: number;
}

const isFailure = (r: unknown) => (r as Attempt).kind === 'failure' || (r as Attempt).kind === 'timeout';

export class Gateway {
  private readonly opts: Required<Omit<GatewayOptions, 'metrics'>>;
  private readonly pools = new Map<string, Pool>();
  private readonly replicas = new Map<string, ReplicaState>();
  private readonly agents = new Map<string, AgentState>();
  private readonly calls?: Counter<'agent' | 'replica' | 'outcome'>;
  private readonly duration?: Histogram<'agent' | 'outcome'>;
  private closed = false;

  /** @param opts see GatewayOptions; numbers are ms unless named _S. */
  constructor(opts: GatewayOptions) {
    this.opts = {
      resolve: opts.resolve,
      clock: opts.clock ?? systemClock,
      breakerFailures: opts.breakerFailures ?? 5,
      breakerHalfOpenAfterMs: opts.breakerHalfOpenAfterMs ?? 5000,
      maxAttempts: opts.maxAttempts ?? 3,
      retryInitialDelayMs: opts.retryInitialDelayMs ?? 10,
      retryMaxDelayMs: opts.retryMaxDelayMs ?? 200,
      connectionsPerReplica: opts.connectionsPerReplica ?? 32,
      keepAliveTimeoutMs: opts.keepAliveTimeoutMs ?? 4000,
      defaultTimeoutMs: opts.defaultTimeoutMs ?? 35_000,
      unavailableRetryAfterS: opts.unavailableRetryAfterS ?? 5,
    };
    if (opts.metrics) {
      const registers = [opts.metrics];
      this.calls = new Counter({
        name: 'nexus_gateway_attempts_total',
        help: 'Attempts on replicas by outcome (answer, failure, timeout, rejected by an open breaker, aborted by the caller).',
        labelNames: ['agent', 'replica', 'outcome'],
        registers,
      });
      this.duration = new Histogram({
        name: 'nexus_gateway_request_duration_seconds',
        help: 'Gateway calls, all attempts included, by final outcome (answer, unavailable, failed, timeout, aborted).',
        labelNames: ['agent', 'outcome'],
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        registers,
      });
      const agents = this.agents;
      new Gauge({
        name: 'nexus_gateway_inflight',
        help: 'Calls in flight through the gateway, per agent.',
        labelNames: ['agent'],
        registers,
        collect() {
          this.reset();
          for (const [slug, a] of agents) this.set({ agent: slug }, a.inflight);
        },
      });
    }
  }

  /** Calls in flight for an agent (by slug), for the autoscaler. */
  inflight(agentSlug: string): number {
    return this.agents.get(agentSlug)?.inflight ?? 0;
  }

  /** Calls in flight on one replica (by id). */
  replicaInflight(replicaId: string): number {
    return this.replicas.get(replicaId)?.inflight ?? 0;
  }

  /** The breaker state of a replica: closed, open, half-open (or closed when unknown). */
  breakerState(replicaId: string): 'closed' | 'open' | 'half-open' {
    const s = this.replicas.get(replicaId)?.breaker.state;
    return s === CircuitState.Open || s === CircuitState.Isolated ? 'open' : s === CircuitState.HalfOpen ? 'half-open' : 'closed';
  }

  /**
   * Send one tool call to a replica of `agent` chosen by its strategy among those in rotation whose
   * breaker admits calls, retrying on another replica as the module docstring says.
   * Resolves with the agent's own status and body (any status but 502 and 503, which are failures).
   * @throws AppError AGENT_NOT_FOUND (no such agent), AGENT_UNAVAILABLE (503, `retryAfterS` set: no
   *   replica in rotation, or every one tried failed before the call reached it), AGENT_CALL_FAILED
   *   (502: the replica failed after the call reached it and the tool is not idempotent),
   *   AGENT_TIMEOUT (504: `timeoutMs` passed with no answer); the caller's abort reason when
   *   `signal` aborts.
   */
  async executeViaGateway(agentName: string, req: ExecuteRequest, opts: ExecuteOptions = {}): Promise<ExecuteResult> {
    if (this.closed) throw new AppError('AGENT_UNAVAILABLE', 'the gateway is closing', { retryAfterS: this.opts.unavailableRetryAfterS });
    const started = performance.now();
    const agent = await this.opts.resolve(agentName);
    if (!agent) throw new AppError('AGENT_NOT_FOUND', `no agent '${agentName}'`, { hint: 'list agents with `npm run agent -- list`' });
    const state = this.agentState(agent);
    // one timer and one controller per call (AbortSignal.timeout + any cost more on Node 20's hot path)
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(new DOMException('gateway time budget', 'TimeoutError')), opts.timeoutMs ?? this.opts.defaultTimeoutMs);
    const onCallerAbort = () => ctl.abort(opts.signal!.reason);
    if (opts.signal?.aborted) onCallerAbort();
    else opts.signal?.addEventListener('abort', onCallerAbort, { once: true });
    const signal = ctl.signal;
    const payload = JSON.stringify({ tool_name: req.tool_name, parameters: req.parameters ?? {} });
    const idempotent = agent.idempotentTools?.includes(req.tool_name) ?? false;
    const done = (outcome: string) => this.duration?.observe({ agent: agent.slug, outcome }, (performance.now() - started) / 1000);

    state.inflight++;
    try {
      const tried = new Set<string>();
      let backoff: IBackoff<unknown> | undefined;
      let lastFailure: Extract<Attempt, { kind: 'failure' }> | undefined;
      for (let attempt = 1; attempt <= this.opts.maxAttempts; attempt++) {
        const replica = state.balancer.pick(this.candidates(agent, tried));
        if (!replica) break;
        tried.add(replica.id);
        const r = await this.attempt(agent.slug, replica, payload, signal);
        if (r.kind === 'answer') {
          done('answer');
          return { status: r.status, body: r.body, replica: replica.id, agent: agent.slug };
        }
        if (r.kind === 'aborted' || (r.kind === 'timeout' && opts.signal?.aborted)) {
          done('aborted');
          throw opts.signal?.reason ?? new Error('aborted');
        }
        if (r.kind === 'timeout') {
          done('timeout');
          throw new AppError('AGENT_TIMEOUT', `agent '${agent.slug}' did not answer within ${opts.timeoutMs ?? this.opts.defaultTimeoutMs} ms`, {
            details: { agent: agent.slug, replica: replica.id },
          });
        }
        if (r.kind === 'failure') {
          lastFailure = r;
          if (r.written && !idempotent) {
            done('failed');
            throw new AppError('AGENT_CALL_FAILED', `replica ${replica.id} of '${agent.slug}' failed after the call reached it: ${r.error ? messageOf(r.error) : `HTTP ${r.status}`}`, {
              hint: `not retried: tool '${req.tool_name}' is not marked idempotent`,
              details: { agent: agent.slug, replica: replica.id },
              cause: r.error,
            });
          }
          backoff = backoff ? backoff.next(undefined) : new ExponentialBackoff({ initialDelay: this.opts.retryInitialDelayMs, maxDelay: this.opts.retryMaxDelayMs }).next();
          if (attempt < this.opts.maxAttempts) await this.opts.clock.sleep(backoff.duration);
        }
        // 'rejected': the breaker opened meanwhile; the call was not sent, try another at once
      }
      done('unavailable');
      throw this.unavailable(agent, lastFailure);
    } finally {
      state.inflight--;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onCallerAbort);
    }
  }

  /** Close every pool (in-flight calls finish first, as undici's Pool.close does). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.pools.values()].map((p) => p.close().catch(() => undefined)));
    this.pools.clear();
  }

  private agentState(agent: GatewayAgent): AgentState {
    const strategy = agent.strategy ?? 'round-robin';
    let s = this.agents.get(agent.slug);
    if (!s || s.strategy !== strategy) {
      s = { balancer: createBalancer(strategy), strategy, ids: s?.ids ?? new Set(), inflight: s?.inflight ?? 0 };
      this.agents.set(agent.slug, s);
    }
    // the same replicas as last time (the common case): nothing to forget, no new set
    let same = agent.replicas.length === s.ids.size;
    for (let i = 0; same && i < agent.replicas.length; i++) same = s.ids.has(agent.replicas[i]!.id);
    if (same) return s;
    const ids = new Set(agent.replicas.map((r) => r.id));
    for (const gone of s.ids) if (!ids.has(gone)) this.forgetReplica(gone);
    s.ids = ids;
    return s;
  }

  /** Replicas in rotation, not yet tried, whose breaker is closed or whose cool-down has ended. */
  private candidates(agent: GatewayAgent, tried: Set<string>): (Candidate & GatewayReplica)[] {
    const out: (Candidate & GatewayReplica)[] = [];
    for (const r of agent.replicas) {
      if (!r.inRotation || tried.has(r.id)) continue;
      const st = this.replicas.get(r.id);
      if (st && !this.admits(st)) continue;
      out.push({ ...r, inflight: st?.inflight ?? 0 });
    }
    return out;
  }

  private admits(st: ReplicaState): boolean {
    const s = st.breaker.state;
    if (s === CircuitState.Closed) return true;
    // half-open: its one trial call is in flight; open: out until the cool-down ends
    if (s === CircuitState.Open) return Date.now() - st.openedAt >= this.opts.breakerHalfOpenAfterMs;
    return false;
  }

  private replicaState(id: string, url: string): ReplicaState {
    let st = this.replicas.get(id);
    if (!st) {
      const breaker = circuitBreaker(handleWhenResult(isFailure), {
        halfOpenAfter: this.opts.breakerHalfOpenAfterMs,
        breaker: new ConsecutiveBreaker(this.opts.breakerFailures),
      });
      const created: ReplicaState = { origin: '', url: '', path: '', breaker, openedAt: 0, inflight: 0 };
      breaker.onBreak(() => (created.openedAt = Date.now()));
      breaker.onReset(() => (created.openedAt = 0));
      this.replicas.set(id, created);
      st = created;
    }
    if (st.url !== url) {
      // parsed once per replica URL, not per call; a replica that moved leaves its old pool
      const u = new URL(url);
      const old = st.origin;
      st.url = url;
      st.origin = u.origin;
      if (old && old !== st.origin) this.closePoolUnlessShared(old);
      st.path = `${u.pathname.replace(/\/$/, '')}/execute`;
    }
    return st;
  }

  private pool(origin: string): Pool {
    let p = this.pools.get(origin);
    if (!p) {
      p = new Pool(origin, { connections: this.opts.connectionsPerReplica, keepAliveTimeout: this.opts.keepAliveTimeoutMs, pipelining: 1 });
      this.pools.set(origin, p);
    }
    return p;
  }

  /** Drop a replica that left its agent, and close its pool unless another replica shares the origin. */
  private forgetReplica(id: string): void {
    const st = this.replicas.get(id);
    if (!st) return;
    this.replicas.delete(id);
    this.closePoolUnlessShared(st.origin);
  }

  /** Close the pool of `origin` unless a known replica still uses it. */
  private closePoolUnlessShared(origin: string): void {
    for (const other of this.replicas.values()) if (other.origin === origin) return;
    const p = this.pools.get(origin);
    this.pools.delete(origin);
    // in-flight calls on it finish first (Pool.close); a later call to the origin opens a new pool
    void p?.close().catch(() => undefined);
  }

  /** Origins with an open keep-alive pool (to check that removed replicas' pools are closed). */
  openPools(): string[] {
    return [...this.pools.keys()];
  }

  private async attempt(agentSlug: string, replica: GatewayReplica, payload: string, signal: AbortSignal): Promise<Attempt | { kind: 'rejected' }> {
    const st = this.replicaState(replica.id, replica.url);
    st.inflight++;
    let outcome = 'rejected';
    try {
      const r = (await st.breaker.execute(() => send(this.pool(st.origin), st.path, payload, signal))) as Attempt;
      outcome = r.kind;
      return r;
    } catch (err) {
      if (err instanceof BrokenCircuitError) return { kind: 'rejected' };
      throw err;
    } finally {
      st.inflight--;
      this.calls?.inc({ agent: agentSlug, replica: replica.id, outcome });
    }
  }

  private unavailable(agent: GatewayAgent, last: Extract<Attempt, { kind: 'failure' }> | undefined): AppError {
    // the soonest an open breaker half-opens, else the probe interval
    let retryMs = this.opts.unavailableRetryAfterS * 1000;
    for (const r of agent.replicas) {
      const st = this.replicas.get(r.id);
      if (st && st.openedAt > 0 && r.inRotation) retryMs = Math.min(retryMs, st.openedAt + this.opts.breakerHalfOpenAfterMs - Date.now());
    }
    const retryAfterS = Math.max(1, Math.ceil(retryMs / 1000));
    const inRotation = agent.replicas.filter((r) => r.inRotation).length;
    return new AppError('AGENT_UNAVAILABLE', `agent '${agent.slug}' has no healthy replica (${inRotation}/${agent.replicas.length} in rotation)`, {
      hint: `retry after ${retryAfterS} s; check it with \`npm run agent -- status\``,
      details: { agent: agent.slug, replicas: agent.replicas.length, inRotation },
      retryAfterS,
      ...(last?.error ? { cause: last.error } : {}),
    });
  }
}

/**
 * POST `payload` to `path` on `pool` and collect the answer. Never rejects: connection errors
 * resolve as failures telling whether the request had been written to the socket.
 */
function send(pool: Pool, path: string, payload: string, signal: AbortSignal): Promise<Attempt> {
  return new Promise<Attempt>((resolve) => {
    let written = false;
    let status = 0;
    let settled = false;
    let abortRequest: ((err?: Error) => void) | undefined;
    const chunks: Buffer[] = [];
    const finish = (a: Attempt) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      resolve(a);
    };
    const onAbort = () => {
      // settle first: undici reports the abort through onError, which must not read as a failure
      finish(signal.reason instanceof DOMException && signal.reason.name === 'TimeoutError' ? { kind: 'timeout' } : { kind: 'aborted' });
      abortRequest?.(signal.reason as Error);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    // onRequestSent is called by undici 6 (lib/core/request.js) but missing from its types
    const handler: Dispatcher.DispatchHandlers & { onRequestSent(): void } = {
      onConnect(abort) {
        abortRequest = abort;
        if (settled) abort();
      },
      onBodySent() {
        written = true;
      },
      onRequestSent() {
        written = true;
      },
      onHeaders(statusCode) {
        written = true;
        status = statusCode;
        return true;
      },
      onData(chunk) {
        chunks.push(chunk);
        return true;
      },
      onComplete() {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: passed through as text
        }
        if (status === 502 || status === 503) finish({ kind: 'failure', written: status === 502, status, body });
        else finish({ kind: 'answer', status, body });
      },
      onError(err) {
        finish({ kind: 'failure', written, error: err });
      },
    };
    pool.dispatch({ path, method: 'POST', headers: { 'content-type': 'application/json' }, body: payload }, handler);
  });
}
