import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig, resolveConfig } from '../../src/config/config.js';
import { FakeEngine } from '../../src/engine/fake.js';
import { AppError } from '../../src/errors.js';
import { createManager, type Manager } from '../../src/server/manager.js';
import { BOOTSTRAP } from '../helpers/manager.js';

describe('manager rate limits from the workspace configuration (issue 9 §3: configurable separately for the gateway)', () => {
  it('nexus.yaml manager.rateLimits, overridden by NEXUS_API_RATE_LIMIT / NEXUS_GATEWAY_RATE_LIMIT; unset budgets keep their defaults', () => {
    expect(resolveConfig('/ws', {}, {}).manager.rateLimits).toEqual({});
    const file = { manager: { rateLimits: { api: { perMinute: 50 }, gateway: { perMinute: 6000 } } } };
    expect(resolveConfig('/ws', file, {}).manager.rateLimits).toEqual({ api: { perMinute: 50 }, gateway: { perMinute: 6000 } });
    expect(resolveConfig('/ws', file, { NEXUS_GATEWAY_RATE_LIMIT: '90000' }).manager.rateLimits).toEqual({ api: { perMinute: 50 }, gateway: { perMinute: 90000 } });
    expect(resolveConfig('/ws', {}, { NEXUS_API_RATE_LIMIT: '7' }).manager.rateLimits).toEqual({ api: { perMinute: 7 } });
  });

  it('a bad value is a one-line CONFIG_INVALID naming the setting and the fix', () => {
    for (const bad of ['0', '-1', 'ten', '1.5', '']) {
      let err: unknown;
      try {
        resolveConfig('/ws', {}, { NEXUS_GATEWAY_RATE_LIMIT: bad });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe('CONFIG_INVALID');
      expect((err as AppError).message).toContain('NEXUS_GATEWAY_RATE_LIMIT');
    }
  });

  let m: Manager | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await m?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    m = undefined;
    dir = undefined;
  });

  it('createManager applies the configured api budget: the request past it answers 429 with Retry-After', async () => {
    dir = await mkdtemp(join(tmpdir(), 'nexus-rate-limits-'));
    const config = loadConfig(dir, { NEXUS_OFFLINE: 'always', NEXUS_API_RATE_LIMIT: '3' });
    m = await createManager({ config, env: { NEXUS_MANAGER_TOKEN: BOOTSTRAP }, engine: new FakeEngine() });
    const get = () => m!.app.inject({ method: 'GET', url: '/api/v1/agents', headers: { authorization: `Bearer ${BOOTSTRAP}` } });
    const codes: number[] = [];
    for (let i = 0; i < 4; i++) codes.push((await get()).statusCode);
    expect(codes).toEqual([200, 200, 200, 429]);
    expect(Number((await get()).headers['retry-after'])).toBeGreaterThan(0);
  });
});
