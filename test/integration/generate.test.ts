import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/config.js';
import { composeDocument } from '../../src/generate/compose.js';
import { DEFAULT_PRODUCTION, agentTargets } from '../../src/generate/model.js';
import { agentIndex, nginxConfig } from '../../src/generate/nginx.js';
import { traefikDynamicConfig } from '../../src/generate/traefik.js';
import { stackDocument } from '../../src/generate/stack.js';
import type { AgentRecord } from '../../src/registry/registry.js';
import { validateCompose, validateTraefik } from '../helpers/schemas.js';

const run = promisify(execFile);
const config = resolveConfig('/ws', {}, {});
const rec = (name: string, slug: string, port: number, tool: string): AgentRecord => ({
  name, slug, description: `${name} agent`, capabilities: ['data'], category: 'data', model: 'none', version: '0.1.0', port,
  desired: 'running', status: 'running', createdAt: '', updatedAt: '', tools: [{ name: tool, description: tool, parameters: { type: 'object' } }],
});
const records = [rec('DataAgent', 'data-agent', 8081, 'process_data'), rec('MathAgent', 'math-agent', 8085, 'evaluate_expression')];
const SECRET = 'sk-live-do-not-inline-me';

describe('docker-compose-agents.yml', () => {
  const targets = agentTargets(config, records, DEFAULT_PRODUCTION, (slug) => slug === 'math-agent');
  const doc = composeDocument(config, targets, { ...DEFAULT_PRODUCTION, router: 'nginx', routerImage: 'nginx:1.27-alpine' });

  it('validates against the Compose Specification schema', () => {
    expect(validateCompose(doc)).toEqual([]);
  });

  it('is accepted by docker-compose config, with secrets referenced from env_file only', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nexus-gen-'));
    await mkdir(join(dir, 'agents/math-agent'), { recursive: true });
    await writeFile(join(dir, 'agents/math-agent/.env'), `API_KEY=${SECRET}\n`);
    const text = yaml.dump(doc);
    expect(text).not.toContain(SECRET);
    await writeFile(join(dir, 'docker-compose-agents.yml'), text);
    const { stdout } = await run('docker-compose', ['-f', join(dir, 'docker-compose-agents.yml'), 'config', '--services']);
    expect(stdout.trim().split('\n').sort()).toEqual(['data-agent', 'math-agent', 'router']);
    // the file only references the secret; Compose reads it from agents/<slug>/.env at deploy time
    const resolved = yaml.load((await run('docker-compose', ['-f', join(dir, 'docker-compose-agents.yml'), 'config'])).stdout) as { services: Record<string, { environment?: Record<string, string> }> };
    expect(resolved.services['math-agent']!.environment).toMatchObject({ API_KEY: SECRET });
    expect(resolved.services['data-agent']!.environment?.API_KEY).toBeUndefined();
  });

  it('hardens every agent like the local containers and publishes no agent port (so --scale works)', () => {
    const services = doc.services as Record<string, Record<string, unknown>>;
    for (const slug of ['data-agent', 'math-agent']) {
      expect(services[slug]).toMatchObject({ user: '1000:1000', read_only: true, cap_drop: ['ALL'], security_opt: ['no-new-privileges:true'], init: true, restart: 'unless-stopped', mem_limit: '128m', pids_limit: 128 });
      expect(services[slug]!.ports).toBeUndefined();
    }
    expect(services['math-agent']!.env_file).toEqual(['agents/math-agent/.env']);
    expect(services['data-agent']!.env_file).toBeUndefined();
    expect(services.router!.ports).toEqual(['127.0.0.1:8088:8080']);
  });
});

describe('nginx routes', () => {
  const targets = agentTargets(config, records, DEFAULT_PRODUCTION);

  it('passes nginx -t', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nexus-nginx-'));
    await writeFile(join(dir, 'nexus-agents.conf'), nginxConfig(targets, DEFAULT_PRODUCTION));
    await writeFile(join(dir, 'nginx.conf'), `pid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nhttp {\n  access_log off;\n  include ${dir}/nexus-agents.conf;\n}\n`);
    const r = await run('nginx', ['-t', '-p', dir, '-c', join(dir, 'nginx.conf')]).catch((e: { stderr: string; code: number }) => e);
    expect((r as { stderr: string }).stderr).toMatch(/syntax is ok[\s\S]*test is successful/);
  });

  it('routes each agent by path, skips dead replicas and answers 503 when none is live', () => {
    const conf = nginxConfig(targets, DEFAULT_PRODUCTION);
    expect(conf).toContain('location /agents/data-agent/ {');
    expect(conf).toContain('set $agent_upstream math-agent:8080;');
    expect(conf).toContain('proxy_next_upstream error timeout http_502 http_503 http_504;');
    expect(conf).toMatch(/error_page 502 503 504 = @unavailable;[\s\S]*return 503 '\{"error":\{"code":"AGENT_UNAVAILABLE"/);
    expect(conf).toContain('client_max_body_size 1024k;');
  });

  it('indexes every agent and its card at one well-known place', () => {
    expect(agentIndex(targets, DEFAULT_PRODUCTION)).toEqual({
      agents: [
        expect.objectContaining({ slug: 'data-agent', api_endpoint: 'http://127.0.0.1:8088/agents/data-agent', agent_card_url: 'http://127.0.0.1:8088/agents/data-agent/.well-known/agent-card.json', tools: ['process_data'] }),
        expect.objectContaining({ slug: 'math-agent', tools: ['evaluate_expression'] }),
      ],
    });
  });
});

describe('swarm stack file', () => {
  it('validates against the Compose Specification schema, with deploy settings and configs', () => {
    const doc = stackDocument(config, agentTargets(config, records, DEFAULT_PRODUCTION), {
      ...DEFAULT_PRODUCTION, replicas: 2, routerImage: 'nginx:1.27-alpine', nginxConfFile: './nginx/a.conf', agentsIndexFile: './nginx/agents.json', configNames: { nginx: 'n_1', index: 'i_1' },
    });
    expect(validateCompose(doc)).toEqual([]);
    const svc = (doc.services as Record<string, { deploy: Record<string, unknown> }>)['data-agent']!;
    expect(svc.deploy).toMatchObject({ replicas: 2, endpoint_mode: 'dnsrr', update_config: { order: 'start-first', failure_action: 'rollback' } });
    expect((doc.services as Record<string, { deploy: { mode: string } }>).router!.deploy.mode).toBe('global');
  });
});

describe('traefik routes', () => {
  it('the dynamic configuration validates against the Traefik file-provider schema', () => {
    const doc = traefikDynamicConfig(agentTargets(config, records, DEFAULT_PRODUCTION), DEFAULT_PRODUCTION);
    expect(validateTraefik(doc)).toEqual([]);
    expect((doc.http as { routers: Record<string, { rule: string }> }).routers['nexus-data-agent']!.rule).toBe('PathPrefix(`/agents/data-agent/`)');
  });

  it('compose with the traefik router carries Docker-provider labels and validates', () => {
    const doc = composeDocument(config, agentTargets(config, records, DEFAULT_PRODUCTION), { ...DEFAULT_PRODUCTION, router: 'traefik', routerImage: 'traefik:v3.1' });
    expect(validateCompose(doc)).toEqual([]);
    const labels = (doc.services as Record<string, { labels: Record<string, string> }>)['data-agent']!.labels;
    expect(labels['traefik.http.routers.nexus-data-agent.rule']).toBe('PathPrefix(`/agents/data-agent/`)');
  });
});

