import { isIPv4 } from 'node:net';
import { createHash } from 'node:crypto';
import { ROUTER_CONTAINER_PORT } from '../conventions.js';
import { AppError } from '../errors.js';
import { checkTarget, commentText, nginxToken, regexLiteral } from './escape.js';
import { AGENT_PORT, type AgentTarget, type ProductionOptions } from './model.js';

/** One live replica an upstream block lists: its address on the router's network and port. */
export interface UpstreamServer {
  /** IPv4 address the router reaches the replica at (its address on the router's network). */
  host: string;
  port: number;
}

/**
 * How the generated router finds an agent's replicas:
 * - `dns` (production: `routes --nginx`, Compose, Swarm): replicas are not known when the file is
 *   written, so names resolve at request time through Docker's DNS (127.0.0.11, 5 s TTL) via a
 *   variable `proxy_pass`: every replica of a scaled service is used and new ones are picked up
 *   without a reload. The price: no upstream keep-alive (a variable proxy_pass has no upstream
 *   block), so every request opens a connection. nginx >= 1.27.3 could keep both with
 *   `server <name> resolve` in an upstream; the routers we run (Debian's 1.22, nginx:1.27-alpine)
 *   predate it.
 * - `upstreams` (the local `scale`/`rollout` router): the live replicas by agent slug, as
 *   nginx-proxy/docker-gen write them (nginx.tmpl: one `server <container ip>:<port>` per
 *   container, `keepalive`), so connections to the agents are reused. The caller regenerates and
 *   reloads whenever replicas change; while it reloads, calls are answered with `Connection: close`
 *   (ROUTER_RELOAD_MARKER), so keep-alive clients lose no request to the reload. An agent with no
 *   live replica answers 503 directly (an
 *   upstream without servers is invalid nginx). The file then also serves its own generation at
 *   `GET /.well-known/nexus-router` (`{"generation": "<hash of the file>"}`), so a caller can tell
 *   when a reload has taken effect.
 */
export type Routing = { kind: 'dns' } | { kind: 'upstreams'; servers: Readonly<Record<string, readonly UpstreamServer[]>> };

/** Idle keep-alive connections each nginx worker keeps per agent (nginx `keepalive`). */
export const UPSTREAM_KEEPALIVE = 32;
/**
 * The file whose presence makes a router with upstream blocks answer every agent call with
 * `Connection: close` (in its mounted folder, src/fleet/router-sync.ts writes it around a reload).
 * Why: a reload (SIGHUP) makes nginx's old workers close their idle client keep-alive connections
 * at once (nginx 1.22 has no setting against it; later releases add keepalive_min_timeout), and a client that sends its next request
 * on one at that instant gets a reset or "other side closed" for a request that never reached an
 * agent (measured: 43 failed of 32,000 keep-alive calls over 20 reloads). While the marker exists,
 * each connection ends with its next answer, announced, so no client holds an idle keep-alive
 * connection when the reload comes. Checked per request (`if (-f ...)`, one stat).
 */
export const ROUTER_RELOAD_MARKER = '/etc/nginx/nexus/reloading';
/** Path where a router with upstream blocks serves its generation. */
export const ROUTER_GENERATION_PATH = '/.well-known/nexus-router';

/**
 * Upstream servers are IPv4 literals only: nginx resolves a name in an upstream `server` once, when
 * it loads the file, and a name that does not resolve then fails the whole reload (`host not found
 * in upstream`), which would leave every agent on the old routes. The local router's replicas are
 * listed by their container address (src/fleet/router-sync.ts), as nginx-proxy does.
 */
function upstreamServer(s: UpstreamServer, slug: string): string {
  if (!isIPv4(s.host) || !Number.isInteger(s.port) || s.port < 1 || s.port > 65535) {
    throw new AppError('USAGE', `cannot write the nginx configuration: replica address ${JSON.stringify(`${s.host}:${s.port}`.slice(0, 80))} of agent '${slug}' is not host:port`, {
      hint: 'a replica is reached at an IPv4 address and a TCP port 1-65535',
    });
  }
  return nginxToken(`${s.host}:${s.port}`, `agent '${slug}' replica`);
}

/**
 * The request headers of a proxied location, written in every location that proxies (not once in
 * the server block): nginx inherits `proxy_set_header` from the enclosing level only when the
 * location defines none (nginx docs, ngx_http_proxy_module, proxy_set_header), and each agent's
 * location sets its own X-Forwarded-Prefix. Inherited, the server-level `Connection ""` was lost:
 * nginx then sent its default `Connection: close` to the agents, every request opened a new
 * connection and upstream `keepalive` never kept one (0.37-0.49x the requests/s of a direct call).
 */
function proxyHeaders(prefix: string): string[] {
  return [
    '        proxy_set_header Host $host;',
    '        proxy_set_header X-Real-IP $remote_addr;',
    '        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '        proxy_set_header X-Forwarded-Proto $scheme;',
    `        proxy_set_header X-Forwarded-Prefix ${prefix};`,
    // HTTP/1.1 without "Connection: close": the upstream connection is kept (nginx upstream keepalive docs)
    '        proxy_set_header Connection "";',
  ];
}

const UNAVAILABLE_JSON = `'{"error":{"code":"AGENT_UNAVAILABLE","message":"no live replica of this agent"}}'`;

/**
 * nginx configuration (a conf.d server block) routing /agents/<slug>/... to the agent's
 * replicas. Pure. `routing` (default dns) says how replicas are found (see Routing).
 * - A dead replica is skipped: errors, timeouts and 502/503/504 go to the next address
 *   (a closing agent answers 503).
 * - An agent with no live replica answers 503 (not 404) in the agents' error shape.
 * - Timeouts: connect 2 s, read/send 35 s (the agents' 30 s tool budget plus margin); body limit
 *   as the agents'. HTTP/1.1 with an empty Connection header to the agents (keep-alive), set in
 *   every proxied location (see proxyHeaders).
 * - GET /.well-known/agents.json: the index of all agents (see agentIndex).
 * Every value from a record is an nginx token quoted by nginx's grammar (escape.ts); names appear
 * only in one-line comments.
 * @throws AppError USAGE for a target whose slug/path cannot be routed (checkTarget), a replica
 *   address that is not host:port, or a body limit that is not a positive number of bytes.
 */
export function nginxConfig(agents: readonly AgentTarget[], o: ProductionOptions, routing: Routing = { kind: 'dns' }): string {
  if (!Number.isSafeInteger(o.bodyLimitBytes) || o.bodyLimitBytes <= 0) {
    throw new AppError('USAGE', `cannot write the nginx configuration: body limit ${o.bodyLimitBytes} is not a positive number of bytes`, { hint: 'pass a whole number of bytes' });
  }
  const kib = Math.ceil(o.bodyLimitBytes / 1024);
  const upstreams: string[] = [];
  const lines = [
    'server {',
    `    listen ${ROUTER_CONTAINER_PORT};`,
    '    server_tokens off;',
    ...(routing.kind === 'dns' ? ['    resolver 127.0.0.11 valid=5s ipv6=off;', '    resolver_timeout 2s;'] : []),
    `    client_max_body_size ${kib}k;`,
    '    proxy_http_version 1.1;',
    '    proxy_connect_timeout 2s;',
    '    proxy_send_timeout 35s;',
    '    proxy_read_timeout 35s;',
    '    proxy_next_upstream error timeout http_502 http_503 http_504;',
    '    proxy_next_upstream_tries 3;',
    '    proxy_intercept_errors on;',
    '    error_page 502 503 504 = @unavailable;',
    '',
    '    location = /.well-known/agents.json {',
    '        default_type application/json;',
    '        alias /etc/nginx/nexus/agents.json;',
    '    }',
  ];
  for (const a of agents) {
    checkTarget('the nginx configuration', a);
    const what = `agent '${a.slug}' path`;
    const rewrite = `        rewrite ${nginxToken(`^${regexLiteral(a.path)}/(.*)$`, what, { variables: true })} /$1 break;`;
    const headers = proxyHeaders(nginxToken(a.path, what));
    lines.push('', `    # ${commentText(a.name)}`, `    location ${nginxToken(`${a.path}/`, what)} {`);
    if (routing.kind === 'dns') {
      lines.push(`        set $agent_upstream ${nginxToken(`${a.slug}:${AGENT_PORT}`, `agent '${a.slug}' host`)};`, rewrite, '        proxy_pass http://$agent_upstream;', ...headers);
    } else {
      const servers = routing.servers[a.slug] ?? [];
      if (servers.length === 0) {
        lines.push('        default_type application/json;', `        return 503 ${UNAVAILABLE_JSON};`);
      } else {
        const name = nginxToken(`agent_${a.slug}`, `agent '${a.slug}' upstream`);
        upstreams.push(
          `# ${commentText(a.name)}`,
          `upstream ${name} {`,
          ...servers.map((s) => `    server ${upstreamServer(s, a.slug)} max_fails=1 fail_timeout=2s;`),
          `    keepalive ${UPSTREAM_KEEPALIVE};`,
          // below the agents' idle timeout (fastify: 72 s), so nginx never reuses a connection the agent is closing
          '    keepalive_timeout 60s;',
          '}',
          '',
        );
        const closing = nginxToken(`@agent_${a.slug}_closing`, `agent '${a.slug}' location`);
        lines.push(
          `        if (-f ${ROUTER_RELOAD_MARKER}) {`,
          '            return 418;',
          '        }',
          `        error_page 418 = ${closing};`,
          // error_page here replaces the server's (nginx inherits error_page only into a level that sets none)
          '        error_page 502 503 504 = @unavailable;',
          rewrite,
          `        proxy_pass http://${name};`,
          ...headers,
          '    }',
          '',
          `    location ${closing} {`,
          '        keepalive_timeout 0;',
          '        recursive_error_pages on;',
          rewrite,
          `        proxy_pass http://${name};`,
          ...headers,
        );
      }
    }
    lines.push('    }');
  }
  lines.push(
    '',
    '    location @unavailable {',
    '        default_type application/json;',
    `        return 503 ${UNAVAILABLE_JSON};`,
    '    }',
    '',
    '    location / {',
    '        default_type application/json;',
    `        return 404 '{"error":{"code":"NOT_FOUND","message":"no such agent; see /.well-known/agents.json"}}';`,
    '    }',
  );
  const body = [...upstreams, ...lines].join('\n');
  const tail: string[] = [];
  if (routing.kind === 'upstreams') {
    tail.push(
      '',
      `    location = ${ROUTER_GENERATION_PATH} {`,
      '        default_type application/json;',
      `        return 200 '{"generation":"${routerGeneration(body)}"}';`,
      '    }',
    );
  }
  return ['# Generated by `agent routes --nginx` (Nexus Delta agents). Do not edit: regenerate.', body + (tail.length ? `\n${tail.join('\n')}` : ''), '}', ''].join('\n');
}

/** The generation of a router file: sha256 (16 hex) of its routing part. Pure. */
export function routerGeneration(body: string): string {
  return createHash('sha256').update(body).digest('hex').slice(0, 16);
}

/** The generation a config written by nginxConfig with upstreams serves, or undefined. Pure. */
export function generationOf(conf: string): string | undefined {
  return /"generation":"([0-9a-f]{16})"/.exec(conf)?.[1];
}

/** The index of all agents served at /.well-known/agents.json: where each one and its card are. Pure. */
export function agentIndex(agents: readonly AgentTarget[], o: ProductionOptions): Record<string, unknown> {
  return {
    agents: agents.map((a) => ({
      name: a.name,
      slug: a.slug,
      description: a.description,
      version: a.version,
      capabilities: a.capabilities,
      tools: a.tools.map((t) => t.name),
      api_endpoint: `${o.publicUrl}${a.path}`,
      agent_card_url: `${o.publicUrl}${a.path}/.well-known/agent-card.json`,
    })),
  };
}
