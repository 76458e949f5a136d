import { describe, expect, it } from 'vitest';
import { useCasesFor } from '../../src/cli/main.js';
import { USE_CASES } from '../../src/fleet/usecases.js';

const names = (argv: string[]) => useCasesFor(argv).map((u) => u.name);

describe('useCasesFor: the CLI declares only the command it runs', () => {
  it('picks the one use case the command words name, by name, alias or group + word', () => {
    expect(names(['list'])).toEqual(['list']);
    expect(names(['ls', '--json'])).toEqual(['list']);
    expect(names(['rm', '--name', 'a'])).toEqual(['remove']);
    expect(names(['create', '--name', 'list'])).toEqual(['create']);
    expect(names(['registry', 'export', '--file', 'x'])).toEqual(['registry export']);
    expect(names(['token', 'list'])).toEqual(['token list']);
  });

  it('skips the global options before the command (--workspace takes a value)', () => {
    expect(names(['--workspace', 'list', 'create', '--name', 'A'])).toEqual(['create']);
    expect(names(['--workspace=/w', '--json', '-v', 'list'])).toEqual(['list']);
  });

  it('declares every command when none is named, so help, errors and suggestions see the whole table', () => {
    for (const argv of [[], ['--help'], ['help', 'list'], ['lst'], ['registry'], ['registry', '--help'], ['token', 'nope'], ['--', 'list']]) {
      expect(useCasesFor(argv)).toBe(USE_CASES);
    }
  });

  it("builds a use case's input schema when first asked, then the same one", () => {
    for (const uc of USE_CASES) expect(uc.input()).toBe(uc.input());
    expect(USE_CASES.find((u) => u.name === 'create')!.input().parse({ name: 'A' })).toEqual({ name: 'A', model: 'none', agentVersion: '0.1.0' });
  });
});
