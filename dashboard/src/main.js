// The fleet dashboard (issue 11): sign-in, fleet view, agent view with tool forms and actions.
import { h, render } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import { allows, api, ApiError, followAgents, setToken } from './api.js';
import { FieldError, fieldsOf, valuesToParameters } from './schema-form.js';

const html = htm.bind(h);

const errorText = (e) => (e instanceof ApiError ? `${e.code}: ${e.message}${e.hint ? ` (${e.hint})` : ''}` : String(e?.message ?? e));
const mib = (bytes) => (bytes ? (bytes / 1048576).toFixed(1) : '–');
const pct = (x) => (x === undefined ? '–' : x.toFixed(1));

/** An agent's state in one word: stopped (no running container), healthy or unhealthy. */
export function stateOf(a) {
  if (a.container !== 'running') return 'stopped';
  return a.health === 'healthy' ? 'healthy' : 'unhealthy';
}

function SignIn({ onSignedIn }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (ev) => {
    ev.preventDefault();
    setBusy(true);
    setError('');
    setToken(value.trim());
    try {
      const who = await api('GET', '/whoami');
      onSignedIn(who);
    } catch (e) {
      setToken('');
      setError(e instanceof ApiError && e.status === 401 ? 'Sign-in failed: the manager refused this token (unknown, expired or revoked).' : `Sign-in failed: ${errorText(e)}`);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <h1>Nexus Delta fleet</h1>
    <form onSubmit=${submit} aria-describedby="signin-note">
      <label for="token">Manager token</label>
      <input id="token" name="token" type="password" autocomplete="off" required value=${value} onInput=${(e) => setValue(e.currentTarget.value)} aria-invalid=${error ? 'true' : 'false'} aria-describedby="signin-error" />
      <button type="submit" disabled=${busy}>${busy ? 'Signing in…' : 'Sign in'}</button>
      <p id="signin-error" class="error" role="alert">${error}</p>
      <p id="signin-note" class="note">The token stays in this tab's memory only; reloading the page signs you out. Create one with <code>agent token create --scope viewer</code>.</p>
    </form>
  </main>`;
}

function Counts({ agents }) {
  const c = { healthy: 0, unhealthy: 0, stopped: 0 };
  for (const a of agents) c[stateOf(a)]++;
  return html`<ul class="counts" aria-label="Fleet health">
    <li class="healthy"><strong data-count="healthy">${c.healthy}</strong> healthy</li>
    <li class="unhealthy"><strong data-count="unhealthy">${c.unhealthy}</strong> unhealthy</li>
    <li class="stopped"><strong data-count="stopped">${c.stopped}</strong> stopped</li>
  </ul>`;
}

function Fleet({ agents, perf, open }) {
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

function Actions({ agent, scope, refresh }) {
  const [confirm, setConfirm] = useState(null);
  const [outcome, setOutcome] = useState('');
  const [busy, setBusy] = useState('');
  const [replicas, setReplicas] = useState(String(Math.max(1, agent.replicas.length)));
  const confirmRef = useRef(null);
  useEffect(() => confirmRef.current?.focus(), [confirm]);
  const canOperate = allows(scope, 'operator');
  const canAdmin = allows(scope, 'admin');
  const run = async (what) => {
    setConfirm(null);
    setBusy(what);
    setOutcome(`${what}: in progress…`);
    try {
      const slug = agent.slug;
      let r;
      if (what === 'remove') r = await api('DELETE', `/agents/${slug}`);
      else if (what === 'scale') r = await api('POST', `/agents/${slug}/scale`, { replicas: Number(replicas) });
      else r = await api('POST', `/agents/${slug}/${what}`);
      const one = r.agents?.[0];
      setOutcome(`${what} ${agent.name}: ${one?.outcome ?? (one?.removed !== undefined ? `${one.removed} container(s) stopped` : r.replicas !== undefined ? `${r.replicas} replica(s)` : 'done')}${one?.error ? ` (${one.error.message})` : ''}`);
    } catch (e) {
      setOutcome(`${what} ${agent.name} failed: ${errorText(e)}`);
    } finally {
      setBusy('');
      refresh();
    }
  };
  const btn = (what, label, allowed, destructive) =>
    html`<button type="button" class=${destructive ? 'danger' : ''} disabled=${!allowed || busy !== ''} onClick=${() => (destructive ? setConfirm(what) : run(what))}>${label}</button>`;
  return html`<section class="actions" aria-labelledby="actions-h">
    <h3 id="actions-h">Actions</h3>
    ${canOperate ? null : html`<p class="note">Your ${scope} token can only read: actions need an operator token${canAdmin ? '' : ', removing an agent an admin token'}.</p>`}
    <div class="buttons">
      ${btn('start', 'Start', canOperate)} ${btn('restart', 'Restart', canOperate)} ${btn('stop', 'Stop', canOperate, true)}
      <span class="scale"><label for="replicas">Replicas</label><input id="replicas" type="number" min="1" max="50" value=${replicas} onInput=${(e) => setReplicas(e.currentTarget.value)} disabled=${!canOperate} />${btn('scale', 'Scale', canOperate)}</span>
      ${btn('remove', 'Remove', canAdmin, true)}
    </div>
    ${confirm
      ? html`<div class="confirm" role="alertdialog" aria-labelledby="confirm-q">
          <p id="confirm-q">${confirm === 'stop' ? `Stop ${agent.name}? Its containers are removed; in-flight calls finish.` : `Remove ${agent.name}? Its containers, image and record are deleted.`}</p>
          <button type="button" class="danger" ref=${confirmRef} onClick=${() => run(confirm)}>Yes, ${confirm}</button>
          <button type="button" onClick=${() => setConfirm(null)}>Cancel</button>
        </div>`
      : null}
    <p class="outcome" role="status" aria-live="polite">${outcome}</p>
  </section>`;
}

function AgentView({ agent, perf, scope, back, refresh, refreshPerf }) {
  const [tools, setTools] = useState(null);
  const [error, setError] = useState('');
  const running = agent?.container === 'running';
  // only a healthy agent is in rotation: asking a starting one would answer 503
  const healthy = agent ? stateOf(agent) === 'healthy' : false;
  useEffect(() => {
    if (!agent || !healthy) return;
    setError('');
    api('GET', `/agents/${agent.slug}/tools`)
      .then((t) => setTools(t))
      .catch((e) => setError(errorText(e)));
  }, [agent?.slug, healthy]);
  const headRef = useRef(null);
  useEffect(() => headRef.current?.focus(), [agent?.slug]);
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
    <${Actions} agent=${agent} scope=${scope} refresh=${refresh} />
    <section aria-labelledby="tools-h">
      <h3 id="tools-h">Tools</h3>
      ${!healthy ? html`<p class="note">${running ? 'Waiting for the agent to become healthy…' : 'Start the agent to run its tools.'}</p>` : error ? html`<p class="error">${error}</p>` : !tools ? html`<p>Loading tools…</p>` : tools.tools.map((t) => html`<${ToolForm} key=${t.name} agent=${agent.slug} tool=${t} canRun=${allows(scope, 'operator')} ran=${refreshPerf} />`)}
    </section>
  </section>`;
}

const routeOf = () => {
  const m = /^#\/agent\/([a-z0-9-]+)$/.exec(location.hash);
  return m ? m[1] : '';
};

function App() {
  const [who, setWho] = useState(null);
  const [agents, setAgents] = useState(null);
  const [perf, setPerf] = useState({});
  const [loadError, setLoadError] = useState('');
  const [live, setLive] = useState('connecting');
  const [route, setRoute] = useState(routeOf());
  const timers = useRef(new Map());

  useEffect(() => {
    const on = () => setRoute(routeOf());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);

  const loadPerf = () =>
    api('GET', '/metrics/performance')
      .then((r) => setPerf(Object.fromEntries(r.agents.map((a) => [a.agent, a]))))
      .catch(() => undefined);

  // one agent's row again (never the whole list): what a stream event about it triggers
  const refreshOne = async (slug, retry = false) => {
    try {
      const row = await api('GET', `/agents/${slug}`);
      setAgents((list) => (list ? (list.some((a) => a.slug === slug) ? list.map((a) => (a.slug === slug ? row : a)) : [...list, row]) : list));
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) setAgents((list) => list?.filter((a) => a.slug !== slug));
      // the request did not get through (e.g. the host's network changed): once more shortly
      else if (e instanceof ApiError && e.code === 'NETWORK' && !retry) setTimeout(() => void refreshOne(slug, true), 1000);
    }
  };
  // an event may arrive before the manager's snapshot (1 s) moves on: read now and once more shortly after
  const onAgentEvent = (slug) => {
    void refreshOne(slug);
    clearTimeout(timers.current.get(slug));
    timers.current.set(slug, setTimeout(() => void refreshOne(slug), 1500));
  };

  useEffect(() => {
    if (!who) return undefined;
    api('GET', '/agents')
      .then((r) => setAgents(r.agents))
      .catch((e) => setLoadError(errorText(e)));
    void loadPerf();
    const close = followAgents((ev) => {
      if (ev.agent) onAgentEvent(ev.agent);
    }, setLive);
    return close;
  }, [who]);

  if (!who) return html`<${SignIn} onSignedIn=${setWho} />`;
  const open = (slug) => (location.hash = `#/agent/${slug}`);
  const back = () => (location.hash = '#/');
  const signOut = () => {
    setToken('');
    setWho(null);
    setAgents(null);
  };
  const agent = route && agents ? agents.find((a) => a.slug === route) : undefined;
  return html`<div class="app">
    <header>
      <h1>Nexus Delta fleet</h1>
      <p class="who">Signed in: <strong data-scope=${who.scope}>${who.scope}</strong>${who.label ? ` (${who.label})` : ''} — ${allows(who.scope, 'admin') ? 'may read, run tools, start, stop, scale and remove' : allows(who.scope, 'operator') ? 'may read, run tools, start, stop and scale' : 'may read only'}
        <span class=${`live ${live}`} role="status">stream: ${live}</span>
        <button type="button" onClick=${signOut}>Sign out</button></p>
    </header>
    <main>
      ${loadError ? html`<p class="error" role="alert">Could not load the fleet: ${loadError}</p>` : null}
      ${!agents ? html`<p>Loading agents…</p>` : route ? html`<${AgentView} agent=${agent} perf=${perf} scope=${who.scope} back=${back} refresh=${() => (onAgentEvent(route), loadPerf())} refreshPerf=${loadPerf} />` : html`<${Fleet} agents=${agents} perf=${perf} open=${open} />`}
    </main>
  </div>`;
}

const root = document.getElementById('root');
// the static "Loading…" note goes: preact appends to what the container already holds
root.textContent = '';
render(html`<${App} />`, root);
