import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { AppError } from '../../src/errors.js';
import { ErrorBody, withErrors } from '../../src/server/schemas.js';

/** A bootstrap admin token for tests (NEXUS_MANAGER_TOKEN). */
export const BOOTSTRAP = 'test-bootstrap-token-0123456789abcdef';

export async function tempWorkspace(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'nexus-manager-'));
}

const Ok = Type.Object({ ok: Type.Boolean() }, { additionalProperties: false });

/** A gate a test opens by hand: `entered` settles when the handler is waiting on it. */
export function gate(): { entered: Promise<void>; open: () => void; wait: () => Promise<void> } {
  let enter!: () => void;
  let release!: () => void;
  const entered = new Promise<void>((r) => (enter = r));
  const opened = new Promise<void>((r) => (release = r));
  return { entered, open: () => release(), wait: () => (enter(), opened) };
}

/**
 * Test-only routes under /api/v1/probe, one per route class: GET read (viewer), POST act
 * (operator), POST create (admin), GET none (declares no scope), GET leak (returns a field its
 * schema does not list), GET boom (throws a plain Error), GET unavailable (AppError 503), GET slow
 * (waits on `slow`, for graceful close).
 */
export function probeRoutes(slow?: { wait: () => Promise<void> }) {
  return async function probe(app: FastifyInstance): Promise<void> {
    const r = { response: withErrors({ 200: Ok }) };
    app.get('/probe/read', { config: { scope: 'viewer' }, schema: r }, async () => ({ ok: true }));
    app.post('/probe/act', { config: { scope: 'operator' }, schema: r }, async () => ({ ok: true }));
    app.post('/probe/create', { config: { scope: 'admin' }, schema: r }, async () => ({ ok: true }));
    app.get('/probe/none', { schema: r }, async () => ({ ok: true }));
    app.get('/probe/leak', { config: { scope: 'viewer' }, schema: r }, async () => ({ ok: true, secret: 'leaked-field-value' }));
    app.get('/probe/boom', { config: { scope: 'viewer' }, schema: r }, async () => {
      throw new Error('connect ECONNREFUSED db password=hunter2');
    });
    app.get('/probe/unavailable', { config: { scope: 'viewer' }, schema: { response: withErrors({ 200: Ok, 503: ErrorBody }) } }, async () => {
      throw new AppError('AGENT_UNAVAILABLE', 'no healthy replica of agent x', { retryAfterS: 5 });
    });
    app.get('/probe/slow', { config: { scope: 'viewer' }, schema: r }, async () => {
      await slow?.wait();
      return { ok: true };
    });
  };
}
