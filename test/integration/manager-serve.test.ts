import { spawn } from 'node:child_process';
import { join } from 'node:path';
import getPort from 'get-port';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { BOOTSTRAP } from '../helpers/manager.js';
import { makeWorkspace, type TestWorkspace } from '../helpers/workspace.js';

// `agent serve` as a real child process (the CLI entry, as `npm run agent -- serve` runs it).
let ws: TestWorkspace;
beforeAll(async () => {
  ws = await makeWorkspace('9405-9406');
});
afterAll(() => ws.cleanup());

describe('agent serve (child process)', () => {
  it('prints its URL, answers /api/v1/agents with the bootstrap token, and exits 0 on SIGTERM', async () => {
    const port = await getPort();
    const child = spawn(process.execPath, ['--import', 'tsx', join(PACKAGE_ROOT, 'src/cli/main.ts'), '--workspace', ws.dir, 'serve', '--port', String(port)], {
      cwd: PACKAGE_ROOT,
      env: { ...process.env, NEXUS_MANAGER_TOKEN: BOOTSTRAP },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (d) => {
          stdout += d;
          const m = /manager listening on (http:\/\/\S+)/.exec(stdout);
          if (m) resolve(m[1]!);
        });
        void exited.then((code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
      });
      expect(url).toBe(`http://127.0.0.1:${port}`);
      const ok = await fetch(`${url}/api/v1/agents?stats=false`, { headers: { authorization: `Bearer ${BOOTSTRAP}` } });
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ agents: [] });
      const denied = await fetch(`${url}/api/v1/agents`);
      expect(denied.status).toBe(401);
      await denied.text();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(stdout).toContain('manager stopped');
      expect(stderr).not.toContain(BOOTSTRAP);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 60_000);

  it('refuses a non-loopback host without NEXUS_MANAGER_TOKEN (usage error, nothing listens)', async () => {
    const env = { ...process.env };
    delete env.NEXUS_MANAGER_TOKEN;
    const child = spawn(process.execPath, ['--import', 'tsx', join(PACKAGE_ROOT, 'src/cli/main.ts'), '--workspace', ws.dir, 'serve', '--host', '0.0.0.0', '--port', String(await getPort())], { cwd: PACKAGE_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    expect(code).toBe(2);
    expect(stderr).toContain('refusing to listen on 0.0.0.0 without NEXUS_MANAGER_TOKEN');
  }, 60_000);
});
