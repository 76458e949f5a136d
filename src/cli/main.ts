import { resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../config/config.js';
import { AppError, ExitCode, isAppError, messageOf } from '../errors.js';
import { openFleet } from '../fleet/open.js';
import { USE_CASES, type OptionDecl, type UseCase } from '../fleet/usecases.js';
import { setLogLevel } from '../log.js';
import { runCommand } from './commands.js';
import { Progress, terminalSafe } from './render.js';

interface GlobalOpts {
  workspace?: string;
  json?: boolean;
  verbose?: boolean;
}

interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: Record<string, string | undefined>;
  cwd: string;
}

function parsePort(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 65535) throw new InvalidArgumentError('must be a port number (1-65535)');
  return n;
}
function registryKind(v: string): string {
  if (v !== 'local' && v !== 'firestore') throw new InvalidArgumentError('must be local or firestore');
  return v;
}
/** Descriptions of command groups (`agent registry ...`). */
const GROUPS: Record<string, string> = { registry: 'move agent records between registries (local, firestore)', token: 'manager tokens: create, revoke, list; agent connection tokens: rotate-agent, revoke-agent' };
function parsePositive(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('must be a whole number');
  return n;
}

/**
 * The use cases to declare for `argv`: only the one its command words name (`list`, `registry
 * migrate`, or an alias), since declaring every command and its options costs more than a quick
 * command itself; all of them when the words name none (no command, `help`, a typo, a bare group),
 * so commander's help, errors and suggestions are the same as with the full table. Global options
 * before the command are skipped (`--workspace <dir>` takes the next word).
 */
export function useCasesFor(argv: readonly string[]): readonly UseCase[] {
  const words: string[] = [];
  for (let i = 0; i < argv.length && words.length < 2; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a.startsWith('-')) {
      if (words.length) break; // the command's own options: its words are all read
      if (a === '--workspace') i++;
      continue;
    }
    words.push(a);
  }
  const named = USE_CASES.filter((uc) => {
    const w = uc.name.split(' ');
    return w.length === 1 ? w[0] === words[0] || (uc.alias !== undefined && uc.alias === words[0]) : w[0] === words[0] && w[1] === words[1];
  });
  return named.length === 1 ? named : USE_CASES;
}

/**
 * The workspace: --workspace, else NEXUS_WORKSPACE, else the folder `npm run` was called from
 * (INIT_CWD), else the current folder.
 */
function workspaceOf(g: GlobalOpts, io: Io): string {
  return resolve(g.workspace ?? io.env.NEXUS_WORKSPACE ?? io.env.INIT_CWD ?? io.cwd);
}

/**
 * Run the CLI with `argv` (without node and script). Returns the exit code; never calls
 * process.exit. --json prints exactly the command's data (or {"error": ...}) on stdout.
 */
export async function main(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() }): Promise<number> {
  let exitCode: number = ExitCode.OK;
  let json = false;
  const program = new Command('agent')
    .description('Nexus Delta agents: run a fleet of tool-serving HTTP agents, one Docker container each.')
    .option('--workspace <dir>', 'workspace folder (nexus.yaml, agents/, .nexus/)')
    .option('--json', 'print machine-readable JSON on stdout')
    .option('-v, --verbose', 'debug logs on stderr')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(terminalSafe(s)) })
    .showSuggestionAfterError(true);

  const parsers: Record<NonNullable<OptionDecl['parse']>, (v: string) => unknown> = { port: parsePort, count: parsePositive, 'registry-kind': registryKind };
  const groups = new Map<string, Command>();
  for (const uc of useCasesFor(argv)) {
    const words = uc.name.split(' ');
    let parent = program;
    for (const w of words.slice(0, -1)) {
      let g = groups.get(w);
      if (!g) groups.set(w, (g = program.command(w).description(GROUPS[w] ?? w)));
      parent = g;
    }
    const cmd = parent.command(words.at(-1)!).description(uc.description);
    if (uc.alias) cmd.alias(uc.alias);
    for (const d of uc.options) {
      const opt = new Option(d.flags, d.description);
      if (d.required) opt.makeOptionMandatory();
      if (d.parse) opt.argParser(parsers[d.parse]);
      if (d.choices) opt.choices(d.choices);
      if (d.default !== undefined) opt.default(d.default);
      cmd.addOption(opt);
    }
    for (const a of uc.args ?? []) cmd.argument(`<${a.name}>`, a.description);
    cmd.action(async (...params: unknown[]) => {
      // commander passes the positional arguments first, then the options and the command
      const positional = params.slice(0, uc.args?.length ?? 0) as string[];
      const opts: Record<string, unknown> = { ...(params[positional.length] as Record<string, unknown>), ...Object.fromEntries((uc.args ?? []).map((a, i) => [a.name, positional[i]])) };
      const g = program.opts<GlobalOpts>();
      json = !!g.json;
      if (g.verbose) setLogLevel('debug');
      const config = loadConfig(workspaceOf(g, io), io.env);
      let progress: Progress | undefined;
      await using fleet = await openFleet(config, io.env, { onEvent: (ev) => progress?.onEvent(ev) });
      const total = uc.progressTotal ? await uc.progressTotal(uc.input().parse(opts), fleet.deps).catch(() => 0) : 0;
      progress = await Progress.open(io.stderr as never, json, total);
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const r = await runCommand(uc, fleet.deps, opts, { out: io.stdout, signal: stop.signal, env: io.env });
        progress.stop();
        if (json) io.stdout.write(JSON.stringify(r.data, null, 2) + '\n');
        else if (r.human) io.stdout.write(terminalSafe(r.human) + '\n');
        exitCode = r.exitCode ?? ExitCode.OK;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        progress.stop();
      }
    });
  }

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.OK;
      // commander has already printed its one-line message on stderr
      return ExitCode.USAGE;
    }
    const e = isAppError(err) ? err : new AppError('INTERNAL', messageOf(err), { cause: err });
    if (json) io.stdout.write(JSON.stringify({ error: e.toJSON() }, null, 2) + '\n');
    io.stderr.write(`error: ${terminalSafe(e.message, true)}\n`);
    if (e.hint) io.stderr.write(`hint: ${terminalSafe(e.hint, true)}\n`);
    const logs = e.details?.logs;
    if (typeof logs === 'string' && logs) io.stderr.write(`last log lines:\n${terminalSafe(logs)}\n`);
    if (e.code === 'INTERNAL' && program.opts<GlobalOpts>().verbose) io.stderr.write(`${(err as Error).stack ?? ''}\n`);
    return e.exitCode;
  }
}

const isEntry = process.argv[1] && import.meta.url === new URL(`file://${resolve(process.argv[1])}`).href;
if (isEntry) {
  // Guard: if a bug ever leaves main() pending with nothing keeping Node alive, fail loudly
  // instead of exiting 0 with half the work done.
  let settled = false;
  process.on('beforeExit', () => {
    if (!settled) {
      process.stderr.write('error: internal: the command stalled before finishing (please report this)\n');
      process.exit(ExitCode.INTERNAL);
    }
  });
  main(process.argv.slice(2)).finally(() => (settled = true)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`error: ${messageOf(err)}\n`);
      process.exit(ExitCode.INTERNAL);
    },
  );
}
