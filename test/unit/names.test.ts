import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { agentImageRef, containerName, slugify, validateAgentName } from '../../src/names.js';

describe('slugify', () => {
  it.each([
    ['DataAgent', 'data-agent'],
    ['MyAgent', 'my-agent'],
    ['HTTPServer', 'http-server'],
    ['agent-001', 'agent-001'],
    ['My agent_2', 'my-agent-2'],
    ['OCR2Text', 'ocr2-text'],
  ])('%s -> %s', (name, slug) => expect(slugify(name)).toBe(slug));
});

describe('validateAgentName', () => {
  it('returns the DNS-safe slug', () => expect(validateAgentName('DataAgent')).toBe('data-agent'));
  it('refuses names whose slug is a fixed manager route (GET /api/v1/agents/health, /agents/stream)', () => {
    for (const name of ['Health', 'stream', 'STREAM']) {
      expect(() => validateAgentName(name)).toThrow(expect.objectContaining({ code: 'NAME_INVALID', message: expect.stringContaining('reserved') }));
    }
    expect(validateAgentName('HealthAgent')).toBe('health-agent');
  });

  it.each(['', '1Agent', 'bad/name', 'x;rm -rf', '-dash', 'é'])('rejects %j with NAME_INVALID', (name) => {
    expect(() => validateAgentName(name)).toThrow(AppError);
    expect(() => validateAgentName(name)).toThrow(expect.objectContaining({ code: 'NAME_INVALID', exitCode: 2, hint: expect.stringMatching(/letters/) }));
  });

  it('rejects names whose slug would overflow a DNS label with the container prefix', () => {
    const long = 'A' + 'b'.repeat(45);
    expect(() => validateAgentName(long)).toThrow(/too long/);
    expect(containerName(slugify('A' + 'b'.repeat(39)), 99).length).toBeLessThanOrEqual(63);
  });
});

describe('object names (DESIGN.md vocabulary)', () => {
  it('names containers and images', () => {
    expect(containerName('data-agent')).toBe('nexus-agent-data-agent');
    expect(containerName('data-agent', 2)).toBe('nexus-agent-data-agent-2');
    expect(agentImageRef('data-agent', 'latest')).toBe('nexus-delta-agent-data-agent:latest');
  });
});
