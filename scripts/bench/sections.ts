/**
 * BENCHMARKS.md is a preamble then `## ` sections, each written by one bench. A run that produces
 * some sections must not drop the others (each `--x-only` bench and the full run write their own).
 */

/** Split Markdown into its preamble and its `## ` sections, in order; each section keeps its heading line. */
export function splitSections(md: string): { preamble: string; sections: { heading: string; body: string }[] } {
  const parts = md.split(/^(?=## )/m);
  const preamble = parts[0]!.startsWith('## ') ? '' : parts.shift()!;
  return { preamble, sections: parts.map((body) => ({ heading: body.slice(0, body.indexOf('\n') < 0 ? undefined : body.indexOf('\n')).trim(), body })) };
}

/**
 * Merge `produced` (Markdown: an optional preamble, then sections) into `existing`: the produced
 * preamble (when not blank) replaces the old one; a produced section replaces the existing one
 * whose heading starts with the same words up to its first `(` or `:` (headings carry changing
 * details); sections only in `existing` stay where they were; new sections are appended in order.
 * Pure; returns the new file text ending with one newline.
 */
export function mergeSections(existing: string, produced: string): string {
  const key = (heading: string) => heading.split(/[(:]/)[0]!.trim().toLowerCase();
  const old = splitSections(existing);
  const next = splitSections(produced);
  const byKey = new Map(next.sections.map((s) => [key(s.heading), s]));
  const used = new Set<string>();
  const kept = old.sections.map((s) => {
    const k = key(s.heading);
    const replacement = byKey.get(k);
    if (!replacement || used.has(k)) return s.body;
    used.add(k);
    return replacement.body;
  });
  const added = next.sections.filter((s) => !used.has(key(s.heading))).map((s) => s.body);
  const preamble = next.preamble.trim() ? next.preamble : old.preamble;
  const tidy = (b: string) => b.replace(/\n*$/, '\n');
  return [preamble, ...kept, ...added].filter((b) => b.trim()).map(tidy).join('\n');
}
