import { describe, expect, it } from 'vitest';
import type { HostPortProbe } from '../../src/ports/allocate.js';
import type { NewAgent, Registry } from '../../src/registry/registry.js';

const agent = (name: string): NewAgent => ({
  name, slug: name.toLowerCase(), description: `${name} agent`, capabilities: ['data'], category: 'data', model: 'none', version: '0.1.0',
});
const range = { from: 9500, to: 9509 };
const free: HostPortProbe = async () => true;

/**
 * The Registry contract, run against every implementation. `open` returns a fresh, empty
 * registry; `openAnother` a second client on the same store (another process or machine).
 */
export function registryContract(kind: string, open: () => Promise<Registry>, openAnother: (first: Registry) => Promise<Registry>): void {
  describe(`Registry contract: ${kind}`, () => {
    it('creates, gets, lists (by port), updates and removes', async () => {
      const r = await open();
      const a = await r.create(agent('Alpha'), { range, isHostPortFree: free });
      const b = await r.create(agent('Beta'), { range, requested: 9505, isHostPortFree: free });
      expect(a).toMatchObject({ name: 'Alpha', slug: 'alpha', port: 9500, status: 'created', desired: 'stopped' });
      expect(b.port).toBe(9505);
      expect(await r.get('alpha')).toEqual(a);
      expect((await r.list()).map((x) => x.slug)).toEqual(['alpha', 'beta']);
      const u = await r.update('alpha', { status: 'running', desired: 'running', tools: [{ name: 't', description: 'd', parameters: { type: 'object' } }] });
      expect(u).toMatchObject({ status: 'running', port: 9500, createdAt: a.createdAt });
      expect(Date.parse(u.updatedAt)).toBeGreaterThanOrEqual(Date.parse(a.updatedAt));
      expect(await r.remove('alpha')).toBe(true);
      expect(await r.remove('alpha')).toBe(false);
      expect(await r.get('alpha')).toBeUndefined();
      await r.close();
    });

    it('rejects a duplicate name and leaves the first record intact', async () => {
      const r = await open();
      const first = await r.create(agent('Alpha'), { range, isHostPortFree: free });
      await expect(r.create(agent('Alpha'), { range, isHostPortFree: free })).rejects.toMatchObject({ code: 'NAME_TAKEN' });
      expect(await r.list()).toEqual([first]);
      await r.close();
    });

    it('rejects a taken or out-of-range port without writing anything', async () => {
      const r = await open();
      await r.create(agent('Alpha'), { range, requested: 9501, isHostPortFree: free });
      await expect(r.create(agent('Beta'), { range, requested: 9501, isHostPortFree: free })).rejects.toMatchObject({ code: 'PORT_IN_USE' });
      await expect(r.create(agent('Beta'), { range, requested: 80, isHostPortFree: free })).rejects.toMatchObject({ code: 'PORT_OUT_OF_RANGE' });
      await expect(r.create(agent('Beta'), { range, requested: 9502, isHostPortFree: async () => false })).rejects.toMatchObject({ code: 'PORT_IN_USE' });
      expect((await r.list()).map((x) => x.slug)).toEqual(['alpha']);
      await r.close();
    });

    it('skips host ports in use and reports an exhausted range', async () => {
      const r = await open();
      const busy = new Set([9500, 9501]);
      expect((await r.create(agent('Alpha'), { range, isHostPortFree: async (p) => !busy.has(p) })).port).toBe(9502);
      const tiny = { from: 9502, to: 9502 };
      await expect(r.create(agent('Beta'), { range: tiny, isHostPortFree: free })).rejects.toMatchObject({ code: 'PORT_RANGE_EXHAUSTED' });
      await r.close();
    });

    it('releases the port on removal', async () => {
      const r = await open();
      await r.create(agent('Alpha'), { range, requested: 9503, isHostPortFree: free });
      await r.remove('alpha');
      expect((await r.create(agent('Beta'), { range, requested: 9503, isHostPortFree: free })).port).toBe(9503);
      await r.close();
    });

    it('appends lifecycle events to an agent\'s history, oldest first, one line each; refuses unknown events', async () => {
      const r = await open();
      await r.create(agent('Alpha'), { range, isHostPortFree: free });
      await r.appendHistory('alpha', { event: 'restarted', reason: '3 failing checks in a row\nrestart 1/2' });
      await r.appendHistory('alpha', { event: 'recovered' });
      await expect(r.appendHistory('alpha', { event: 'exploded' as never })).rejects.toMatchObject({ code: 'USAGE' });
      await expect(r.appendHistory('../x', { event: 'restarted' })).rejects.toMatchObject({ code: 'USAGE' });
      // the registry's own events (Firestore records created/started...) may be there too
      const mine = (await r.history('alpha')).filter((h) => h.event === 'restarted' || h.event === 'recovered');
      expect(mine).toEqual([
        expect.objectContaining({ event: 'restarted', reason: '3 failing checks in a row restart 1/2', at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) }),
        expect.objectContaining({ event: 'recovered' }),
      ]);
      expect(await r.history('ghost')).toEqual([]);
      await r.close();
    });

    it('update of a missing agent is AGENT_NOT_FOUND', async () => {
      const r = await open();
      await expect(r.update('ghost', { status: 'running' })).rejects.toMatchObject({ code: 'AGENT_NOT_FOUND' });
      await r.close();
    });

    it('gives concurrent creates from two clients distinct ports and loses none', async () => {
      const r1 = await open();
      const r2 = await openAnother(r1);
      const names = ['A1', 'A2', 'A3', 'A4', 'B1', 'B2', 'B3', 'B4'];
      const made = await Promise.all(names.map((n, i) => (i < 4 ? r1 : r2).create(agent(n), { range, isHostPortFree: free })));
      expect(new Set(made.map((a) => a.port)).size).toBe(8);
      expect((await r1.list()).length).toBe(8);
      expect((await r2.list()).map((a) => a.port).sort()).toEqual(made.map((a) => a.port).sort());
      await r1.close();
      await r2.close();
    });
  });
}
