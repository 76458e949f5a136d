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
// manager on 127.0.0.1 with the five demo agents on the real engine. Ports 9541-9560. One
// workspace for the whole file: the Image and Code agents' dependency layers take a while.
const CHROMIUM = '/usr/bin/chromium';
const DOCS = join(process.cwd(), 'docs');
let ws: TestWorkspace;
let m: Manager;
let base: string;
let assets: string;
let profile: string;
let browser: BrowserContext;
const tokens = { admin: '', viewer: '' };
const consoleErrors: string[] = [];
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
  await buildDashboard(assets);
  ws = await makeWorkspace('9541-9560');
  await runDemo(ws.deps);
  m = await createManager({ config: ws.config, env: { ...process.env, NEXUS_MANAGER_TOKEN: BOOTSTRAP }, dashboardDir: assets });
  base = await m.app.listen({ host: '127.0.0.1', port: 0 });
  for (const scope of ['admin', 'viewer'] as const) tokens[scope] = (await createToken({ scope, label: `dashboard ${scope}` }, { workspace: ws.dir })).token;
  profile = await mkdtemp(join(tmpdir(), 'nexus-chromium-'));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  await mkdir(DOCS, { recursive: true });
}, 900_000);

afterAll(async () => {
  await browser?.close();
  await m?.close();
  await ws?.cleanup();
  for (const d of [assets, profile]) if (d) await rm(d, { recursive: true, force: true });
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

  it('admin: all five demo agents appear healthy; a stop through the API shows within 10 s without a reload; a start clicked on the page brings it back', async () => {
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

    await page.getByRole('link', { name: 'DataAgent' }).click();
    await page.getByRole('button', { name: 'Start', exact: true }).click();
    await expect.poll(() => page.locator('[data-agent-state]').getAttribute('data-agent-state'), { timeout: 120_000, interval: 500 }).toBe('healthy');
    expect(await page.getByRole('status').filter({ hasText: 'start DataAgent' }).textContent()).toContain('start DataAgent: started');
    await page.close();
  }, 180_000);

  it('the process_data form on DataAgent with [1,2,3,4,5] shows a sum of 15; the phone width works too', async () => {
    const page = await newPage();
    await signIn(page, tokens.admin);
    await page.locator('tr[data-agent="data-agent"] a').click();
    const form = page.locator('form[data-tool="process_data"]');
    await form.getByLabel(/^data/).fill('[1,2,3,4,5]');
    await form.getByRole('button', { name: 'Run process_data' }).click();
    await expect.poll(() => form.locator('pre.result').textContent(), { timeout: 15_000 }).toContain('"sum": 15');
    await page.screenshot({ path: join(DOCS, 'dashboard-agent.png'), fullPage: true });
    // comma-separated works the same
    await form.getByLabel(/^data/).fill('2, 3');
    await form.getByRole('button', { name: 'Run process_data' }).click();
    await expect.poll(() => form.locator('pre.result').textContent(), { timeout: 15_000 }).toContain('"sum": 5');
    // the gateway's figures for the calls just made, in the fleet view
    await page.getByRole('link', { name: '← Fleet' }).click();
    await expect.poll(() => page.locator('tr[data-agent="data-agent"] td[data-label="Calls/s"]').textContent(), { timeout: 5000 }).not.toBe('–');
    await page.screenshot({ path: join(DOCS, 'dashboard-fleet.png') });
    await page.close();

    const phone = await newPage(390, 844);
    await signIn(phone, tokens.admin);
    await expect.poll(() => rowState(phone, 'data-agent'), { timeout: 10_000 }).toBe('healthy');
    // nothing wider than the screen: the table turns into one card per agent
    expect(await phone.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
    await phone.screenshot({ path: join(DOCS, 'dashboard-phone.png') });
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
    for (const name of ['Start', 'Restart', 'Stop', 'Scale', 'Remove']) expect(await page.getByRole('button', { name, exact: true }).isDisabled(), name).toBe(true);
    await expect.poll(() => page.locator('form.tool button[type=submit]').count(), { timeout: 10_000 }).toBeGreaterThan(0);
    for (const b of await page.locator('form.tool button[type=submit]').all()) expect(await b.isDisabled()).toBe(true);
    expect(await page.getByText('Your viewer token can only read').isVisible()).toBe(true);
    expect((await api('POST', '/agents/math-agent/stop', tokens.viewer)).status).toBe(403);
    expect((await api('POST', '/agents/math-agent/execute', tokens.viewer, { tool_name: 'evaluate_expression', parameters: { expression: '1+1' } })).status).toBe(403);
    await page.close();
  }, 60_000);

  it('no console errors during the whole run', () => {
    console.log(`requests aborted by host network changes (Docker interfaces): ${networkChanged}`);
    expect(consoleErrors).toEqual([]);
  });
});
