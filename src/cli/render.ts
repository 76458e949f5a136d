import type { Writable } from 'node:stream';
import ora, { type Ora } from 'ora';
import type { ProgressEvent } from '../fleet/context.js';

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
 * Progress on stderr: a spinner with the latest event on a TTY, one line per event otherwise.
 * Notices (e.g. the offline base fallback) are always printed as their own line.
 */
export class Progress {
  private spinner: Ora | undefined;
  private readonly healthy = new Set<string>();

  constructor(
    private readonly out: Writable & { isTTY?: boolean },
    private readonly quiet: boolean,
    private readonly total = 0,
  ) {}

  readonly onProgress = (ev: ProgressEvent): void => {
    if (ev.phase === 'healthy' && ev.agent) this.healthy.add(ev.agent);
    const text = terminalSafe(`${ev.agent ? `${ev.agent}: ` : ''}${ev.message ?? ev.phase}`, true);
    if (ev.phase === 'notice') {
      this.line(`notice: ${terminalSafe(ev.message ?? '', true)}`);
      return;
    }
    if (this.quiet) return;
    if (this.out.isTTY) {
      const count = this.total ? `[${this.healthy.size}/${this.total} healthy] ` : '';
      if (!this.spinner) this.spinner = ora({ stream: this.out, text: count + text }).start();
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
