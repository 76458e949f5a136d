import { describe, expect, it } from 'vitest';
import { planCapabilities } from '../../src/scaffold/capabilities.js';

describe('planCapabilities', () => {
  it('maps the seed capabilities to starter tools and a category', () => {
    expect(planCapabilities(['data', 'analytics'])).toEqual({ capabilities: ['data', 'analytics'], tools: ['process_data'], category: 'data' });
    expect(planCapabilities(['data_processing', 'analytics']).tools).toEqual(['process_data']);
    expect(planCapabilities(['nlp', 'text'])).toMatchObject({ tools: ['analyze_text'], category: 'language' });
    expect(planCapabilities(['math', 'calculus'])).toMatchObject({ tools: ['evaluate_expression'], category: 'math' });
    expect(planCapabilities(['vision', 'ocr'])).toMatchObject({ tools: ['image_info', 'resize', 'extract_text'], category: 'vision' });
    expect(planCapabilities(['programming'])).toMatchObject({ tools: ['analyze_code', 'format_code'], category: 'development' });
  });

  it('combines tools and drops echo when something specific is there', () => {
    expect(planCapabilities(['data', 'search', 'math']).tools).toEqual(['process_data', 'evaluate_expression']);
  });

  it('normalises case, dashes and duplicates; defaults to general', () => {
    expect(planCapabilities(['Data-Processing', 'data_processing']).capabilities).toEqual(['data_processing']);
    expect(planCapabilities([])).toEqual({ capabilities: ['general'], tools: ['echo'], category: 'general' });
  });

  it('rejects unknown capabilities, listing the known ones', () => {
    expect(() => planCapabilities(['data', 'telepathy', 'astrology'])).toThrow(/unknown capabilities: telepathy, astrology/);
    expect(() => planCapabilities(['telepathy'])).toThrow(
      expect.objectContaining({ code: 'CAPABILITY_UNKNOWN', exitCode: 2, hint: expect.stringContaining('analytics') }),
    );
  });
});
