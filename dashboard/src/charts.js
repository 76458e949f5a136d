// Small inline SVG charts (no library: a polyline in a viewBox is all a sparkline needs). The CSP
// allows no inline style, so sizes are attributes and colours come from styles.css classes.
import { html } from './ui.js';

/**
 * A sparkline of `points` ([{t: ms, v: number}], oldest first) of at most the last `spanMs`,
 * `width` x `height` CSS pixels; the time axis runs from the oldest point shown to the newest. It is an
 * image to a screen reader: its label says what it shows, over how long, the range and the latest
 * value, e.g. "Calls per second, last 4 min: 0 to 4.2, now 3.1".
 */
export function Sparkline({ points, label, unit = '', spanMs = 600_000, width = 240, height = 48, digits = 1 }) {
  const now = Date.now();
  const shown = points.filter((p) => now - p.t <= spanMs);
  const values = shown.map((p) => p.v);
  const max = Math.max(...values, 0);
  const min = Math.min(...values, 0);
  const fmt = (v) => `${v.toFixed(digits)}${unit}`;
  const from = shown.length ? shown[0].t : now - spanMs;
  const span = Math.max(1, (shown.length ? shown.at(-1).t : now) - from);
  const over = span < 90_000 ? `${Math.max(1, Math.round(span / 1000))} s` : `${Math.round(span / 60_000)} min`;
  const summary = shown.length ? `${label}, last ${over}: ${fmt(min)} to ${fmt(max)}, now ${fmt(values.at(-1))}` : `${label}: no samples yet`;
  const x = (t) => (width * (t - from)) / span;
  const y = (v) => (max === min ? height / 2 : height - 2 - ((height - 4) * (v - min)) / (max - min));
  const line = shown.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
  return html`<figure class="spark">
    <figcaption>${label} <strong>${shown.length ? fmt(values.at(-1)) : '–'}</strong></figcaption>
    <svg role="img" aria-label=${summary} viewBox=${`0 0 ${width} ${height}`} width=${width} height=${height} preserveAspectRatio="none">
      <title>${summary}</title>
      <line class="axis" x1="0" y1=${height - 1} x2=${width} y2=${height - 1} />
      ${shown.length > 1 ? html`<polyline class="trace" points=${line} />` : shown.length === 1 ? html`<circle class="dot" cx=${x(shown[0].t)} cy=${y(shown[0].v)} r="2" />` : null}
    </svg>
  </figure>`;
}
