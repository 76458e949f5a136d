/**
 * The manager's public surface, for the CLI (`agent serve`, `agent token create|revoke|list`) and
 * the domain plugins (agents, gateway, tasks, streams, dashboard) that plug into buildServer.
 */
export { buildServer, type ManagerApp, type ManagerPlugin, type ServerDeps } from './app.js';
export { DEFAULT_LIMITS, type LimitClass, type RateLimits } from './auth.js';
export { ErrorBody, withErrors } from './schemas.js';
export { DEFAULT_MANAGER_PORT, isLoopbackHost, serveManager, type RunningManager, type ServeOptions } from './serve.js';
export {
  createToken,
  listTokens,
  parseTtl,
  revokeToken,
  SCOPES,
  type CreatedToken,
  type CreateTokenInput,
  type Principal,
  type RevokeTokenInput,
  type Scope,
  type TokenDeps,
  type TokenInfo,
} from './tokens.js';
