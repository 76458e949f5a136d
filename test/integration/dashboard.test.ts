import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDashboard } from '../../dashboard/build.js';
import { DEMO_AGENTS, runDemo } from '../../src/fleet/demo.js';
import { DASHBOARD_CSP } from '../../src/server/dashboard.js';
import { createManager, type Manager } from '../../src/server/manager.js';
import { createToken } from '../../src/server/tokens.js';
import { BOOTSTRAP } from '../helpers/manager.js';
import { makeWorkspace, type TestWorkspace } from '../helpers/workspace.js';

// The dashboard in a real browser (Debian's chromium driven by playwright-core) against a live
// manager on 127.0.0.1 with the five demo agents on the real engine. Ports 9801-9815, the local
// router of the rollout on 9819. One workspace for the whole file: the Image and Code agents'
// dependency layers take a while. Screenshots go to a temp folder, or to docs/ (the README's)
// with NEXUS_UPDATE_SCREENSHOTS=1, so a test run leaves the clone clean.
const CHROMIUM = '/usr/bin/chromium';
const ROUTER_PORT = 9819;
const UPDATE_DOCS = process.env.NEXUS_UPDATE_SCREENSHOTS === '1';
let shots: string;
let ws: TestWorkspace;
let m: Manager;
let base: string;
let assets: string;
let profile: string;
let browser: BrowserContext;
const tokens = { admin: '', viewer: '' };
const consoleErrors: string[] = [];
const requestUrls: string[] = [];
let networkChanged = 0;

/**
 * A page at `width`x`height`; its console errors are collected, except two notes of the browser's
 * own: the one 401 a test provokes on purpose, and net::ERR_NETWORK_CHANGED: Docker adding a
 * container's network interface makes Chromium's network-change notifier abort requests in
 * flight (the host's event, not the page's; the page's state is checked after each, and the
 * stream reconnects by itself). Those are counted in `networkChanged`.
 */
async function newPage(width = 1280, height = 800, expected401 = false): Promise<Page> {
  const page = await browser.newPage();
  await page.setViewportSize({ width, height });
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    if (expected401 && /status of 401/.test(msg.text())) return;
    if (/net::ERR_NETWORK_CHANGED/.test(msg.text())) return void networkChanged++;
    consoleErrors.push(`${page.url()}: ${msg.text()}`);
  });
  page.on('pageerror', (err) => consoleErrors.push(`${page.url()}: ${err.message}`));
  page.on('request', (r) => void requestUrls.push(r.url()));
  await page.goto(`${base}/`);
  return page;
}

async function signIn(page: Page, token: string): Promise<void> {
  await page.getByLabel('Manager token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

const rowState = (page: Page, slug: string) => page.locator(`tr[data-agent="${slug}"]`).getAttribute('data-state', { timeout: 2000 }).catch(() => null);

const api = (method: string, path: string, token: string, body?: unknown) =>
  fetch(`${base}/api/v1${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });

beforeAll(async () => {
  assets = await mkdtemp(join(tmpdir(), 'nexus-dashboard-'));
  shots = UPDATE_DOCS ? join(process.cwd(), 'docs') : await mkdtemp(join(tmpdir(), 'nexus-dashboard-shots-'));
  await buildDashboard(assets);
  ws = await makeWorkspace('9801-9815');
  await runDemo(ws.deps);
  // a metrics snapshot every second: the agent view's charts get their points sooner. The API's
  // rate limit (100 requests/min per client address by default) is raised: this file's pages and
  // its own checks all come from 127.0.0.1 within about a minute (the limiter has its own tests)
  m = await createManager({ config: ws.config, env: { ...process.env, NEXUS_MANAGER_TOKEN: BOOTSTRAP }, dashboardDir: assets, metricsIntervalMs: 1000, limits: { api: { perMinute: 1000 } } });
  base = await m.app.listen({ host: '127.0.0.1', port: 0 });
  for (const scope of ['admin', 'viewer'] as const) tokens[scope] = (await createToken({ scope, label: `dashboard ${scope}` }, { workspace: ws.dir })).token;
  profile = await mkdtemp(join(tmpdir(), 'nexus-chromium-'));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  await mkdir(shots, { recursive: true });
}, 900_000);

afterAll(async () => {
  await browser?.close();
  await m?.close();
  await ws?.cleanup();
  for (const d of [assets, profile, UPDATE_DOCS ? '' : shots]) if (d) await rm(d, { recursive: true, force: true });
}, 120_000);

describe('dashboard assets', () => {
  it('serves the page with its content types and a strict CSP; the script is at most 150 KB gzipped', async () => {
    const page = await fetch(`${base}/`);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toBe(DASHBOARD_CSP);
    const html = await page.text();
    // no inline script: every <script> has a src on the manager itself
    expect(html.match(/<script\b[^>]*>/g)).toEqual(['<script type="module" src="/assets/app.js">']);
    expect((await fetch(`${base}/assets/app.js`)).headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect((await fetch(`${base}/assets/styles.css`)).headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect((await fetch(`${base}/assets/..%2Fpackage.json`)).status).toBe(404);
    const gz = gzipSync(await readFile(join(assets, 'app.js')), { level: 9 }).length;
    console.log(`dashboard script: ${gz} bytes gzipped`);
    expect(gz).toBeLessThanOrEqual(150 * 1024);
  });
});

describe('dashboard in chromium', () => {
  it('a bad token stays on the sign-in form with a clear message', async () => {
    const page = await newPage(1280, 800, true);
    await signIn(page, 'not-a-real-token');
    await expect.poll(() => page.getByRole('alert').textContent(), { timeout: 5000 }).toContain('the manager refused this token');
    expect(await page.getByLabel('Manager token').isVisible()).toBe(true);
    await page.close();
  });

  it('admin: all five demo agents appear healthy; a stop through the API shows within 10 s without a reload; a start clicked on the page brings it back, with its event and history; a task that died meanwhile is re-driven from the tasks view', async () => {
    const page = await newPage();
    await signIn(page, tokens.admin);
    await expect.poll(() => page.locator('[data-scope]').textContent(), { timeout: 10_000 }).toBe('admin');
    for (const a of DEMO_AGENTS) {
      const slug = a.name.replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase();
      await expect.poll(() => rowState(page, slug), { timeout: 10_000 }).toBe('healthy');
    }
    expect(await page.locator('[data-count="healthy"]').textContent()).toBe('5');
    expect(await page.getByText('Loading the dashboard').count()).toBe(0);
    await expect.poll(() => page.locator('.live').textContent(), { timeout: 10_000 }).toBe('stream: live');

    const loads: string[] = [];
    page.on('request', (r) => void (r.resourceType() === 'document' && loads.push(r.url())));
    expect((await api('POST', '/agents/data-agent/stop', tokens.admin)).status).toBe(200);
    await expect.poll(() => rowState(page, 'data-agent'), { timeout: 10_000, interval: 200 }).toBe('stopped');
    expect(await page.locator('[data-count="stopped"]').textContent()).toBe('1');
    expect(loads).toEqual([]);

    // a task for the stopped agent, with one attempt: it dies (no replica in rotation)
    const submitted = await api('POST', '/tasks/submit', tokens.admin, { agent: 'data-agent', tool_name: 'process_data', parameters: { data: [4, 5, 6] }, max_attempts: 1 });
    expect(submitted.status).toBe(202);
    const taskId = ((await submitted.json()) as { task_id: string }).task_id;
    const taskStatus = async () => ((await (await api('GET', `/tasks/${taskId}`, tokens.admin)).json()) as { status: string }).status;
    await expect.poll(taskStatus, { timeout: 30_000, interval: 1000 }).toBe('dead');

    await page.getByRole('link', { name: 'DataAgent' }).click();
    await page.getByRole('button', { name: 'Start', exact: true }).click();
    await expect.poll(() => page.locator('[data-agent-state]').getAttribute('data-agent-state'), { timeout: 120_000, interval: 500 }).toBe('healthy');
    expect(await page.getByRole('status').filter({ hasText: 'start DataAgent' }).textContent()).toContain('start DataAgent: started');
    // the event that followed, and the registry's history: stopped, then started again
    await expect.poll(() => page.locator('[data-events]').textContent(), { timeout: 10_000 }).toContain('fleet.agent outcome: started');
    await expect.poll(() => page.locator('[data-history] tr[data-event]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-event'))), { timeout: 10_000 }).toEqual(
      expect.arrayContaining(['started', 'stopped', 'created']),
    );
    expect(await page.locator('[data-history] tr[data-event]').first().getAttribute('data-event')).toBe('started');
    expect(await page.locator('[data-listing]').getAttribute('data-listing')).toBe('none');

    // the tasks view: the dead task is there; re-drive it (DataAgent is back) and it succeeds
    await page.getByRole('link', { name: 'Tasks' }).click();
    const row = page.locator(`[data-tasks="dead"] tr[data-task="${taskId}"]`);
    await expect.poll(() => row.count(), { timeout: 10_000 }).toBe(1);
    expect(await row.textContent()).toContain('AGENT_UNAVAILABLE');
    await page.screenshot({ path: join(shots, 'dashboard-tasks.png'), fullPage: true });
    await row.getByRole('button', { name: `Re-drive task ${taskId}` }).click();
    await expect.poll(() => page.getByRole('status').filter({ hasText: 're-drive' }).textContent(), { timeout: 10_000 }).toBe(`re-drive ${taskId}: queued`);
    await expect.poll(taskStatus, { timeout: 30_000, interval: 1000 }).toBe('succeeded');
    await expect.poll(() => page.locator('[data-task-events]').textContent(), { timeout: 10_000 }).toContain(`task.succeeded ${taskId}`);
    await expect.poll(() => row.count(), { timeout: 10_000 }).toBe(0);
    await page.close();
  }, 180_000);

  it('the process_data form on DataAgent with [1,2,3,4,5] shows a sum of 15; the logs show the call live; the charts draw; the phone width works too', async () => {
    const page = await newPage();
    await signIn(page, tokens.admin);
    await page.locator('tr[data-agent="data-agent"] a').click();
    const form = page.locator('form[data-tool="process_data"]');
    // the logs follow live: the agent's request log of each call shows up
    const logs = page.locator('pre[data-logs]');
    const executes = async () => ((await logs.textContent()) ?? '').split('"url":"/execute"').length - 1;
    await expect.poll(() => logs.textContent(), { timeout: 15_000 }).toContain('agent ready');
    const before = await executes();
    await form.getByLabel(/^data/).fill('[1,2,3,4,5]');
    await form.getByRole('button', { name: 'Run process_data' }).click();
    await expect.poll(() => form.locator('pre.result').textContent(), { timeout: 15_000 }).toContain('"sum": 15');
    await expect.poll(executes, { timeout: 15_000 }).toBeGreaterThan(before);
    // comma-separated works the same
    await form.getByLabel(/^data/).fill('2, 3');
    await form.getByRole('button', { name: 'Run process_data' }).click();
    await expect.poll(() => form.locator('pre.result').textContent(), { timeout: 15_000 }).toContain('"sum": 5');
    // the charts: points from the gateway's figures (a snapshot every second here)
    await expect.poll(() => page.locator('figure.spark polyline.trace').count(), { timeout: 25_000, interval: 500 }).toBe(2);
    // and a point from a metrics snapshot besides the ones read after each call (3 or more)
    await expect.poll(async () => ((await page.locator('figure.spark polyline.trace').first().getAttribute('points')) ?? '').split(' ').length, { timeout: 25_000, interval: 500 }).toBeGreaterThanOrEqual(3);
    expect(await page.getByRole('img', { name: /^Calls per second, last \d+ (s|min): / }).count()).toBe(1);
    await page.screenshot({ path: join(shots, 'dashboard-agent.png'), fullPage: true });
    // the gateway's figures for the calls just made, in the fleet view
    await page.getByRole('link', { name: '← Fleet' }).click();
    await expect.poll(() => page.locator('tr[data-agent="data-agent"] td[data-label="Calls/s"]').textContent(), { timeout: 5000 }).not.toBe('–');
    await page.screenshot({ path: join(shots, 'dashboard-fleet.png') });
    await page.close();

    const phone = await newPage(390, 844);
    await signIn(phone, tokens.admin);
    await expect.poll(() => rowState(phone, 'data-agent'), { timeout: 10_000 }).toBe('healthy');
    // nothing wider than the screen: the table turns into one card per agent
    expect(await phone.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
    await phone.screenshot({ path: join(shots, 'dashboard-phone.png') });
    // the agent view and the tasks view fit too (tables become cards, logs wrap)
    await phone.locator('tr[data-agent="data-agent"] a').click();
    await expect.poll(() => phone.locator('pre[data-logs]').textContent(), { timeout: 15_000 }).toContain('agent ready');
    expect(await phone.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await phone.getByRole('link', { name: 'Tasks' }).click();
    await expect.poll(() => phone.locator('[data-tasks="dead"]').count(), { timeout: 10_000 }).toBe(1);
    expect(await phone.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await phone.close();
  }, 60_000);

  it('a viewer sees the actions and the tool forms disabled, and the API refuses them anyway (403)', async () => {
    const page = await newPage();
    // by keyboard: the token field is the first stop, Enter submits
    await page.keyboard.press('Tab');
    await page.keyboard.type(tokens.viewer);
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('[data-scope]').textContent(), { timeout: 10_000 }).toBe('viewer');
    await page.locator('tr[data-agent="math-agent"] a').click();
    for (const name of ['Start', 'Restart', 'Stop', 'Scale', 'Remove', 'Roll out', 'Register', 'Unregister']) expect(await page.getByRole('button', { name, exact: true }).isDisabled(), name).toBe(true);
    await expect.poll(() => page.locator('form.tool button[type=submit]').count(), { timeout: 10_000 }).toBeGreaterThan(0);
    for (const b of await page.locator('form.tool button[type=submit]').all()) expect(await b.isDisabled()).toBe(true);
    expect(await page.getByText('Your viewer token can only read').isVisible()).toBe(true);
    expect((await api('POST', '/agents/math-agent/stop', tokens.viewer)).status).toBe(403);
    expect((await api('POST', '/agents/math-agent/execute', tokens.viewer, { tool_name: 'evaluate_expression', parameters: { expression: '1+1' } })).status).toBe(403);
    expect((await api('POST', '/agents/math-agent/rollout', tokens.viewer, {})).status).toBe(403);
    expect((await api('POST', '/agents/math-agent/register', tokens.viewer, {})).status).toBe(403);
    // the tasks view: readable, with the note that driving tasks needs an operator token
    await page.getByRole('link', { name: 'Tasks' }).click();
    await expect.poll(() => page.getByText('cancelling and re-driving need an operator token').count(), { timeout: 10_000 }).toBe(1);
    await page.close();
  }, 60_000);

  it('rollout from the page, after a confirmation: the outcome and the event that followed are shown, the new version is recorded', async () => {
    const page = await newPage();
    await signIn(page, tokens.admin);
    await page.locator('tr[data-agent="math-agent"] a').click();
    await expect.poll(() => page.locator('[data-agent-state]').getAttribute('data-agent-state'), { timeout: 30_000 }).toBe('healthy');
    await page.getByLabel('Version').fill('0.2.0');
    await page.getByLabel('Router port').fill(String(ROUTER_PORT));
    await page.getByRole('button', { name: 'Roll out', exact: true }).click();
    // a confirmation first, focused: Enter confirms
    await expect.poll(() => page.getByRole('alertdialog').textContent(), { timeout: 5000 }).toContain('Roll out MathAgent');
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('Yes, rollout');
    await page.keyboard.press('Enter');
    const outcome = page.locator('section.actions p.outcome');
    await expect.poll(() => outcome.textContent(), { timeout: 240_000, interval: 1000 }).not.toMatch(/in progress/);
    expect(await outcome.textContent()).toMatch(/^rollout MathAgent: 0\.1\.0 → 0\.2\.0 \(generation \d+/);
    await expect.poll(() => page.locator('[data-events]').textContent(), { timeout: 10_000 }).toContain('fleet.agent rollout: rolled-out (0.1.0 -> 0.2.0)');
    await expect.poll(() => page.locator('dl.facts').textContent(), { timeout: 10_000 }).toContain('0.2.0');
    await page.close();
  }, 300_000);

  it('no request of the whole run carried a token in its URL (streams are read with the Authorization header)', () => {
    expect(requestUrls.length).toBeGreaterThan(20);
    expect(requestUrls.some((u) => u.includes('/api/v1/events'))).toBe(true);
    const leaks = requestUrls.filter((u) => /[?&]token=/i.test(u) || [tokens.admin, tokens.viewer].some((t) => t !== '' && u.includes(encodeURIComponent(t))));
    expect(leaks).toEqual([]);
  });

  it('no console errors during the whole run', () => {
    console.log(`requests aborted by host network changes (Docker interfaces): ${networkChanged}`);
    expect(consoleErrors).toEqual([]);
  });
});
