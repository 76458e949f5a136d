import { describe, expect, it } from 'vitest';
import { candidatePorts, choosePort, parsePortRange } from '../../src/ports/allocate.js';
import { hostPortProbe } from '../../src/ports/probe.js';
import { createServer } from 'node:net';

const range = { from: 8081, to: 8085 };
const allFree = async () => true;

describe('parsePortRange', () => {
  it('parses FROM-TO', () => expect(parsePortRange('8081-8180')).toEqual({ from: 8081, to: 8180 }));
  it.each(['8180-8081', '0-10', '1-70000', 'abc', '8081'])('rejects %j', (t) => expect(() => parsePortRange(t)).toThrow(/port range/));
});

describe('choosePort', () => {
  it('takes the lowest port not reserved and free on the host', async () => {
    const reserved = new Map([[8081, 'a']]);
    const busy = new Set([8082]);
    expect(await choosePort({ range, reserved, isHostPortFree: async (p) => !busy.has(p) })).toBe(8083);
  });

  it('honours a requested port in range', async () => {
    expect(await choosePort({ range, reserved: new Map(), requested: 8084, isHostPortFree: allFree })).toBe(8084);
  });

  it('rejects a requested port outside the range', async () => {
    await expect(choosePort({ range, reserved: new Map(), requested: 9000, isHostPortFree: allFree })).rejects.toMatchObject({
      code: 'PORT_OUT_OF_RANGE',
      message: expect.stringContaining('8081-8085'),
    });
  });

  it('rejects a requested port reserved by another agent, naming it', async () => {
    await expect(
      choosePort({ range, reserved: new Map([[8082, 'text-agent']]), requested: 8082, isHostPortFree: allFree }),
    ).rejects.toMatchObject({ code: 'PORT_IN_USE', message: expect.stringContaining('text-agent') });
  });

  it('rejects a requested port another process holds', async () => {
    await expect(choosePort({ range, reserved: new Map(), requested: 8083, isHostPortFree: async () => false })).rejects.toMatchObject({
      code: 'PORT_IN_USE',
      message: expect.stringContaining('in use on this host'),
    });
  });

  it('reports an exhausted range', async () => {
    const reserved = new Map(candidatePorts(range, new Set()).map((p) => [p, 'x'] as const));
    await expect(choosePort({ range, reserved, isHostPortFree: allFree })).rejects.toMatchObject({ code: 'PORT_RANGE_EXHAUSTED' });
  });
});

describe('hostPortProbe', () => {
  it('sees a listener on the port, and the port again once it closes (repeatably)', async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    const probe = hostPortProbe('127.0.0.1');
    expect(await probe(port)).toBe(false);
    await new Promise((r) => srv.close(r));
    expect(await probe(port)).toBe(true);
    expect(await probe(port)).toBe(true);
  });
});
