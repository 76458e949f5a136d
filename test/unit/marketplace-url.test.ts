import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/config.js';
import { AppError } from '../../src/errors.js';
import { MarketplaceClient } from '../../src/marketplace/client.js';

const SECRET = 'hunter2-pw';
const caught = (fn: () => unknown): AppError => {
  try {
    fn();
  } catch (err) {
    return err as AppError;
  }
  throw new Error('expected a throw');
};

describe('marketplace URL with credentials (issue 14 §5)', () => {
  it('MARKETPLACE_URL with user:password@ is a config error that names the fix and never the value', () => {
    for (const url of [`http://alice:${SECRET}@127.0.0.1:8200`, `https://:${SECRET}@market.example.com/`, `http://${SECRET}@127.0.0.1:8200`]) {
      const err = caught(() => resolveConfig('/ws', {}, { MARKETPLACE_URL: url }));
      expect(err).toBeInstanceOf(AppError);
      expect(err).toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('MARKETPLACE_URL must not carry credentials'), hint: expect.stringContaining('MARKETPLACE_API_KEY') });
      expect(JSON.stringify(err.toJSON())).not.toContain(SECRET);
      expect(JSON.stringify(err.toJSON())).not.toContain('alice');
    }
  });

  it('the same in nexus.yaml, and only http(s) URLs are taken', () => {
    const err = caught(() => resolveConfig('/ws', { marketplace: { url: `http://bob:${SECRET}@127.0.0.1:8200` } }, {}));
    expect(err).toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('nexus.yaml marketplace.url must not carry credentials') });
    expect(JSON.stringify(err.toJSON())).not.toContain(SECRET);
    expect(caught(() => resolveConfig('/ws', {}, { MARKETPLACE_URL: 'javascript:alert(1)' }))).toMatchObject({ code: 'CONFIG_INVALID', message: 'MARKETPLACE_URL must be an http:// or https:// URL' });
    expect(caught(() => resolveConfig('/ws', {}, { MARKETPLACE_URL: 'not a url' }))).toMatchObject({ code: 'CONFIG_INVALID', message: 'MARKETPLACE_URL is not an absolute URL' });
    expect(resolveConfig('/ws', {}, { MARKETPLACE_URL: 'http://127.0.0.1:8200' }).marketplace.url).toBe('http://127.0.0.1:8200');
    expect(resolveConfig('/ws', {}, {}).marketplace.url).toBeUndefined();
  });

  it('the client refuses such a URL too, so axios can never swap the bearer token for Basic auth', () => {
    const err = caught(() => new MarketplaceClient({ baseUrl: `http://alice:${SECRET}@127.0.0.1:9`, apiKey: 'k' }));
    expect(err).toMatchObject({ code: 'CONFIG_INVALID' });
    expect(`${err.message} ${err.hint}`).not.toContain(SECRET);
  });
});
