import axios, { type AxiosError, type AxiosInstance } from 'axios';
import axiosRetry from 'axios-retry';
import { AppError } from '../errors.js';
import { logger } from '../log.js';
import type { MarketplaceCard } from './cards.js';
import type { Listing } from './server.js';
import { checkMarketplaceUrl } from './url.js';

const log = logger('marketplace');

export interface MarketplaceClientOptions {
  /** Base URL, e.g. http://127.0.0.1:8200; http(s), without credentials (AppError CONFIG_INVALID otherwise). */
  baseUrl: string;
  /** Bearer token. Secret: kept only in the request header, never logged or returned. */
  apiKey: string;
  /** Per-attempt deadline in ms (default 10000). */
  timeoutMs?: number;
  /** Retries after the first attempt (default 4). */
  retries?: number;
  /** First backoff in ms (default 500); doubles each retry, with jitter, up to maxDelayMs. */
  baseDelayMs?: number;
  /** Backoff cap in ms (default 10000). A longer Retry-After is capped at 60 s. */
  maxDelayMs?: number;
  /** Told about every retry: attempt number (1 = first retry), the wait in ms and why. */
  onRetry?: (info: RetryInfo) => void;
  /** Random source in [0,1) for jitter (tests pass a fixed one). */
  random?: () => number;
}

export interface RetryInfo {
  attempt: number;
  delayMs: number;
  reason: string;
}

const MAX_RETRY_AFTER_MS = 60_000;

/** Retry-After as ms: delay-seconds or an HTTP-date (RFC 9110 §10.2.3); undefined when absent or bad. */
export function parseRetryAfter(value: unknown, now = Date.now()): number | undefined {
  if (typeof value !== 'string' || !value.trim()) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Network errors, timeouts, 429 and 5xx are worth another try; other 4xx are final. */
export function isRetryable(err: AxiosError): boolean {
  if (!err.response) return err.code !== 'ERR_CANCELED';
  return err.response.status === 429 || err.response.status >= 500;
}

/**
 * Backoff before retry `attempt` (1-based): exponential (base * 2^(attempt-1), capped) with
 * "equal jitter" (half fixed, half random), never shorter than the server's Retry-After.
 */
export function retryDelayMs(attempt: number, retryAfterMs: number | undefined, o: { baseDelayMs: number; maxDelayMs: number; random: () => number }): number {
  const exp = Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** (attempt - 1));
  const jittered = exp / 2 + o.random() * (exp / 2);
  return Math.round(Math.max(jittered, Math.min(retryAfterMs ?? 0, MAX_RETRY_AFTER_MS)));
}

function reasonOf(err: AxiosError): string {
  if (err.response) return `HTTP ${err.response.status}`;
  if (err.code === 'ECONNABORTED' || err.code === 'ETIMEDOUT') return 'timeout';
  return err.code ?? err.message;
}

/**
 * HTTP client of the marketplace API (see the reference server's /openapi.json): idempotent
 * upsert by listing key, get, delete, list. Retries as described above; errors are AppError
 * MARKETPLACE_UNREACHABLE / MARKETPLACE_AUTH / MARKETPLACE_REJECTED / MARKETPLACE_ERROR saying
 * what the marketplace answered.
 */
export class MarketplaceClient {
  private readonly http: AxiosInstance;
  readonly baseUrl: string;
  private readonly attempts: number;

  constructor(o: MarketplaceClientOptions) {
    this.baseUrl = checkMarketplaceUrl(o.baseUrl, 'the marketplace URL').replace(/\/+$/, '');
    const retries = o.retries ?? 4;
    this.attempts = retries + 1;
    const backoff = { baseDelayMs: o.baseDelayMs ?? 500, maxDelayMs: o.maxDelayMs ?? 10_000, random: o.random ?? Math.random };
    this.http = axios.create({
      baseURL: this.baseUrl,
      timeout: o.timeoutMs ?? 10_000,
      headers: { authorization: `Bearer ${o.apiKey}`, 'user-agent': 'nexus-delta-agents' },
    });
    axiosRetry(this.http, {
      retries,
      shouldResetTimeout: true,
      retryCondition: isRetryable,
      retryDelay: (attempt, err) => {
        const delayMs = retryDelayMs(attempt, parseRetryAfter(err.response?.headers?.['retry-after']), backoff);
        const reason = reasonOf(err);
        log.debug({ attempt, delayMs, reason, url: err.config?.url }, 'retrying');
        o.onRetry?.({ attempt, delayMs, reason });
        return delayMs;
      },
    });
  }

  private fail(err: unknown, what: string): AppError {
    const e = err as AxiosError<{ error?: { message?: string } }>;
    const answer = e.response?.data?.error?.message;
    const status = e.response?.status;
    const tries = `${this.attempts} attempt${this.attempts > 1 ? 's' : ''}`;
    if (!e.response) {
      const timeout = e.code === 'ECONNABORTED' || e.code === 'ETIMEDOUT';
      return new AppError('MARKETPLACE_UNREACHABLE', `${what}: ${timeout ? 'no answer in time from' : `cannot reach (${e.code ?? e.message})`} the marketplace at ${this.baseUrl} after ${tries}`, {
        hint: 'check MARKETPLACE_URL and that the marketplace is up (npm run marketplace to run the reference one)',
      });
    }
    if (status === 401 || status === 403) {
      return new AppError('MARKETPLACE_AUTH', `${what}: the marketplace refused the API key (HTTP ${status}${answer ? `: ${answer}` : ''})`, {
        hint: 'check MARKETPLACE_API_KEY',
      });
    }
    if (status === 429 || (status !== undefined && status >= 500)) {
      return new AppError('MARKETPLACE_ERROR', `${what}: the marketplace answered HTTP ${status}${answer ? ` (${answer})` : ''} after ${tries}`, {
        hint: 'try again later',
      });
    }
    return new AppError('MARKETPLACE_REJECTED', `${what}: the marketplace rejected the request: HTTP ${status}${answer ? ` ${answer}` : ''}`, {
      hint: 'fix what it names (the card is built from the agent record and its /tools)',
    });
  }

  /** Create or update the listing under `key`. Returns the listing and whether it was created. */
  async upsert(key: string, card: MarketplaceCard): Promise<{ listing: Listing; created: boolean }> {
    try {
      const res = await this.http.put<Listing>(`/v1/agents/${encodeURIComponent(key)}`, card);
      return { listing: res.data, created: res.status === 201 };
    } catch (err) {
      throw this.fail(err, `register ${card.name}`);
    }
  }

  async get(key: string): Promise<Listing | undefined> {
    try {
      return (await this.http.get<Listing>(`/v1/agents/${encodeURIComponent(key)}`)).data;
    } catch (err) {
      if ((err as AxiosError).response?.status === 404) return undefined;
      throw this.fail(err, `get ${key}`);
    }
  }

  /** Delete the listing; false when it did not exist. */
  async remove(key: string): Promise<boolean> {
    try {
      await this.http.delete(`/v1/agents/${encodeURIComponent(key)}`);
      return true;
    } catch (err) {
      if ((err as AxiosError).response?.status === 404) return false;
      throw this.fail(err, `unregister ${key}`);
    }
  }

  async list(query: { capability?: string; category?: string; q?: string } = {}): Promise<Listing[]> {
    try {
      return (await this.http.get<{ agents: Listing[] }>('/v1/agents', { params: query })).data.agents;
    } catch (err) {
      throw this.fail(err, 'list');
    }
  }
}
