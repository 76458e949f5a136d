// The agent view (issue 11 §3, §4): facts, actions (start, stop, restart, scale, rollout, remove,
// register, unregister), charts of the gateway's figures, live logs, recent events, lifecycle
// history, the marketplace listing, and the tools with their generated forms.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { allows, api, streamText } from './api.js';
import { Sparkline } from './charts.js';
import { FieldError, fieldsOf, valuesToParameters } from './schema-form.js';
import { errorText, eventLine, html, stateOf, when } from './ui.js';

function ToolForm({ agent, tool, canRun, ran }) {
  const fields = useMemo(() => fieldsOf(tool.parameters), [tool]);
  const [out, setOut] = useState(null);
  const [busy, setBusy] = useState(false);
  const id = (f) => `t-${tool.name}-${f.name}`;
  const submit = async (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    const raw = {};
    for (const f of fields) {
      const el = form.elements.namedItem(f.name);
      raw[f.name] = f.kind === 'boolean' ? el.checked : el.value;
    }
    let parameters;
    try {
      parameters = valuesToParameters(fields, raw);
    } catch (e) {
      setOut({ error: e instanceof FieldError ? `${e.field} ${e.message}` : String(e) });
      return;
    }
    setBusy(true);
    try {
      const r = await api('POST', `/agents/${agent}/execute`, { tool_name: tool.name, parameters });
      setOut({ result: r.result });
    } catch (e) {
      setOut({ error: errorText(e) });
    } finally {
      setBusy(false);
      ran();
    }
  };
  const input = (f) => {
    const common = { id: id(f), name: f.name, required: f.required, 'aria-describedby': f.description ? `${id(f)}-d` : undefined };
    if (f.kind === 'boolean') return html`<input type="checkbox" ...${common} required=${false} checked=${f.default === true} />`;
    if (f.kind === 'enum') return html`<select ...${common}>${f.required ? null : html`<option value="">(none)</option>`}${f.options.map((o) => html`<option selected=${o === f.default}>${o}</option>`)}</select>`;
    if (f.kind === 'number' || f.kind === 'integer') return html`<input type="number" step=${f.kind === 'integer' ? '1' : 'any'} min=${f.min} max=${f.max} value=${f.default ?? ''} ...${common} />`;
    if (f.kind === 'text' || f.kind === 'json') return html`<textarea rows="4" ...${common} placeholder=${f.kind === 'json' ? 'JSON' : ''}>${f.default ?? ''}</textarea>`;
    if (f.kind === 'numbers' || f.kind === 'strings') return html`<input type="text" ...${common} placeholder=${f.kind === 'numbers' ? '1, 2, 3 or [1,2,3]' : 'a, b or ["a","b"]'} />`;
    return html`<input type="text" ...${common} value=${f.default ?? ''} />`;
  };
  return html`<form class="tool" data-tool=${tool.name} onSubmit=${submit}>
    <fieldset>
      <legend>${tool.name}</legend>
      <p class="note">${tool.description}</p>
      ${fields.map(
        (f) => html`<div class="field">
          <label for=${id(f)}>${f.name}${f.required ? html`<span aria-hidden="true"> *</span>` : ''}${f.kind === 'numbers' || f.kind === 'strings' ? ' (comma-separated or JSON)' : ''}${f.kind === 'json' ? ' (JSON)' : ''}</label>
          ${input(f)}
          ${f.description ? html`<small id=${`${id(f)}-d`}>${f.description}</small>` : null}
        </div>`,
      )}
      <button type="submit" disabled=${!canRun || busy} title=${canRun ? '' : 'running tools needs an operator token'}>${busy ? 'Running…' : `Run ${tool.name}`}</button>
      <div class="output" role="status" aria-live="polite">
        ${out?.error ? html`<p class="error">Error: ${out.error}</p>` : null}
        ${out && 'result' in out ? html`<pre class="result">${JSON.stringify(out.result, null, 2)}</pre>` : null}
      </div>
    </fieldset>
  </form>`;
}

const CONFIRM = {
  stop: (n) => `Stop ${n}? Its containers are removed; in-flight calls finish.`,
  remove: (n) => `Remove ${n}? Its containers, image and record are deleted.`,
  rollout: (n) => `Roll out ${n}'s current source? New replicas start beside the old ones, take the traffic once healthy, and the old ones are drained (rolled back if the new ones fail their checks).`,
  unregister: (n) => `Unregister ${n}? Its listing is removed from the marketplace.`,
};

/** One line for an action's answer: the use case's outcome for this agent. */
function outcomeOf(what, name, r) {
  const one = r.agents?.[0];
  if (what === 'rollout') return `rollout ${name}: ${r.from} → ${r.to} (generation ${r.generation}; ${r.containers.length} serving, ${r.drained.length} drained)`;
  if (what === 'scale') return `scale ${name}: ${r.replicas} replica(s)`;
  if (what === 'register') return `register ${name}: ${one?.outcome ?? 'done'}${one?.status ? `, listed ${one.status}` : ''}${one?.error ? ` (${one.error.message})` : ''}`;
  if (what === 'unregister') return `unregister ${name}: ${one?.removed ? 'listing removed' : 'the marketplace had no listing'}`;
  if (what === 'remove') return `remove ${name}: done`;
  return `${what} ${name}: ${one?.outcome ?? (one?.removed !== undefined ? `${one.removed} container(s) stopped` : 'done')}${one?.error ? ` (${one.error.message})` : ''}`;
}

function Actions({ agent, scope, refresh, listing, after }) {
  const [confirm, setConfirm] = useState(null);
  const [outcome, setOutcome] = useState('');
  const [busy, setBusy] = useState('');
  const [replicas, setReplicas] = useState(String(Math.max(1, agent.replicas.length)));
  const [routerPort, setRouterPort] = useState('');
  const [version, setVersion] = useState('');
  const confirmRef = useRef(null);
  useEffect(() => confirmRef.current?.focus(), [confirm]);
  const canOperate = allows(scope, 'operator');
  const canAdmin = allows(scope, 'admin');
  const router = routerPort ? { routerPort: Number(routerPort) } : {};
  const run = async (what) => {
    setConfirm(null);
    setBusy(what);
    setOutcome(`${what}: in progress…`);
    try {
      const slug = agent.slug;
      let r;
      if (what === 'remove') r = await api('DELETE', `/agents/${slug}`);
      else if (what === 'scale') r = await api('POST', `/agents/${slug}/scale`, { replicas: Number(replicas), ...router });
      else if (what === 'rollout') r = await api('POST', `/agents/${slug}/rollout`, { ...router, ...(version ? { version } : {}) });
      else if (what === 'register') r = await api('POST', `/agents/${slug}/register`, { markUnavailable: stateOf(agent) !== 'healthy' });
      else r = await api('POST', `/agents/${slug}/${what}`);
      setOutcome(outcomeOf(what, agent.name, r));
    } catch (e) {
      setOutcome(`${what} ${agent.name} failed: ${errorText(e)}`);
    } finally {
      setBusy('');
      refresh();
      after();
    }
  };
  const btn = (what, label, allowed, title = '') =>
    html`<button type="button" class=${CONFIRM[what] ? 'danger' : ''} disabled=${!allowed || busy !== ''} title=${title} onClick=${() => (CONFIRM[what] ? setConfirm(what) : run(what))}>${label}</button>`;
  const market = listing?.configured;
  return html`<section class="actions" aria-labelledby="actions-h">
    <h3 id="actions-h">Actions</h3>
    ${canOperate ? null : html`<p class="note">Your ${scope} token can only read: actions need an operator token${canAdmin ? '' : '; removing, registering and unregistering an admin token'}.</p>`}
    <div class="buttons">
      ${btn('start', 'Start', canOperate)} ${btn('restart', 'Restart', canOperate)} ${btn('stop', 'Stop', canOperate)}
      <span class="inline"><label for="replicas">Replicas</label><input id="replicas" type="number" min="1" max="50" value=${replicas} onInput=${(e) => setReplicas(e.currentTarget.value)} disabled=${!canOperate} />${btn('scale', 'Scale', canOperate)}</span>
      ${btn('remove', 'Remove', canAdmin)}
    </div>
    <div class="buttons">
      <span class="inline"><label for="version">Version</label><input id="version" type="text" size="8" placeholder="manifest" value=${version} onInput=${(e) => setVersion(e.currentTarget.value)} disabled=${!canOperate} /></span>
      ${btn('rollout', 'Roll out', canOperate && agent.container === 'running', agent.container === 'running' ? '' : 'a rollout needs a running agent')}
      <span class="inline"><label for="router-port">Router port</label><input id="router-port" type="number" min="1" max="65535" placeholder="8088" value=${routerPort} onInput=${(e) => setRouterPort(e.currentTarget.value)} disabled=${!canOperate} /></span>
      ${btn('register', 'Register', canAdmin && market, market ? '' : 'no marketplace is configured (MARKETPLACE_URL, MARKETPLACE_API_KEY)')}
      ${btn('unregister', 'Unregister', canAdmin && Boolean(listing?.listing))}
    </div>
    ${confirm
      ? html`<div class="confirm" role="alertdialog" aria-labelledby="confirm-q">
          <p id="confirm-q">${CONFIRM[confirm](agent.name)}</p>
          <button type="button" class="danger" ref=${confirmRef} onClick=${() => run(confirm)}>Yes, ${confirm}</button>
          <button type="button" onClick=${() => setConfirm(null)}>Cancel</button>
        </div>`
      : null}
    <p class="outcome" role="status" aria-live="polite">${outcome}</p>
  </section>`;
}

/** Most text the log panel keeps (characters): the oldest lines go first. */
const LOG_KEEP = 64 * 1024;

/** The agent's logs (last 100 lines, then live) while its primary container runs. */
function Logs({ agent }) {
  const [text, setText] = useState('');
  const [note, setNote] = useState('');
  const [follow, setFollow] = useState(true);
  const [round, setRound] = useState(0);
  const pre = useRef(null);
  const container = agent.replicas.find((r) => r.replica === 0 && r.state === 'running')?.id ?? '';
  useEffect(() => {
    if (!container || !follow) return undefined;
    const stop = new AbortController();
    setText('');
    setNote('following');
    let buf = '';
    let queued = false;
    streamText(`/agents/${agent.slug}/logs?tail=100&follow=true`, (chunk) => {
      buf = (buf + chunk).slice(-LOG_KEEP);
      // one render per frame however fast the lines come
      if (!queued) {
        queued = true;
        requestAnimationFrame(() => {
          queued = false;
          setText(buf);
        });
      }
    }, stop.signal)
      .then(() => stop.signal.aborted || setNote('the stream ended (the container stopped, or the manager\'s limit passed)'))
      .catch((e) => setNote(`logs: ${errorText(e)}`));
    return () => stop.abort();
  }, [agent.slug, container, follow, round]);
  useEffect(() => {
    const el = pre.current;
    if (el && follow) el.scrollTop = el.scrollHeight;
  }, [text]);
  return html`<section aria-labelledby="logs-h">
    <h3 id="logs-h">Logs</h3>
    <div class="buttons">
      <label class="inline"><input type="checkbox" checked=${follow} onChange=${(e) => setFollow(e.currentTarget.checked)} /> Follow live</label>
      <button type="button" onClick=${() => setRound((n) => n + 1)} disabled=${!container}>Reload</button>
      <span class="note" role="status">${container ? note : 'no running container'}</span>
    </div>
    <pre class="logs" ref=${pre} tabindex="0" aria-label=${`Logs of ${agent.name}`} data-logs>${text}</pre>
  </section>`;
}

function Charts({ history }) {
  const calls = history.map((s) => ({ t: s.t, v: s.throughputPerS }));
  const p95 = history.filter((s) => s.calls > 0).map((s) => ({ t: s.t, v: s.p95 }));
  return html`<section aria-labelledby="charts-h">
    <h3 id="charts-h">Throughput and latency</h3>
    <div class="charts">
      <${Sparkline} points=${calls} label="Calls per second" digits=${2} />
      <${Sparkline} points=${p95} label="p95 latency" unit=" ms" digits=${0} />
    </div>
    <p class="note">The gateway's figures, a point every 5 s since this page opened, 10 minutes at most (calls per second over the last minute; p95 over the last 2048 calls).</p>
  </section>`;
}

function Events({ events }) {
  return html`<section aria-labelledby="events-h">
    <h3 id="events-h">Recent events</h3>
    ${events.length
      ? html`<ol class="events" aria-live="polite" data-events>${[...events].reverse().map((ev) => html`<li key=${ev.seq}><time datetime=${ev.ts}>${when(ev.ts)}</time> ${eventLine(ev)}</li>`)}</ol>`
      : html`<p class="note">No event about this agent since the page opened.</p>`}
  </section>`;
}

function History({ entries, error }) {
  return html`<section aria-labelledby="history-h">
    <h3 id="history-h">Lifecycle history</h3>
    ${error
      ? html`<p class="error">${error}</p>`
      : !entries
        ? html`<p>Loading…</p>`
        : !entries.length
          ? html`<p class="note">Nothing recorded yet.</p>`
          : html`<div class="table-wrap"><table class="cards" data-history>
              <caption class="sr-only">Newest first</caption>
              <thead><tr><th scope="col">When</th><th scope="col">Event</th><th scope="col">Detail</th></tr></thead>
              <tbody>${[...entries].reverse().slice(0, 50).map((e, i) => html`<tr key=${i} data-event=${e.event}><td data-label="When"><time datetime=${e.at}>${when(e.at)}</time></td><td data-label="Event">${e.event}</td><td data-label="Detail">${e.reason ?? (e.status ? `status ${e.status}` : '')}</td></tr>`)}</tbody>
            </table></div>`}
  </section>`;
}

function Listing({ listing, error }) {
  let body;
  if (error) body = html`<p class="error">${error}</p>`;
  else if (!listing) body = html`<p>Loading…</p>`;
  else if (!listing.listing) body = html`<p data-listing="none">Not listed${listing.configured ? '' : ' (this manager has no marketplace: set MARKETPLACE_URL and MARKETPLACE_API_KEY)'}.</p>`;
  else {
    const l = listing.listing;
    body = html`<p data-listing=${l.status}>Listed <span class=${`badge ${l.status === 'available' ? 'healthy' : 'stopped'}`}>${l.status}</span> at ${l.url} (id ${l.id}, sent ${when(l.registeredAt)})${l.pending ? html`; <strong>pending: ${l.pending}</strong> (the marketplace could not be reached; the next lifecycle command or register retries it)` : ''}.</p>`;
  }
  return html`<section aria-labelledby="listing-h"><h3 id="listing-h">Marketplace listing</h3>${body}</section>`;
}

export function AgentView({ agent, perf, perfHistory, events, scope, back, refresh, refreshPerf }) {
  const [tools, setTools] = useState(null);
  const [error, setError] = useState('');
  const [history, setHistory] = useState({});
  const [listing, setListing] = useState({});
  const running = agent?.container === 'running';
  // only a healthy agent is in rotation: asking a starting one would answer 503
  const healthy = agent ? stateOf(agent) === 'healthy' : false;
  const slug = agent?.slug;
  useEffect(() => {
    if (!agent || !healthy) return;
    setError('');
    api('GET', `/agents/${agent.slug}/tools`)
      .then((t) => setTools(t))
      .catch((e) => setError(errorText(e)));
  }, [slug, healthy]);
  const loadRecords = () => {
    if (!slug) return;
    api('GET', `/agents/${slug}/history`).then((r) => setHistory({ entries: r.history }), (e) => setHistory({ error: errorText(e) }));
    api('GET', `/agents/${slug}/listing`).then((r) => setListing({ data: r }), (e) => setListing({ error: errorText(e) }));
  };
  // the history and listing follow the agent's events (a status change writes the history):
  // read once 1 s after the last of a burst, not once per event
  const lastSeq = events.at(-1)?.seq ?? 0;
  useEffect(() => loadRecords(), [slug]);
  useEffect(() => {
    if (!lastSeq) return undefined;
    const t = setTimeout(loadRecords, 1000);
    return () => clearTimeout(t);
  }, [lastSeq]);
  const headRef = useRef(null);
  useEffect(() => headRef.current?.focus(), [slug]);
  if (!agent) return html`<section><p>This agent no longer exists.</p><button type="button" onClick=${back}>Back to the fleet</button></section>`;
  const st = stateOf(agent);
  const p = perf[agent.slug];
  return html`<section class="agent" aria-labelledby="agent-h">
    <p><a href="#/" onClick=${(e) => (e.preventDefault(), back())}>← Fleet</a></p>
    <h2 id="agent-h" tabindex="-1" ref=${headRef}>${agent.name} <span class=${`badge ${st}`} data-agent-state=${st}>${st}</span></h2>
    <dl class="facts">
      <div><dt>URL</dt><dd>${agent.url}</dd></div>
      <div><dt>Version</dt><dd>${agent.version ?? tools?.version ?? '–'}</dd></div>
      <div><dt>Uptime</dt><dd>${tools?.uptimeS !== undefined && running ? `${tools.uptimeS} s` : '–'}</dd></div>
      <div><dt>Replicas</dt><dd>${agent.inRotation}/${agent.replicas.length} in rotation</dd></div>
      <div><dt>Capabilities</dt><dd>${agent.capabilities.join(', ') || '–'}</dd></div>
      <div><dt>Calls/s · p95</dt><dd>${p ? `${p.throughputPerS.toFixed(2)} · ${p.latencyMs.p95.toFixed(0)} ms` : '–'}</dd></div>
    </dl>
    <${Actions} agent=${agent} scope=${scope} refresh=${refresh} listing=${listing.data} after=${loadRecords} />
    <div class="two">
      <${Events} events=${events} />
      <${Charts} history=${perfHistory} />
    </div>
    <${Logs} agent=${agent} />
    <div class="two">
      <${History} entries=${history.entries} error=${history.error} />
      <${Listing} listing=${listing.data} error=${listing.error} />
    </div>
    <section aria-labelledby="tools-h">
      <h3 id="tools-h">Tools</h3>
      ${!healthy ? html`<p class="note">${running ? 'Waiting for the agent to become healthy…' : 'Start the agent to run its tools.'}</p>` : error ? html`<p class="error">${error}</p>` : !tools ? html`<p>Loading tools…</p>` : tools.tools.map((t) => html`<${ToolForm} key=${t.name} agent=${agent.slug} tool=${t} canRun=${allows(scope, 'operator')} ran=${refreshPerf} />`)}
    </section>
  </section>`;
}
