import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { createToken, revokeToken, TokenVerifier } from '../../src/server/tokens.js';
import { tempWorkspace as makeTemp } from '../helpers/manager.js';

const made: string[] = [];
const tempWorkspace = async () => {
  const dir = await makeTemp();
  made.push(dir);
  return dir;
};
afterEach(async () => {
  await Promise.all(made.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

// A token's signature is checked once and remembered (the gateway's hot path): a remembered token
// must still expire on time and stop working once revoked, also by another process's write.
describe('TokenVerifier remembers verified tokens without weakening the checks', () => {
  it('a token seen before still expires with the clock', async () => {
    const workspace = await tempWorkspace();
    const clock = new ManualClock(Date.now());
    const { token, jti } = await createToken({ scope: 'operator', ttl: '30m' }, { workspace, clock });
    const v = new TokenVerifier(workspace, { clock });
    await v.init();
    expect(await v.verify(token)).toMatchObject({ jti, scope: 'operator' });
    clock.advance(29 * 60_000);
    expect(await v.verify(token)).toMatchObject({ jti, scope: 'operator' });
    clock.advance(60_000);
    await expect(v.verify(token)).rejects.toMatchObject({ code: 'UNAUTHORIZED', message: 'the token has expired' });
    // and stays expired (not put back in the cache)
    await expect(v.verify(token)).rejects.toMatchObject({ code: 'UNAUTHORIZED', message: 'the token has expired' });
  });

  it('a token seen before stops working once revoked (the revoked list is re-read on change)', async () => {
    const workspace = await tempWorkspace();
    const { token, jti } = await createToken({ scope: 'admin', ttl: '1h' }, { workspace });
    const other = await createToken({ scope: 'viewer', ttl: '1h' }, { workspace });
    const v = new TokenVerifier(workspace);
    await v.init();
    expect((await v.verify(token)).jti).toBe(jti);
    expect((await v.verify(other.token)).jti).toBe(other.jti);
    await revokeToken({ jti }, { workspace });
    await expect(v.verify(token)).rejects.toMatchObject({ code: 'UNAUTHORIZED', message: 'the token has been revoked' });
    expect((await v.verify(other.token)).jti).toBe(other.jti);
  });

  it('a tampered copy of a remembered token is still refused', async () => {
    const workspace = await tempWorkspace();
    const { token } = await createToken({ scope: 'admin', ttl: '1h' }, { workspace });
    const v = new TokenVerifier(workspace);
    await v.init();
    await v.verify(token);
    const tampered = token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    await expect(v.verify(tampered)).rejects.toMatchObject({ code: 'UNAUTHORIZED', message: 'invalid token' });
  });
});
