// The fleet dashboard (issue 11): sign-in, then the fleet view (fleet-view.js), an agent's view
// (agent-view.js) or the tasks view (tasks-view.js), routed by the URL's hash (#/, #/agent/<slug>,
// #/tasks). One event stream (/api/v1/events) keeps everything live: an agent's event re-reads
// that agent's row only, a metrics snapshot (every 5 s) re-reads the gateway's figures and adds a
// point to the charts, a task event reloads the tasks view.
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { AgentView } from './agent-view.js';
import { allows, api, ApiError, followEvents, setToken } from './api.js';
import { Fleet } from './fleet-view.js';
import { TasksView } from './tasks-view.js';
import { errorText, html } from './ui.js';

export { stateOf } from './ui.js';

/** Events kept per agent for its view, task events for the tasks view; chart points per agent (10 min at 5 s). */
const KEEP_EVENTS = 20;
const KEEP_TASK_EVENTS = 50;
const KEEP_POINTS = 120;
/** Least time between two reads of the gateway's figures on snapshots, and of one agent's row on its events, ms. */
const PERF_EVERY_MS = 4500;
const ROW_EVERY_MS = 500;

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

const routeOf = () => {
  if (location.hash === '#/tasks') return { view: 'tasks' };
  const m = /^#\/agent\/([a-z0-9-]+)$/.exec(location.hash);
  return m ? { view: 'agent', slug: m[1] } : { view: 'fleet' };
};

function App() {
  const [who, setWho] = useState(null);
  const [agents, setAgents] = useState(null);
  const [perf, setPerf] = useState({});
  const [perfHistory, setPerfHistory] = useState({});
  const [agentEvents, setAgentEvents] = useState({});
  const [taskEvents, setTaskEvents] = useState([]);
  const [loadError, setLoadError] = useState('');
  const [live, setLive] = useState('connecting');
  const [route, setRoute] = useState(routeOf());
  const timers = useRef(new Map());

  useEffect(() => {
    const on = () => setRoute(routeOf());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);

  const lastPerf = useRef(0);
  // on a metrics snapshot: at most every PERF_EVERY_MS, whatever the manager's interval
  const perfTick = () => {
    if (Date.now() - lastPerf.current >= PERF_EVERY_MS) void loadPerf();
  };
  const loadPerf = () =>
    ((lastPerf.current = Date.now()), api('GET', '/metrics/performance'))
      .then((r) => {
        const t = Date.now();
        setPerf(Object.fromEntries(r.agents.map((a) => [a.agent, a])));
        setPerfHistory((h) => {
          const next = { ...h };
          for (const a of r.agents) next[a.agent] = [...(h[a.agent] ?? []), { t, throughputPerS: a.throughputPerS, p95: a.latencyMs.p95, calls: a.calls }].slice(-KEEP_POINTS);
          return next;
        });
      })
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
      // over the manager's rate limit: once more when the minute has moved on
      else if (e instanceof ApiError && e.status === 429 && !retry) setTimeout(() => void refreshOne(slug, true), 10_000);
    }
  };
  // An event may arrive before the manager's snapshot (1 s) moves on: read the row now, and once
  // more 1.5 s after the last event. A burst of events (a rollout sends dozens) costs one read per
  // ROW_EVERY_MS at most: the manager's rate limit (100 requests/min per client) is shared by
  // every page and script of this host.
  const onAgentEvent = (slug) => {
    const t = timers.current.get(slug) ?? { last: 0, soon: 0, after: 0 };
    timers.current.set(slug, t);
    const wait = t.last + ROW_EVERY_MS - Date.now();
    if (wait <= 0) {
      t.last = Date.now();
      void refreshOne(slug);
    } else if (!t.soon) {
      t.soon = setTimeout(() => {
        t.soon = 0;
        t.last = Date.now();
        void refreshOne(slug);
      }, wait);
    }
    clearTimeout(t.after);
    t.after = setTimeout(() => void refreshOne(slug), 1500);
  };

  useEffect(() => {
    if (!who) return undefined;
    api('GET', '/agents')
      .then((r) => setAgents(r.agents))
      .catch((e) => setLoadError(errorText(e)));
    void loadPerf();
    const close = followEvents((ev) => {
      if (ev.type === 'metrics.snapshot') return perfTick();
      if (ev.topic === 'tasks') return setTaskEvents((l) => [...l, ev].slice(-KEEP_TASK_EVENTS));
      if (ev.agent && ev.topic === 'agents') {
        setAgentEvents((m) => ({ ...m, [ev.agent]: [...(m[ev.agent] ?? []), ev].slice(-KEEP_EVENTS) }));
        onAgentEvent(ev.agent);
      }
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
  const agent = route.view === 'agent' && agents ? agents.find((a) => a.slug === route.slug) : undefined;
  let view;
  if (!agents) view = html`<p>Loading agents…</p>`;
  else if (route.view === 'tasks') view = html`<${TasksView} scope=${who.scope} taskEvents=${taskEvents} agents=${agents} />`;
  else if (route.view === 'agent')
    view = html`<${AgentView} agent=${agent} perf=${perf} perfHistory=${perfHistory[route.slug] ?? []} events=${agentEvents[route.slug] ?? []} scope=${who.scope} back=${back} refresh=${() => (onAgentEvent(route.slug), loadPerf())} refreshPerf=${loadPerf} />`;
  else view = html`<${Fleet} agents=${agents} perf=${perf} open=${open} />`;
  const may = allows(who.scope, 'admin') ? 'may read, run tools, start, stop, scale, roll out, remove and register' : allows(who.scope, 'operator') ? 'may read, run tools, start, stop, scale, roll out and drive tasks' : 'may read only';
  return html`<div class="app">
    <header>
      <h1>Nexus Delta fleet</h1>
      <nav aria-label="Views"><a href="#/" aria-current=${route.view === 'fleet' ? 'page' : undefined}>Fleet</a> <a href="#/tasks" aria-current=${route.view === 'tasks' ? 'page' : undefined}>Tasks</a></nav>
      <p class="who">Signed in: <strong data-scope=${who.scope}>${who.scope}</strong>${who.label ? ` (${who.label})` : ''} — ${may}
        <span class=${`live ${live}`} role="status">stream: ${live}</span>
        <button type="button" onClick=${signOut}>Sign out</button></p>
    </header>
    <main>
      ${loadError ? html`<p class="error" role="alert">Could not load the fleet: ${loadError}</p>` : null}
      ${view}
    </main>
  </div>`;
}

const root = document.getElementById('root');
// the static "Loading…" note goes: preact appends to what the container already holds
root.textContent = '';
render(html`<${App} />`, root);
