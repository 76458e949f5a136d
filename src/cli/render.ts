import type { Writable } from 'node:stream';
import type { Ora } from 'ora';
import type { FleetEvent } from '../fleet/events.js';

// ECMA-48: CSI (ESC [ or 0x9b ... final byte), OSC/DCS/PM/APC strings (... BEL or ST), other ESC sequences
const ESCAPE_SEQUENCE_RE = /(?:\u001b\[|\u009b)[0-?]*[ -/]*[@-~]?|(?:\u001b[\]PX^_]|[\u0090\u009d\u009e\u009f])[\s\S]*?(?:\u0007|\u001b\\|\u009c|$)|\u001b[ -/]*[0-~]?/g;
const CONTROL_RE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/**
 * Text safe to print on a terminal: ANSI/ECMA-48 escape sequences removed, every other control
 * character (C0, DEL, C1; carriage return included, which could overwrite a line) shown as `?`.
 * Newlines and tabs stay unless `oneLine`, which turns them into spaces (table cells).
 * Records, container logs and error messages all pass through here before reaching a terminal.
 */
export function terminalSafe(text: string, oneLine = false): string {
  const clean = text.replace(ESCAPE_SEQUENCE_RE, '').replace(CONTROL_RE, '?');
  return oneLine ? clean.replace(/[\n\t]/g, ' ') : clean;
}

/** Left-aligned text table; the header row is upper-cased; cells are terminalSafe one-liners. */
export function table(header: string[], rows: (string | number)[][]): string {
  const all = [header.map((h) => h.toUpperCase()), ...rows.map((r) => r.map((c) => terminalSafe(String(c), true)))];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

/**
 * Progress on stderr, one consumer of the fleet's typed events (FleetEvent): a spinner with the
 * latest event on a TTY, one line per event otherwise. Notices (e.g. the offline base fallback)
 * are always printed as their own line. Use `Progress.open` (it loads the spinner only for a TTY).
 */
export class Progress {
  private spinner: Ora | undefined;
  private readonly healthy = new Set<string>();

  private constructor(
    private readonly out: Writable & { isTTY?: boolean },
    private readonly quiet: boolean,
    private readonly total: number,
    private readonly ora: typeof import('ora').default | undefined,
  ) {}

  /** A progress output on `out`; `quiet` (--json) prints notices only; `total` agents are counted healthy. */
  static async open(out: Writable & { isTTY?: boolean }, quiet: boolean, total = 0): Promise<Progress> {
    const spinner = out.isTTY && !quiet ? (await import('ora')).default : undefined;
    return new Progress(out, quiet, total, spinner);
  }

  /** The text of an event, or undefined for events not shown. */
  private static textOf(ev: FleetEvent): string | undefined {
    const who = ev.agent ? `${ev.agent}: ` : '';
    if (ev.kind === 'note') return `${who}${ev.message ?? ev.phase}`;
    if (ev.kind === 'agent') return `${who}${ev.outcome === 'failed' ? `failed: ${ev.error?.message ?? ''}` : `${ev.outcome} ${ev.message ?? ''}`.trim()}`;
    if (ev.phase === 'begin' && ev.action !== 'keep' && ev.action !== 'update-record') return `${who}${ev.action}`;
    return undefined;
  }

  readonly onEvent = (ev: FleetEvent): void => {
    if (ev.kind === 'agent' && ev.outcome !== 'failed' && ev.agent) this.healthy.add(ev.agent);
    if (ev.kind === 'note' && ev.phase === 'notice') {
      this.line(`notice: ${terminalSafe(ev.message ?? '', true)}`);
      return;
    }
    const raw = Progress.textOf(ev);
    if (this.quiet || raw === undefined) return;
    const text = terminalSafe(raw, true);
    if (this.ora) {
      const count = this.total ? `[${this.healthy.size}/${this.total} healthy] ` : '';
      if (!this.spinner) this.spinner = this.ora({ stream: this.out, text: count + text }).start();
      else this.spinner.text = count + text;
    } else {
      this.out.write(`${text}\n`);
    }
  };

  private line(text: string): void {
    if (this.spinner?.isSpinning) {
      this.spinner.clear();
      this.out.write(text + '\n');
      this.spinner.render();
    } else this.out.write(text + '\n');
  }

  stop(): void {
    this.spinner?.stop();
    this.spinner = undefined;
  }
}
