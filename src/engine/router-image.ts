import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AppError, messageOf } from '../errors.js';
import type { Engine, ImageInfo } from './engine.js';
import { AGENT_UID, ROUTER_CONTAINER_PORT } from '../conventions.js';
import { ROOTFS_REVISION, importRootfs, layoutBinaryRootfs } from './rootfs.js';

const run = promisify(execFile);

/**
 * Main nginx.conf of the offline router image: unprivileged (uid 1000, port 8080), everything it
 * writes under /tmp (so the container runs read-only), logs to stdout/stderr, and the server
 * blocks from /etc/nginx/conf.d/*.conf, where the generated nexus-agents.conf is mounted (the
 * official nginx images read the same folder).
 */
export const ROUTER_NGINX_CONF = `worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    # buffered: one write per 64 KiB or second instead of one per request through Docker's log pipe
    access_log /dev/stdout combined buffer=64k flush=1s;
    client_body_temp_path /tmp/client_body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    include /etc/nginx/conf.d/*.conf;
}
`;

/**
 * The offline router image's reference for an nginx version: `nexus-delta-router:<nginx
 * version>-<rootfs revision>-<hash of the main nginx.conf>` (the conf is part of the image, so a
 * new one is a new tag).
 */
export function routerImageRef(nginxVersion: string): string {
  return `nexus-delta-router:${nginxVersion}-${ROOTFS_REVISION}-${createHash('sha256').update(ROUTER_NGINX_CONF).digest('hex').slice(0, 6)}`;
}

/** The host's nginx version, e.g. 1.22.1 (nginx -v prints to stderr). */
export async function hostNginxVersion(nginx = '/usr/sbin/nginx'): Promise<string> {
  const { stderr } = await run(nginx, ['-v']);
  return /nginx\/(\S+)/.exec(stderr)?.[1] ?? 'unknown';
}

/**
 * Build `nexus-delta-router:<nginx version>` from this host's nginx binary (like the offline Node
 * base): for hosts with no registry to pull nginx from. Reused when present.
 * @throws AppError BASE_IMAGE_FAILED when nginx is not installed or cannot be packed.
 */
export async function ensureOfflineRouterImage(engine: Engine, nginx = '/usr/sbin/nginx'): Promise<ImageInfo> {
  if (!existsSync(nginx)) {
    throw new AppError('BASE_IMAGE_FAILED', `no nginx at ${nginx} to build the offline router image from`, { hint: 'apt-get install nginx, or use --router-image with a pullable image' });
  }
  const ref = routerImageRef(await hostNginxVersion(nginx));
  const existing = await engine.inspectImage(ref);
  if (existing) return existing;
  const dir = await mkdtemp(join(tmpdir(), 'nexus-router-'));
  try {
    const mime = existsSync('/etc/nginx/mime.types') ? await readFile('/etc/nginx/mime.types', 'utf8') : 'types { application/json json; text/html html; }\n';
    await layoutBinaryRootfs(nginx, 'usr/sbin/nginx', dir, {
      'etc/nginx/nginx.conf': ROUTER_NGINX_CONF,
      'etc/nginx/mime.types': mime,
      'etc/nginx/conf.d/.keep': '',
      'etc/nginx/nexus/.keep': '',
    });
    await mkdir(join(dir, 'var/log/nginx'), { recursive: true });
    return await importRootfs(engine, dir, ref, [
      `USER ${AGENT_UID}:${AGENT_UID}`,
      `EXPOSE ${ROUTER_CONTAINER_PORT}`,
      'CMD ["/usr/sbin/nginx", "-e", "stderr", "-g", "daemon off;"]',
    ]);
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw new AppError('BASE_IMAGE_FAILED', `cannot build the offline router image from ${nginx}: ${messageOf(err)}`, { cause: err });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
