import { describe, expect, it } from 'vitest';
import { mergeSections, splitSections } from '../../scripts/bench/sections.js';

const existing = `# Benchmarks

Produced by an old run.

## Start 20 agents (old)

old start

## Tasks end to end vs direct /execute (\`npm run bench -- --tasks-only\`)

tasks figures

## Registry: 100 creates

old registry
`;

describe('BENCHMARKS.md sections (a bench run keeps the sections it did not produce)', () => {
  it('splits a preamble and sections with their headings', () => {
    const s = splitSections(existing);
    expect(s.preamble).toContain('# Benchmarks');
    expect(s.sections.map((x) => x.heading)).toEqual(['## Start 20 agents (old)', '## Tasks end to end vs direct /execute (`npm run bench -- --tasks-only`)', '## Registry: 100 creates']);
  });

  it('replaces produced sections in place by heading, keeps the others, appends new ones, replaces the preamble', () => {
    const produced = `# Benchmarks\n\nProduced by a new run.\n\n## Start 20 agents (new)\n\nnew start\n\n## Registry: 200 creates\n\nnew registry\n\n## Streams\n\nnew streams\n`;
    const out = mergeSections(existing, produced);
    expect(out).toContain('Produced by a new run.');
    expect(out).not.toContain('old run');
    expect(out).not.toContain('old start');
    expect(out).not.toContain('old registry');
    expect(out).toContain('tasks figures');
    expect(splitSections(out).sections.map((x) => x.heading)).toEqual(['## Start 20 agents (new)', '## Tasks end to end vs direct /execute (`npm run bench -- --tasks-only`)', '## Registry: 200 creates', '## Streams']);
    expect(out.endsWith('new streams\n')).toBe(true);
  });

  it('a run with no preamble keeps the old one', () => {
    expect(mergeSections(existing, '## Streams\n\nx\n')).toContain('Produced by an old run.');
  });
});
