import type { Writable } from 'node:stream';
import ora, { type Ora } from 'ora';
import type { ProgressEvent } from '../fleet/context.js';

/** Left-aligned text table; the header row is upper-cased. */
export function table(header: string[], rows: (string | number)[][]): string {
  const all = [header.map((h) => h.toUpperCase()), ...rows.map((r) => r.map(String))];
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
    const text = `${ev.agent ? `${ev.agent}: ` : ''}${ev.message ?? ev.phase}`;
    if (ev.phase === 'notice') {
      this.line(`notice: ${ev.message}`);
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
