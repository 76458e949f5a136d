/**
 * The dashboard benchmarks (issue 11 Benchmark), with Debian's chromium (/usr/bin/chromium, driven
 * by playwright-core, the browser of the dashboard's tests):
 * 1. time to a usable fleet view with 100 agents: from opening the page to the 100 rows shown
 *    with their state, split into page load (the sign-in form ready) and sign-in -> 100 rows;
 *    the reference is one `GET /api/v1/agents` (what the page needs) from Node in the same run;
 * 2. delay from a status change to the page: an agent stopped (or started) through the API, timed
 *    from the request to the moment its row's state changes in the page (a MutationObserver
 *    stamps it with Date.now(), the same clock as the request's); the reference is the same
 *    change's first event on a plain SSE client of /api/v1/events in Node.
 * The manager is a real `createManager` listening on 127.0.0.1 with 100 recorded agents whose
 * engine is the in-memory FakeEngine (src/engine/fake.ts) and whose /health probe answers from
 * the fake's containers: 100 real containers do not fit this 2-core machine beside the others.
 * So the figures are the manager's and the page's own work, not Docker's. The rate limit is
 * raised for the run (all its clients share 127.0.0.1).
 * Run: `npm run bench -- --dashboard-only [--changes 40] [--rounds 5]`; prints the BENCHMARKS.md section.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// functions run in the page are type-checked without the DOM's types: they reach it as `globalThis as any`
/* eslint-disable @typescript-eslint/no-explicit-any */
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { buildDashboard } from '../../dashboard/build.js';
import { loadConfig } from '../../src/config/config.js';
import { FakeEngine } from '../../src/engine/fake.js';
import { createAgent, startAgents } from '../../src/fleet/manager.js';
import { createManager } from '../../src/server/manager.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'bench-dashboard-bootstrap-token-0123456789';
const AGENTS = 100;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN;
};
const med = (xs: number[]) => pct(xs, 50);

/** Wait until `fn` is true, checking every `everyMs`; throws after `timeoutMs`. */
async function until(fn: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 5): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error('bench: timed out waiting');
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function dashboardBench(opts: { changes: number; rounds: number }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nexus-bench-dashboard-'));
  const assets = await mkdtemp(join(tmpdir(), 'nexus-bench-dashboard-assets-'));
  const profile = await mkdtemp(join(tmpdir(), 'nexus-bench-chromium-'));
  let browser: BrowserContext | undefined;
  let close: (() => Promise<void>) | undefined;
  const sse = new AbortController();
  try {
    await buildDashboard(assets);
    const env = { NEXUS_MANAGER_TOKEN: TOKEN, NEXUS_OFFLINE: 'always', NEXUS_PORT_RANGE: '42000-42199' };
    const engine = new FakeEngine();
    const portOf = (url: string) => Number(new URL(url).port);
    const running = (port: number) => [...engine.containers.values()].some((c) => c.state === 'running' && c.spec.hostPort?.port === port);
    const probe = { health: async (url: string) => ({ ok: running(portOf(url)) }), tools: async () => [{ name: 'echo', description: 'echo', parameters: { type: 'object' } }] };
    // the limiter off (100 requests/min per client by default): every page, round and change here
    // comes from 127.0.0.1, and this measures the page's delay, not the limiter's
    const m = await createManager({ config: loadConfig(dir, env), env, engine, probe, dashboardDir: assets, limits: { api: { perMinute: 1_000_000 } } });
    close = () => m.close();
    const names = Array.from({ length: AGENTS }, (_, i) => `BenchAgent${String(i).padStart(3, '0')}`);
    for (const name of names) await createAgent(m.fleet.deps, { name, capabilities: [i3(name)] });
    await startAgents(m.fleet.deps, 'all');
    const base = await m.app.listen({ host: '127.0.0.1', port: 0 });
    const api = (method: string, path: string) => fetch(`${base}/api/v1${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` } });

    // the reference of (1): what the page needs, asked from Node
    const apiMs: number[] = [];
    for (let i = 0; i < opts.rounds; i++) {
      const t = performance.now();
      const body = (await (await api('GET', '/agents')).json()) as { agents: unknown[] };
      apiMs.push(performance.now() - t);
      if (body.agents.length !== AGENTS) throw new Error(`bench: ${body.agents.length} agents listed`);
    }

    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--headless', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const loadMs: number[] = [];
    const signInMs: number[] = [];
    let page: Page | undefined;
    for (let i = 0; i < opts.rounds; i++) {
      await page?.close();
      page = await browser.newPage();
      await page.setViewportSize({ width: 1280, height: 800 });
      const t0 = Date.now();
      await page.goto(`${base}/`);
      await page.getByLabel('Manager token').waitFor();
      const t1 = Date.now();
      await page.getByLabel('Manager token').fill(TOKEN);
      const t2 = Date.now();
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForFunction((n) => (globalThis as any).document.querySelectorAll('tr[data-agent][data-state="healthy"]').length === n, AGENTS, { polling: 'raf', timeout: 30_000 });
      const t3 = Date.now();
      loadMs.push(t1 - t0);
      signInMs.push(t3 - t2);
    }
    const usable = loadMs.map((l, i) => l + signInMs[i]!);

    // (2): status changes, the page's row vs a plain SSE client
    await page!.waitForFunction(() => (globalThis as any).document.querySelector('.live')?.textContent === 'stream: live', undefined, { timeout: 10_000 });
    await page!.evaluate(() => {
      const w = (globalThis as any);
      w.seen = {};
      new w.MutationObserver((records: { target: { dataset: Record<string, string> }; attributeName: string }[]) => {
        const at = Date.now();
        for (const r of records) {
          const el = r.target;
          if (r.attributeName !== 'data-state' || !el.dataset.agent) continue;
          (w.seen[el.dataset.agent!] ??= []).push({ state: el.dataset.state, at });
        }
      }).observe(w.document.querySelector('table.fleet tbody'), { attributes: true, subtree: true, attributeFilter: ['data-state'] });
    });
    const firstEvent = new Map<string, number>();
    const stream = await fetch(`${base}/api/v1/events`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: sse.signal });
    void (async () => {
      const reader = stream.body!.getReader();
      const dec = new TextDecoder();
      let buf = '';
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          buf += dec.decode(value, { stream: true });
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const data = frame.split('\n').find((l) => l.startsWith('data: '));
            if (!data) continue;
            const ev = JSON.parse(data.slice(6)) as { agent?: string; topic: string };
            if (ev.agent && ev.topic === 'agents' && !firstEvent.has(ev.agent)) firstEvent.set(ev.agent, Date.now());
          }
        }
      } catch {
        // aborted at the end
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    const pageDelay: number[] = [];
    const sseDelay: number[] = [];
    const apiDone: number[] = [];
    for (let i = 0; i < Math.min(opts.changes, AGENTS); i++) {
      const slug = `bench-agent${String(i).padStart(3, '0')}`;
      const want = 'stopped';
      firstEvent.delete(slug);
      await page!.evaluate((s) => void delete (globalThis as any).seen[s], slug);
      const t0 = Date.now();
      const res = await api('POST', `/agents/${slug}/stop?timeout=0`);
      apiDone.push(Date.now() - t0);
      if (res.status !== 200) throw new Error(`bench: stop answered ${res.status}`);
      let at = 0;
      await until(async () => {
        const seen = (await page!.evaluate((s) => (globalThis as any).seen[s] ?? [], slug)) as { state: string; at: number }[];
        at = seen.find((x) => x.state === want)?.at ?? 0;
        return at > 0;
      }, 20_000, 20);
      pageDelay.push(at - t0);
      sseDelay.push((firstEvent.get(slug) ?? NaN) - t0);
    }
    const f = (n: number) => n.toFixed(0);
    const date = new Date().toISOString().slice(0, 10);
    return [
      `## Dashboard: time to a usable fleet view and live delay (\`npm run bench -- --dashboard-only\`)`,
      '',
      `${date}, this 2-core machine shared with other work, ${CHROMIUM} (headless, 1280x800) via playwright-core; a real manager (createManager on 127.0.0.1) with ${AGENTS} recorded agents on the in-memory FakeEngine (no Docker: 100 containers do not fit here; the /health probe answers from the fake's containers; the API rate limit raised, since every client of the run is 127.0.0.1). Median of ${opts.rounds} page loads, ${opts.changes} status changes (an agent stopped through the API).`,
      '',
      '| measure | ms |',
      '| --- | ---: |',
      `| page load: open / to the sign-in form ready (median) | ${f(med(loadMs))} |`,
      `| sign-in -> ${AGENTS} rows shown healthy (median) | ${f(med(signInMs))} |`,
      `| **time to a usable fleet view** (sum, median; goal < 1000) | **${f(med(usable))}** |`,
      `| same, worst of ${opts.rounds} | ${f(Math.max(...usable))} |`,
      `| reference: one GET /api/v1/agents from Node (median) | ${f(med(apiMs))} |`,
      `| ratio usable view / API answer | ${(med(usable) / med(apiMs)).toFixed(1)} |`,
      `| stop request answered (p50 / p95) | ${f(med(apiDone))} / ${f(pct(apiDone, 95))} |`,
      `| reference: first event of the change on a plain SSE client (p50 / p95) | ${f(med(sseDelay))} / ${f(pct(sseDelay, 95))} |`,
      `| **status change -> row changed in the page** (p50 / **p95**; goal p95 < 1000) | ${f(med(pageDelay))} / **${f(pct(pageDelay, 95))}** |`,
      `| ratio page / SSE client (p95) | ${(pct(pageDelay, 95) / pct(sseDelay, 95)).toFixed(1)} |`,
      '',
      `Goals: usable view ${med(usable) < 1000 ? 'met' : 'NOT met'}; p95 delay ${pct(pageDelay, 95) < 1000 ? 'met' : 'NOT met'}. The page re-reads only the changed agent's row (GET /api/v1/agents/{slug}) when its event arrives, so the delay is the event's own plus one row read.`,
    ].join('\n');
  } finally {
    sse.abort();
    await browser?.close().catch(() => undefined);
    await close?.().catch(() => undefined);
    for (const d of [dir, assets, profile]) await rm(d, { recursive: true, force: true });
  }
}

/** A capability per tenth of the agents, so the filter has choices. */
function i3(name: string): string {
  return ['data', 'math', 'text', 'image', 'code'][Number(name.slice(-2)) % 5]!;
}
