// The fleet view (issue 11 §2): a header with healthy / unhealthy / stopped counts, search and
// filters, one row per agent (a card per agent at phone width).
import { useMemo, useState } from 'preact/hooks';
import { html, mib, pct, stateOf } from './ui.js';

function Counts({ agents }) {
  const c = { healthy: 0, unhealthy: 0, stopped: 0 };
  for (const a of agents) c[stateOf(a)]++;
  return html`<ul class="counts" aria-label="Fleet health">
    <li class="healthy"><strong data-count="healthy">${c.healthy}</strong> healthy</li>
    <li class="unhealthy"><strong data-count="unhealthy">${c.unhealthy}</strong> unhealthy</li>
    <li class="stopped"><strong data-count="stopped">${c.stopped}</strong> stopped</li>
  </ul>`;
}

export function Fleet({ agents, perf, open }) {
  const [q, setQ] = useState('');
  const [cap, setCap] = useState('');
  const [state, setState] = useState('');
  const caps = useMemo(() => [...new Set(agents.flatMap((a) => a.capabilities))].sort(), [agents]);
  const shown = agents.filter((a) => (!q || `${a.name} ${a.slug}`.toLowerCase().includes(q.toLowerCase())) && (!cap || a.capabilities.includes(cap)) && (!state || stateOf(a) === state));
  return html`<section aria-labelledby="fleet-h">
    <h2 id="fleet-h">Fleet</h2>
    <${Counts} agents=${agents} />
    <div class="filters">
      <label>Search <input type="search" value=${q} onInput=${(e) => setQ(e.currentTarget.value)} placeholder="name" /></label>
      <label>Capability <select value=${cap} onChange=${(e) => setCap(e.currentTarget.value)}><option value="">all</option>${caps.map((c) => html`<option value=${c}>${c}</option>`)}</select></label>
      <label>Status <select value=${state} onChange=${(e) => setState(e.currentTarget.value)}><option value="">all</option><option>healthy</option><option>unhealthy</option><option>stopped</option></select></label>
    </div>
    <div class="table-wrap">
      <table class="fleet">
        <caption class="sr-only">One row per agent; ${shown.length} of ${agents.length} shown</caption>
        <thead><tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Health</th><th scope="col">Replicas</th><th scope="col">Version</th><th scope="col">URL</th><th scope="col">CPU %</th><th scope="col">Memory MiB</th><th scope="col">Calls/s</th><th scope="col">Error %</th><th scope="col">p95 ms</th></tr></thead>
        <tbody>
          ${shown.map((a) => {
            const p = perf[a.slug];
            const st = stateOf(a);
            return html`<tr key=${a.slug} data-agent=${a.slug} data-state=${st}>
              <th scope="row" data-label="Name"><a href=${`#/agent/${a.slug}`} onClick=${(e) => (e.preventDefault(), open(a.slug))}>${a.name}</a></th>
              <td data-label="Status" class="status">${a.container === 'running' ? 'running' : 'stopped'}</td>
              <td data-label="Health"><span class=${`badge ${st}`}>${st}</span></td>
              <td data-label="Replicas">${a.inRotation}/${a.replicas.length}</td>
              <td data-label="Version">${a.version ?? '–'}</td>
              <td data-label="URL" class="url">${a.url}</td>
              <td data-label="CPU %">${pct(a.stats?.cpuPercent)}</td>
              <td data-label="Memory MiB">${mib(a.stats?.memoryBytes)}</td>
              <td data-label="Calls/s">${p ? p.throughputPerS.toFixed(2) : '–'}</td>
              <td data-label="Error %">${p && p.calls ? ((100 * p.errors) / p.calls).toFixed(1) : '–'}</td>
              <td data-label="p95 ms">${p && p.calls ? p.latencyMs.p95.toFixed(0) : '–'}</td>
            </tr>`;
          })}
        </tbody>
      </table>
    </div>
  </section>`;
}
