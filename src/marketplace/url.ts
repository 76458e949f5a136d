import { AppError } from '../errors.js';

/**
 * Check a marketplace base URL from a setting: an absolute http(s) URL with no `user:password@`
 * part. Credentials in the URL are refused rather than stripped: the marketplace authenticates
 * with the bearer token (MARKETPLACE_API_KEY), and axios would otherwise send the URL's
 * credentials as Basic auth in its place (and error messages would print the password).
 * The value itself is never put in the error: it may hold a secret.
 * @param raw the setting's value
 * @param setting the setting's name for the error, e.g. MARKETPLACE_URL or "nexus.yaml marketplace.url"
 * @returns raw, unchanged
 * @throws AppError CONFIG_INVALID naming the setting and the fix
 */
export function checkMarketplaceUrl(raw: string, setting: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new AppError('CONFIG_INVALID', `${setting} is not an absolute URL`, { hint: `set ${setting} to the marketplace's base URL, e.g. http://127.0.0.1:8200` });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new AppError('CONFIG_INVALID', `${setting} must be an http:// or https:// URL`, { hint: `set ${setting} to the marketplace's base URL, e.g. https://marketplace.example.com` });
  }
  if (url.username || url.password) {
    throw new AppError('CONFIG_INVALID', `${setting} must not carry credentials (a user:password@ part); the value is not shown`, {
      hint: `remove the user:password@ part from ${setting} and put the marketplace token in MARKETPLACE_API_KEY (sent as a bearer token)`,
    });
  }
  return raw;
}
