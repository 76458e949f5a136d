import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { analyzeText, countSentences } from '../../agent-template/tools/analyze_text.js';
import { echo } from '../../agent-template/tools/echo.js';
import { evaluateExpression } from '../../agent-template/tools/evaluate_expression.js';
import { processData } from '../../agent-template/tools/process_data.js';
import { ToolInputError } from '../../src/runtime/define.js';

const ctx = { signal: new AbortController().signal };
const calc = (expression: string, variables?: Record<string, number>) =>
  evaluateExpression.handler({ expression, ...(variables ? { variables } : {}) }, ctx) as { expression: string; value: number };

describe('starter tools', () => {
  it('process_data summarises numbers', () => {
    expect(processData.handler({ data: [4, -2, 10] }, ctx)).toEqual({ count: 3, sum: 12, mean: 4, min: -2, max: 10 });
    expect(processData.handler({ data: [] }, ctx)).toEqual({ count: 0, sum: 0, mean: null, min: null, max: null });
  });

  it('analyze_text counts words and sentences', () => {
    const r = analyzeText.handler({ text: 'The cat sat. The dog ran! Why?', top: 1 }, ctx) as { words: number; sentences: number; top_words: unknown[] };
    expect(r.words).toBe(7);
    expect(r.sentences).toBe(3);
    expect(r.top_words).toEqual([{ word: 'the', count: 2 }]);
  });

  it('analyze_text counts sentences as the old regex split did, in one pass', () => {
    const bySplit = (t: string) => t.split(/[.!?]+(?:\s|$)/).filter((x) => x.trim().length > 0).length;
    fc.assert(fc.property(fc.stringMatching(/^[a.!? \n]{0,40}$/), (t) => countSentences(t) === bySplit(t)), { numRuns: 2000 });
  });

  it('analyze_text answers on 200,000 dots (the regex split was quadratic: 23 s)', () => {
    const r = analyzeText.handler({ text: `${'.'.repeat(199_999)}a` }, ctx) as { sentences: number; words: number };
    expect(r).toMatchObject({ sentences: 1, words: 1 });
  });

  it('echo returns its parameters', () => expect(echo.handler({ message: 1 }, ctx)).toEqual({ echo: { message: 1 } }));

  it('evaluate_expression computes with precedence, power, functions, constants, variables', () => {
    expect(calc('2 * (3 + 4) ^ 2')).toEqual({ expression: '2 * (3 + 4) ^ 2', value: 98 });
    expect(calc('2 ^ 3 ^ 2').value).toBe(512);
    expect(calc('-3 + sqrt(16) % 3').value).toBe(-2);
    expect(calc('x * pi', { x: 2 }).value).toBeCloseTo(2 * Math.PI);
    expect(calc('max(1, 7, 3)').value).toBe(7);
  });

  it.each([
    ['process.exit(1)', /not allowed/],
    ['constructor.constructor("return 1")()', /unknown function|not allowed/],
    ['"abc" + 1', /only numbers/],
    ['a.b', /not allowed/],
    ['__proto__', /unknown variable/],
    ['toString()', /unknown function/],
    ['1 +', /cannot parse/],
    ['1 / 0', /finite/],
    ['x = 1', /not allowed|cannot parse/],
  ])('evaluate_expression refuses %j safely', (expr, msg) => {
    expect(() => calc(expr)).toThrow(ToolInputError);
    expect(() => calc(expr)).toThrow(msg);
  });
});
