/**
 * Where the manager keeps its commands (issue 10 §6, durability): `<workspace>/.nexus/commands.db`,
 * an embedded SQLite file (better-sqlite3, the engine of the task store; a file of its own, so the
 * two never contend for one write lock). A manager restart reloads the commands still open and
 * delivers them when their targets reconnect; finished ones stay readable by id.
 *
 * Two tables: `commands` (one row per command: verb, priority, status, times, args as JSON) and
 * `command_targets` (one row per target: status and the target's view as JSON, result included),
 * so a target's result is one small row write, not a rewrite of the whole fan-out. WAL with
 * synchronous=NORMAL: a committed write survives a process crash (SIGKILL); only a power loss can
 * drop the last transactions (sqlite.org/pragma.html#pragma_synchronous).
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { AppError, messageOf } from '../errors.js';
import type { CommandStatus, CommandTarget, CommandView } from './commands.js';

/** A command as stored: its view (targets included), its args and its submission order. */
export interface StoredCommand {
  view: CommandView;
  args: Record<string, unknown>;
  /** Submission order, increasing across restarts (ties in priority go oldest first). */
  seq: number;
}

/** The command store the CommandCenter writes through (SQLite by default; memory in unit tests). */
export interface CommandStore {
  /** Record a new command and its targets in one transaction. */
  insert(c: StoredCommand): void;
  /** Write one target's current view. */
  saveTarget(commandId: string, t: CommandTarget): void;
  /** Write a command's status. */
  saveStatus(commandId: string, status: CommandStatus): void;
  /** Commands with a target still `waiting` or `sent`, oldest first. */
  loadOpen(): StoredCommand[];
  /** One command by id, or undefined. */
  get(id: string): StoredCommand | undefined;
  /** The largest seq stored (0 when empty). */
  maxSeq(): number;
  /** Drop the oldest finished commands beyond the newest `keep` finished ones. Returns how many went. */
  prune(keep: number): number;
  close(): void;
}

/** `<workspace>/.nexus/commands.db`. */
export const commandStoreFile = (workspace: string): string => join(workspace, '.nexus', 'commands.db');

interface CommandRow {
  id: string;
  seq: number;
  verb: string;
  priority: string;
  status: string;
  capability: string | null;
  created_at: string;
  expires_at: string;
  args: string;
}

const OPEN_STATUSES = `('pending','running')`;

/**
 * The SQLite command store (see the module docstring). `file` ':memory:' keeps it in memory.
 * @throws AppError COMMAND_STORE_UNREACHABLE when the file cannot be opened (a read-only workspace, a
 *   locked or corrupt file); its message names the file.
 */
export class SqliteCommandStore implements CommandStore {
  private readonly db: Database.Database;
  private readonly stmts: {
    insertCommand: Database.Statement;
    insertTarget: Database.Statement;
    saveTarget: Database.Statement;
    saveStatus: Database.Statement;
    get: Database.Statement;
    targets: Database.Statement;
    open: Database.Statement;
    maxSeq: Database.Statement;
  };

  constructor(file: string) {
    try {
      if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      this.db = new Database(file);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('busy_timeout = 5000');
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS commands (
          id TEXT PRIMARY KEY, seq INTEGER NOT NULL, verb TEXT NOT NULL, priority TEXT NOT NULL,
          status TEXT NOT NULL, capability TEXT, created_at TEXT NOT NULL, expires_at TEXT NOT NULL, args TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS commands_status ON commands (status, seq);
        CREATE TABLE IF NOT EXISTS command_targets (
          command_id TEXT NOT NULL REFERENCES commands (id) ON DELETE CASCADE, agent TEXT NOT NULL, ord INTEGER NOT NULL,
          status TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (command_id, agent));
      `);
      this.db.pragma('foreign_keys = ON');
    } catch (err) {
      throw new AppError('COMMAND_STORE_UNREACHABLE', `cannot open the command store ${file}: ${messageOf(err)}`, { hint: 'check that .nexus/ is writable', cause: err });
    }
    this.stmts = {
      insertCommand: this.db.prepare('INSERT INTO commands (id, seq, verb, priority, status, capability, created_at, expires_at, args) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      insertTarget: this.db.prepare('INSERT INTO command_targets (command_id, agent, ord, status, body) VALUES (?, ?, ?, ?, ?)'),
      saveTarget: this.db.prepare('UPDATE command_targets SET status = ?, body = ? WHERE command_id = ? AND agent = ?'),
      saveStatus: this.db.prepare('UPDATE commands SET status = ? WHERE id = ?'),
      get: this.db.prepare('SELECT * FROM commands WHERE id = ?'),
      targets: this.db.prepare('SELECT body FROM command_targets WHERE command_id = ? ORDER BY ord'),
      open: this.db.prepare(`SELECT * FROM commands WHERE status IN ${OPEN_STATUSES} ORDER BY seq`),
      maxSeq: this.db.prepare('SELECT COALESCE(MAX(seq), 0) AS m FROM commands'),
    };
  }

  insert(c: StoredCommand): void {
    const v = c.view;
    this.db.transaction(() => {
      this.stmts.insertCommand.run(v.command_id, c.seq, v.verb, v.priority, v.status, v.capability ?? null, v.created_at, v.expires_at, JSON.stringify(c.args));
      v.targets.forEach((t, i) => this.stmts.insertTarget.run(v.command_id, t.agent, i, t.status, JSON.stringify(t)));
    })();
  }

  saveTarget(commandId: string, t: CommandTarget): void {
    this.stmts.saveTarget.run(t.status, JSON.stringify(t), commandId, t.agent);
  }

  saveStatus(commandId: string, status: CommandStatus): void {
    this.stmts.saveStatus.run(status, commandId);
  }

  private hydrate(row: CommandRow): StoredCommand {
    const targets = (this.stmts.targets.all(row.id) as { body: string }[]).map((r) => JSON.parse(r.body) as CommandTarget);
    return {
      seq: row.seq,
      args: JSON.parse(row.args) as Record<string, unknown>,
      view: {
        command_id: row.id,
        verb: row.verb as CommandView['verb'],
        priority: row.priority as CommandView['priority'],
        status: row.status as CommandStatus,
        ...(row.capability !== null ? { capability: row.capability } : {}),
        created_at: row.created_at,
        expires_at: row.expires_at,
        targets,
      },
    };
  }

  loadOpen(): StoredCommand[] {
    return (this.stmts.open.all() as CommandRow[]).map((r) => this.hydrate(r));
  }

  get(id: string): StoredCommand | undefined {
    const row = this.stmts.get.get(id) as CommandRow | undefined;
    return row ? this.hydrate(row) : undefined;
  }

  maxSeq(): number {
    return (this.stmts.maxSeq.get() as { m: number }).m;
  }

  prune(keep: number): number {
    const r = this.db
      .prepare(`DELETE FROM commands WHERE status NOT IN ${OPEN_STATUSES} AND seq NOT IN (SELECT seq FROM commands WHERE status NOT IN ${OPEN_STATUSES} ORDER BY seq DESC LIMIT ?)`)
      .run(keep);
    return r.changes;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
