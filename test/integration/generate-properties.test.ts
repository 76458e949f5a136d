import { isIPv4 } from 'node:net';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { terminalSafe } from '../../src/cli/render.js';
import { resolveConfig } from '../../src/config/config.js';
import { isAppError } from '../../src/errors.js';
import { composeDocument } from '../../src/generate/compose.js';
import { DEFAULT_PRODUCTION, agentTargets, type AgentTarget } from '../../src/generate/model.js';
import { ROUTER_RELOAD_MARKER, agentIndex, nginxConfig } from '../../src/generate/nginx.js';
import { stackDocument } from '../../src/generate/stack.js';
import { traefikDynamicConfig } from '../../src/generate/traefik.js';
import { isSlug } from '../../src/names.js';
import type { AgentRecord } from '../../src/registry/registry.js';
import { renderAgentFiles } from '../../src/scaffold/render.js';
import { validateCompose, validateTraefik } from '../helpers/schemas.js';

/**
 * Property tests: arbitrary names, descriptions, versions and slugs through every generator.
 * Each generator either refuses with a clear AppError USAGE (only ever for a slug that is not a
 * slug: valid slugs are never refused, whatever the other fields hold) or writes a file that
 * passes its checker (nginx -t, the Compose and Traefik schemas) and holds exactly the blocks,
 * services and rules that were generated. Bounded runs keep the suite fast.
 */
const RUNS = 60;
const run = promisify(execFile);
const config = resolveConfig('/ws', {}, {});

const HOSTILE = [
  'A\n} location / { proxy_pass http://attacker.example; }',
  'x`) || PathPrefix(`/',
  '"; include /etc/passwd; #',
  '$host',
  '\u001b[2J\u001b]0;owned\u0007',
  '../../victim',
  'a\r\nb',
  '\u2028',
  '{{name}}',
  '<script>alert(1)</script>',
  '# heading',
  '```',
  'key: value\n- item',
  '\\',
  'router',
  'constructor',
  '__proto__',
];
const validSlug = fc.stringMatching(/^[a-z][a-z0-9]{0,8}(?:-[a-z0-9]{1,6}){0,3}$/).filter(isSlug);
const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }), fc.constantFrom(...HOSTILE));
const slug = fc.oneof({ weight: 3, arbitrary: validSlug }, { weight: 1, arbitrary: text });
const recordArb = fc.record({ name: text, slug, description: text, version: text, model: text });
const recordsArb = fc.uniqueArray(recordArb, { minLength: 1, maxLength: 4, selector: (r) => r.slug });
/** Valid slugs, anything else arbitrary: what a checked record may hold; never refused. */
const routableArb = fc.uniqueArray(fc.record({ name: text, slug: validSlug.filter((s) => s !== 'router'), description: text, version: text, model: text }), { minLength: 1, maxLength: 4, selector: (r) => r.slug });

function toRecords(rs: { name: string; slug: string; description: string; version: string; model: string }[]): AgentRecord[] {
  return rs.map((r, i) => ({
    ...r, capabilities: ['data'], category: 'data', port: 8081 + i, desired: 'running', status: 'running', createdAt: '', updatedAt: '',
    tools: [{ name: 'process_data', description: r.description, parameters: { type: 'object' } }],
  }));
}

/** Whether every slug is one the generators must accept (then a refusal is a failure). */
const allRoutable = (targets: AgentTarget[], withRouter: boolean) => targets.every((t) => isSlug(t.slug) && !(withRouter && t.slug === 'router'));

/** Run `generate`; a refusal must be an AppError USAGE and only for a slug the file cannot hold. */
function generateOrRefuse<T>(targets: AgentTarget[], withRouter: boolean, generate: () => T): T | undefined {
  try {
    return generate();
  } catch (err) {
    expect(isAppError(err) && err.code === 'USAGE', `unexpected ${String(err)}`).toBe(true);
    expect(allRoutable(targets, withRouter), `refused routable agents: ${(err as Error).message}`).toBe(false);
    return undefined;
  }
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nexus-props-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function nginxTest(conf: string): Promise<string> {
  await writeFile(join(dir, 'nexus-agents.conf'), conf);
  await writeFile(join(dir, 'nginx.conf'), `pid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nhttp {\n  access_log off;\n  include ${dir}/nexus-agents.conf;\n}\n`);
  const r = await run('nginx', ['-t', '-p', dir, '-c', join(dir, 'nginx.conf')]).catch((e: { stderr: string }) => e);
  return r.stderr;
}

/** A rule with exactly one matcher, on one agent's path: anything else is a rule that was not generated. */
const ONE_PATH_RULE = /^PathPrefix\(`\/agents\/[a-z][a-z0-9-]*\/`\)$/;

/** Directive lines of an nginx file (comments and blank lines dropped), trimmed. */
const directives = (conf: string) => conf.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

/**
 * Every location that proxies sets the full header set itself (nginx inherits proxy_set_header only
 * into a location that sets none): keep-alive to the agents (`Connection ""`) and the forwarding
 * headers hold in each one.
 */
function expectProxyHeadersInEveryProxiedLocation(conf: string): void {
  const blocks = conf.split(/\n {4}location /).slice(1).map((b) => b.slice(0, b.indexOf('\n    }')));
  const proxied = blocks.filter((b) => b.includes('proxy_pass '));
  for (const b of proxied) {
    const lines = directives(b);
    for (const h of ['Host $host;', 'X-Real-IP $remote_addr;', 'X-Forwarded-For $proxy_add_x_forwarded_for;', 'X-Forwarded-Proto $scheme;', 'Connection "";']) {
      expect(lines, b).toContain(`proxy_set_header ${h}`);
    }
    expect(lines.filter((l) => l.startsWith('proxy_set_header X-Forwarded-Prefix '))).toHaveLength(1);
  }
  // none at the server level, where the locations could not inherit them anyway
  expect(conf.split('\n').filter((l) => /^ {4}proxy_set_header /.test(l))).toEqual([]);
  expect(conf).toMatch(/^ {4}proxy_http_version 1\.1;$/m);
}

describe('generators under arbitrary records (fast-check)', () => {
  it('nginx: passes nginx -t and holds exactly one location and one proxy_pass per agent', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(routableArb, recordsArb), async (rs) => {
        const targets = agentTargets(config, toRecords(rs), DEFAULT_PRODUCTION);
        const conf = generateOrRefuse(targets, false, () => nginxConfig(targets, DEFAULT_PRODUCTION));
        if (conf === undefined) return;
        expect(await nginxTest(conf)).toMatch(/syntax is ok[\s\S]*test is successful/);
        const lines = directives(conf);
        expect(lines.filter((l) => l.startsWith('location '))).toEqual([
          'location = /.well-known/agents.json {',
          ...targets.map((t) => `location ${t.path}/ {`),
          'location @unavailable {',
          'location / {',
        ]);
        expect(lines.filter((l) => l.startsWith('proxy_pass '))).toHaveLength(targets.length);
        expect(lines.filter((l) => l.startsWith('server '))).toHaveLength(1);
        expectProxyHeadersInEveryProxiedLocation(conf);
        // names and descriptions only ever reach comments: the directives equal those of plain names
        const plain = agentTargets(config, toRecords(rs.map((r) => ({ ...r, name: 'N', description: 'd', version: '1', model: 'm' }))), DEFAULT_PRODUCTION);
        expect(lines).toEqual(directives(nginxConfig(plain, DEFAULT_PRODUCTION)));
        // the agents index is JSON and reads back as generated
        const index = agentIndex(targets, DEFAULT_PRODUCTION);
        expect(JSON.parse(JSON.stringify(index))).toEqual(index);
      }),
      { numRuns: RUNS },
    );
  });

  it('nginx with upstream blocks (local router): passes nginx -t, one keep-alive upstream per agent with replicas, 503 for the others', async () => {
    const octet = fc.integer({ min: 0, max: 255 });
    const ip = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));
    const host = fc.oneof({ weight: 4, arbitrary: ip }, { weight: 1, arbitrary: text });
    const servers = fc.array(fc.record({ host, port: fc.oneof(fc.constant(8080), fc.integer({ min: -1, max: 70000 })) }), { maxLength: 3 });
    await fc.assert(
      fc.asyncProperty(fc.oneof(routableArb, recordsArb), fc.array(servers, { minLength: 4, maxLength: 4 }), async (rs, perAgent) => {
        const targets = agentTargets(config, toRecords(rs), DEFAULT_PRODUCTION);
        const routing = { kind: 'upstreams' as const, servers: Object.fromEntries(targets.map((t, i) => [t.slug, perAgent[i]!])) };
        const valid = (s: { host: string; port: number }) => isIPv4(s.host) && s.port >= 1 && s.port <= 65535;
        let conf: string;
        try {
          conf = nginxConfig(targets, DEFAULT_PRODUCTION, routing);
        } catch (err) {
          // refused only for an unroutable slug or a replica address that is not host:port
          expect(isAppError(err) && err.code === 'USAGE', `unexpected ${String(err)}`).toBe(true);
          expect(allRoutable(targets, false) && Object.values(routing.servers).flat().every(valid), `refused valid input: ${(err as Error).message}`).toBe(false);
          return;
        }
        expect(await nginxTest(conf)).toMatch(/syntax is ok[\s\S]*test is successful/);
        const lines = directives(conf);
        const withServers = targets.filter((t) => (routing.servers[t.slug] ?? []).length > 0);
        expect(lines.filter((l) => l.startsWith('upstream '))).toEqual(withServers.map((t) => `upstream agent_${t.slug} {`));
        expect(lines.filter((l) => l.startsWith('keepalive '))).toHaveLength(withServers.length);
        // each agent with replicas: its location and, while the router reloads, its Connection: close twin
        expect(lines.filter((l) => l.startsWith('proxy_pass '))).toEqual(withServers.flatMap((t) => [`proxy_pass http://agent_${t.slug};`, `proxy_pass http://agent_${t.slug};`]));
        expect(lines.filter((l) => l.startsWith('location @agent_'))).toEqual(withServers.map((t) => `location @agent_${t.slug}_closing {`));
        expect(lines.filter((l) => l === `if (-f ${ROUTER_RELOAD_MARKER}) {`)).toHaveLength(withServers.length);
        expect(lines.filter((l) => l === 'keepalive_timeout 0;')).toHaveLength(withServers.length);
        expect(lines.filter((l) => l.startsWith('server ') && l.includes(':'))).toEqual(withServers.flatMap((t) => routing.servers[t.slug]!.map((s) => `server ${s.host}:${s.port} max_fails=1 fail_timeout=2s;`)));
        // agents without a live replica, plus @unavailable, answer 503
        expect(lines.filter((l) => l.startsWith('return 503 '))).toHaveLength(targets.length - withServers.length + 1);
        expect(lines.filter((l) => l.startsWith('resolver '))).toEqual([]);
        expectProxyHeadersInEveryProxiedLocation(conf);
      }),
      { numRuns: RUNS },
    );
  });

  it('Traefik file provider: valid schema, one router per agent with a PathPrefix on its own path', () => {
    fc.assert(
      fc.property(recordsArb, (rs) => {
        const targets = agentTargets(config, toRecords(rs), DEFAULT_PRODUCTION);
        const doc = generateOrRefuse(targets, false, () => traefikDynamicConfig(targets, DEFAULT_PRODUCTION));
        if (doc === undefined) return;
        expect(validateTraefik(doc)).toEqual([]);
        const reread = yaml.load(yaml.dump(doc, { lineWidth: 200 })) as { http: { routers: Record<string, { rule: string }> } };
        expect(reread).toEqual(doc);
        expect(Object.keys(reread.http.routers).sort()).toEqual(targets.map((t) => `nexus-${t.slug}`).sort());
        for (const t of targets) {
          expect(reread.http.routers[`nexus-${t.slug}`]!.rule).toMatch(ONE_PATH_RULE);
          expect(reread.http.routers[`nexus-${t.slug}`]!.rule).toBe(`PathPrefix(\`/agents/${t.slug}/\`)`);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('Compose (nginx and traefik routers): valid schema, reads back as generated, one service per agent, rules only for agents', () => {
    fc.assert(
      fc.property(recordsArb, fc.constantFrom('nginx' as const, 'traefik' as const, 'none' as const), (rs, router) => {
        const targets = agentTargets(config, toRecords(rs), DEFAULT_PRODUCTION);
        const doc = generateOrRefuse(targets, router !== 'none', () => composeDocument(config, targets, { ...DEFAULT_PRODUCTION, router, routerImage: router === 'traefik' ? 'traefik:v3.1' : 'nginx:1.27-alpine' }));
        if (doc === undefined) return;
        expect(validateCompose(doc)).toEqual([]);
        const reread = yaml.load(yaml.dump(doc, { lineWidth: 200, noRefs: true })) as { services: Record<string, { labels: Record<string, string> }> };
        expect(reread).toEqual(doc);
        expect(Object.keys(reread.services).sort()).toEqual([...targets.map((t) => t.slug), ...(router === 'none' ? [] : ['router'])].sort());
        const rules = Object.values(reread.services).flatMap((s) => Object.entries(s.labels ?? {}).filter(([k]) => k.endsWith('.rule')));
        expect(rules.sort()).toEqual(router === 'traefik' ? targets.map((t) => [`traefik.http.routers.nexus-${t.slug}.rule`, `PathPrefix(\`/agents/${t.slug}/\`)`]).sort() : []);
        for (const [, rule] of rules) expect(rule).toMatch(ONE_PATH_RULE);
      }),
      { numRuns: RUNS },
    );
  });

  it('Swarm stack: valid schema, reads back as generated, one service per agent plus the router', () => {
    fc.assert(
      fc.property(recordsArb, (rs) => {
        const targets = agentTargets(config, toRecords(rs), DEFAULT_PRODUCTION);
        const doc = generateOrRefuse(targets, true, () =>
          stackDocument(config, targets, { ...DEFAULT_PRODUCTION, replicas: 2, routerImage: 'nginx:1.27-alpine', nginxConfFile: './a.conf', agentsIndexFile: './a.json', configNames: { nginx: 'n_1', index: 'i_1' } }),
        );
        if (doc === undefined) return;
        expect(validateCompose(doc)).toEqual([]);
        const reread = yaml.load(yaml.dump(doc, { lineWidth: 200, noRefs: true })) as { services: object };
        expect(reread).toEqual(doc);
        expect(Object.keys(reread.services).sort()).toEqual([...targets.map((t) => t.slug), 'router'].sort());
      }),
      { numRuns: RUNS },
    );
  });

  it('README and entry point: the template lines stay as they are, whatever the description holds', async () => {
    const base = { name: 'DataAgent', slug: 'data-agent', version: '0.1.0', capabilities: ['data'], category: 'data', model: 'none', port: 8081, tools: ['process_data' as const] };
    const reference = await renderAgentFiles({ ...base, description: 'plain' });
    const shape = (md: string) => md.split('\n').map((l) => (l.startsWith('#') ? '#' : l.startsWith('```') ? 'fence' : l.startsWith('- ') ? 'item' : l === '' ? '' : 'text'));
    await fc.assert(
      fc.asyncProperty(text, async (description) => {
        const files = await renderAgentFiles({ ...base, description });
        const readme = files.get('README.md')!;
        // the description's own line (index 2) may be blank; every other line keeps its kind
        const lines = readme.split('\n');
        expect(lines).toHaveLength(reference.get('README.md')!.split('\n').length);
        expect(shape(lines.toSpliced(2, 1).join('\n'))).toEqual(shape(reference.get('README.md')!.split('\n').toSpliced(2, 1).join('\n')));
        expect(lines[2]).not.toMatch(/^(\s|#|```|[-+*>=]|\d+[.)])/);
        expect(readme).not.toMatch(/<[a-z/!?]/i);
        expect(JSON.parse(files.get('agent.json')!).description).toBe(description);
      }),
      { numRuns: RUNS },
    );
  });

  it('terminal output: no escape sequence or control character survives', () => {
    fc.assert(
      fc.property(fc.oneof(text, fc.string({ unit: 'binary' })), (s) => {
        expect(terminalSafe(s)).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
        expect(terminalSafe(s, true)).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
      }),
      { numRuns: 200 },
    );
  });
});
