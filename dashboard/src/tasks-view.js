// The tasks view (issue 11 §5): queued, running, failed and dead tasks, newest first, with cancel
// (queued or running) and re-drive (dead) for operator tokens. It reloads when a task event
// arrives on the page's stream, 700 ms after the last of a burst (4 requests a reload: the
// manager's rate limit is 100 requests/min per client).
import { useEffect, useRef, useState } from 'preact/hooks';
import { allows, api } from './api.js';
import { errorText, eventLine, html, when } from './ui.js';

const SHOWN = ['queued', 'running', 'failed', 'dead'];

function TaskTable({ status, tasks, canOperate, act, busy }) {
  return html`<section aria-labelledby=${`tasks-${status}-h`} data-tasks=${status}>
    <h3 id=${`tasks-${status}-h`}>${status[0].toUpperCase() + status.slice(1)} <span class="count">(${tasks.length})</span></h3>
    ${tasks.length === 0
      ? html`<p class="note">None.</p>`
      : html`<div class="table-wrap"><table class="cards">
          <caption class="sr-only">${status} tasks, newest first</caption>
          <thead><tr><th scope="col">Task</th><th scope="col">Agent</th><th scope="col">Tool</th><th scope="col">Attempts</th><th scope="col">Created</th><th scope="col">Error</th><th scope="col">Actions</th></tr></thead>
          <tbody>
            ${tasks.map(
              (t) => html`<tr key=${t.task_id} data-task=${t.task_id}>
                <th scope="row" data-label="Task"><code>${t.task_id}</code></th>
                <td data-label="Agent">${t.ran_on_agent ?? t.agent ?? (t.capability ? `capability ${t.capability}` : '–')}</td>
                <td data-label="Tool">${t.tool_name}</td>
                <td data-label="Attempts">${t.attempts.filter((a) => a.run === t.run).length}/${t.max_attempts}${t.run ? ` (run ${t.run + 1})` : ''}</td>
                <td data-label="Created"><time datetime=${t.created_at}>${when(t.created_at)}</time></td>
                <td data-label="Error" class="wrap">${t.error ?? ''}</td>
                <td data-label="Actions">
                  ${status === 'queued' || status === 'running'
                    ? html`<button type="button" class="danger" disabled=${!canOperate || busy} aria-label=${`Cancel task ${t.task_id}`} onClick=${() => act('cancel', t)}>Cancel</button>`
                    : status === 'dead'
                      ? html`<button type="button" disabled=${!canOperate || busy} aria-label=${`Re-drive task ${t.task_id}`} onClick=${() => act('retry', t)}>Re-drive</button>`
                      : null}
                </td>
              </tr>`,
            )}
          </tbody>
        </table></div>`}
  </section>`;
}

export function TasksView({ scope, taskEvents, agents }) {
  const [lists, setLists] = useState(null);
  const [error, setError] = useState('');
  const [agent, setAgent] = useState('');
  const [confirm, setConfirm] = useState(null);
  const [outcome, setOutcome] = useState('');
  const [busy, setBusy] = useState(false);
  const canOperate = allows(scope, 'operator');
  const confirmRef = useRef(null);
  useEffect(() => confirmRef.current?.focus(), [confirm]);
  const load = async () => {
    try {
      const q = agent ? `&agent=${encodeURIComponent(agent)}` : '';
      const pages = await Promise.all(SHOWN.map((s) => api('GET', `/tasks?status=${s}&limit=50${q}`)));
      setLists(Object.fromEntries(SHOWN.map((s, i) => [s, pages[i].tasks])));
      setError('');
    } catch (e) {
      setError(errorText(e));
    }
  };
  const lastSeq = taskEvents.at(-1)?.seq ?? 0;
  const timer = useRef(0);
  useEffect(() => {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => void load(), lastSeq ? 700 : 0);
    return () => clearTimeout(timer.current);
  }, [lastSeq, agent]);
  const act = async (what, t) => {
    if (what === 'cancel' && !confirm) return setConfirm(t);
    setConfirm(null);
    setBusy(true);
    setOutcome(`${what === 'cancel' ? 'cancel' : 're-drive'} ${t.task_id}: in progress…`);
    try {
      if (what === 'cancel') {
        const r = await api('DELETE', `/tasks/${t.task_id}`);
        setOutcome(`cancel ${t.task_id}: ${r.status}${r.cancel_requested && r.status === 'running' ? ' (cancel requested: the running call is stopped)' : ''}`);
      } else {
        const r = await api('POST', `/tasks/${t.task_id}/retry`);
        setOutcome(`re-drive ${t.task_id}: ${r.status}`);
      }
    } catch (e) {
      setOutcome(`${what === 'cancel' ? 'cancel' : 're-drive'} ${t.task_id} failed: ${errorText(e)}`);
    } finally {
      setBusy(false);
      void load();
    }
  };
  return html`<section aria-labelledby="tasks-h">
    <h2 id="tasks-h" tabindex="-1">Tasks</h2>
    ${canOperate ? null : html`<p class="note">Your ${scope} token can only read: cancelling and re-driving need an operator token.</p>`}
    <div class="filters">
      <label>Agent <select value=${agent} onChange=${(e) => setAgent(e.currentTarget.value)}><option value="">all</option>${(agents ?? []).map((a) => html`<option value=${a.slug}>${a.name}</option>`)}</select></label>
      <button type="button" onClick=${() => void load()}>Reload</button>
    </div>
    ${confirm
      ? html`<div class="confirm" role="alertdialog" aria-labelledby="task-confirm-q">
          <p id="task-confirm-q">Cancel task ${confirm.task_id} (${confirm.tool_name})? A running call is stopped; the task ends cancelled.</p>
          <button type="button" class="danger" ref=${confirmRef} onClick=${() => act('cancel', confirm)}>Yes, cancel it</button>
          <button type="button" onClick=${() => setConfirm(null)}>Keep it</button>
        </div>`
      : null}
    <p class="outcome" role="status" aria-live="polite">${outcome}</p>
    ${error ? html`<p class="error" role="alert">Could not load the tasks: ${error}</p>` : null}
    ${!lists ? html`<p>Loading tasks…</p>` : SHOWN.map((s) => html`<${TaskTable} key=${s} status=${s} tasks=${lists[s]} canOperate=${canOperate} act=${act} busy=${busy} />`)}
    <section aria-labelledby="task-events-h">
      <h3 id="task-events-h">Task events</h3>
      ${taskEvents.length ? html`<ol class="events" data-task-events>${[...taskEvents].reverse().slice(0, 20).map((ev) => html`<li key=${ev.seq}><time datetime=${ev.ts}>${when(ev.ts)}</time> ${eventLine(ev)}</li>`)}</ol>` : html`<p class="note">No task event since the page opened.</p>`}
    </section>
  </section>`;
}
