import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { promisify } from 'node:util';
import { ExitCode, type AppError } from '../errors.js';
import { hostNodeVersion } from '../engine/rootfs.js';
import { LABEL } from '../conventions.js';
import { baseImageRef } from '../names.js';
import { candidatePorts } from '../ports/allocate.js';
import { hostPortProbe } from '../ports/probe.js';
import type { FleetDeps } from './context.js';

const run = promisify(execFile);

export interface Check {
  name: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  /** How to fix a warn/fail. */
  hint?: string;
  /** Exit code if this check fails. */
  exitCode?: number;
}

/**
 * `doctor`: check Node, the Docker engine, the base image (or how it would be built), the port
 * range (free host ports) and the registry. Returns every check; `failed` is the first failed one.
 */
export async function runDoctor(deps: FleetDeps): Promise<{ checks: Check[]; ok: boolean; exitCode: number }> {
  const { config, engine, registry } = deps;
  const checks: Check[] = [];
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  checks.push(
    major > 20 || (major === 20 && minor >= 17)
      ? { name: 'node', status: 'ok', detail: `Node ${process.versions.node}` }
      : { name: 'node', status: 'fail', detail: `Node ${process.versions.node}`, hint: 'install Node 20.17 or newer', exitCode: ExitCode.USAGE },
  );

  let engineOk = false;
  try {
    const info = await engine.ping();
    engineOk = true;
    checks.push({ name: 'engine', status: 'ok', detail: `Docker ${info.version} (API ${info.apiVersion}, ${info.os}/${info.arch}) at ${engine.endpoint}` });
  } catch (err) {
    const e = err as AppError;
    checks.push({ name: 'engine', status: 'fail', detail: e.message, hint: e.hint, exitCode: ExitCode.ENGINE });
  }

  if (engineOk) {
    const ref = baseImageRef(config.images.tag);
    const base = await engine.inspectImage(ref);
    if (base) {
      checks.push({ name: 'base image', status: 'ok', detail: `${ref} (FROM ${base.labels[LABEL.baseFrom] ?? '?'}, ${(base.size / 2 ** 20).toFixed(0)} MiB)` });
    } else {
      const from = await engine.inspectImage(config.images.base);
      let how = from ? `FROM ${config.images.base} (present)` : `FROM ${config.images.base} (pulled on first build)`;
      if (config.images.offline === 'always') how = `offline, from this host's Node v${hostNodeVersion()}`;
      let status: Check['status'] = 'warn';
      let hint = "run 'agent build' to build it now";
      if (!from && config.images.offline !== 'never') {
        try {
          await run('ldd', [process.execPath]);
          how += `; offline fallback from host Node v${hostNodeVersion()} available`;
        } catch {
          status = 'warn';
          hint = 'no ldd: the offline fallback needs it (apt-get install libc-bin)';
        }
      }
      checks.push({ name: 'base image', status, detail: `${ref} not built yet; will build ${how}`, hint });
    }
  }

  const records = await registry.list().then(
    (r) => {
      checks.push({ name: 'registry', status: 'ok', detail: `${registry.kind}: ${r.length} agent(s)` });
      return r;
    },
    (err: AppError) => {
      checks.push({ name: 'registry', status: 'fail', detail: err.message, hint: err.hint, exitCode: ExitCode.REGISTRY });
      return [];
    },
  );

  const reserved = new Set(records.map((r) => r.port));
  const probe = hostPortProbe(config.ports.bindAddress);
  const free = candidatePorts(config.ports.range, reserved);
  let hostFree = 0;
  for (const p of free) if (await probe(p)) hostFree++;
  const size = config.ports.range.to - config.ports.range.from + 1;
  const rangeText = `${config.ports.range.from}-${config.ports.range.to}`;
  checks.push(
    hostFree > 0
      ? { name: 'ports', status: 'ok', detail: `${rangeText} on ${config.ports.bindAddress}: ${reserved.size} reserved, ${hostFree} free, ${free.length - hostFree} used by other processes` }
      : { name: 'ports', status: 'fail', detail: `${rangeText}: no free port (${size} in range)`, hint: 'widen ports.range in nexus.yaml or remove agents', exitCode: ExitCode.CONFLICT },
  );

  try {
    await access(config.workspace, constants.W_OK);
    checks.push({ name: 'workspace', status: 'ok', detail: config.workspace });
  } catch {
    checks.push({ name: 'workspace', status: 'fail', detail: `${config.workspace} is not writable`, hint: 'fix its permissions or pass --workspace', exitCode: ExitCode.USAGE });
  }

  const failed = checks.find((c) => c.status === 'fail');
  return { checks, ok: !failed, exitCode: failed?.exitCode ?? ExitCode.OK };
}

