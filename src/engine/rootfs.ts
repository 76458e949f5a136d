import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import tar from 'tar-fs';
import { AGENT_UID } from '../conventions.js';
import { AppError, messageOf } from '../errors.js';
import { logger } from '../log.js';
import type { Engine, ImageInfo } from './engine.js';

const log = logger('engine');
const run = promisify(execFile);

/** The host's static busybox (Debian package busybox-static), copied into the agent base image. */
export const HOST_BUSYBOX = '/bin/busybox';

/**
 * True when `elf` (a file's first bytes, at least its program headers) is an ELF executable with
 * no program interpreter (PT_INTERP), i.e. statically linked: it runs in any image. Pure.
 */
export function isStaticElf(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2) return false; // 64-bit ELF only
  const little = elf[5] === 1;
  const u16 = (o: number) => (little ? elf.readUInt16LE(o) : elf.readUInt16BE(o));
  const u32 = (o: number) => (little ? elf.readUInt32LE(o) : elf.readUInt32BE(o));
  const phoff = Number(little ? elf.readBigUInt64LE(32) : elf.readBigUInt64BE(32));
  const size = u16(54);
  const count = u16(56);
  if (phoff + size * count > elf.length) return false;
  for (let i = 0; i < count; i++) if (u32(phoff + i * size) === 3) return false; // PT_INTERP
  return true;
}

/**
 * Check that the host's busybox exists and is static, for the base image's health probe.
 * @throws AppError BASE_IMAGE_FAILED naming the Debian package to install.
 */
export async function hostBusybox(path = HOST_BUSYBOX): Promise<string> {
  const head = await readFile(path).then(
    (b) => b.subarray(0, 4096),
    () => undefined,
  );
  if (!head || !isStaticElf(head)) {
    throw new AppError('BASE_IMAGE_FAILED', `${path} is ${head ? 'not a static 64-bit executable' : 'missing'}: the agents' health probe needs a static busybox`, {
      hint: 'install it: apt-get install busybox-static (scripts/ensure-docker.sh does)',
    });
  }
  return path;
}

/**
 * Shared libraries an ELF binary needs, from `ldd` output: absolute paths only (the vDSO has none).
 * Pure. Lines look like `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
 * `/lib64/ld-linux-x86-64.so.2 (0x...)`.
 * @throws Error for "not found" libraries or a statically linked binary (nothing to copy is fine).
 */
export function parseLdd(output: string): string[] {
  const libs: string[] = [];
  for (const raw of output.split('\n')) {
    const line = raw.trim();
    if (!line || /statically linked/.test(line)) continue;
    if (/=>\s*not found/.test(line)) throw new Error(`missing shared library: ${line}`);
    const arrow = /=>\s*(\/\S+)/.exec(line);
    const direct = /^(\/\S+)\s+\(/.exec(line);
    const path = arrow?.[1] ?? direct?.[1];
    if (path) libs.push(path);
  }
  return [...new Set(libs)];
}

/**
 * Lay out a minimal root filesystem running one host binary: the binary at `dest`, the
 * libraries ldd names (at the same paths, symlinks resolved), extra files, /etc/passwd and
 * /etc/group with a `node` user (uid 1000), and a world-writable /tmp. Returns the folder.
 */
export async function layoutBinaryRootfs(binary: string, dest: string, dir: string, extra: Record<string, string> = {}): Promise<string> {
  const bin = await realpath(binary);
  const { stdout } = await run('ldd', [bin]);
  const libs = parseLdd(stdout);
  await mkdir(join(dir, dirname(dest)), { recursive: true });
  await copyFile(bin, join(dir, dest));
  for (const lib of libs) {
    await mkdir(join(dir, dirname(lib)), { recursive: true });
    await copyFile(await realpath(lib), join(dir, lib));
  }
  for (const [path, content] of Object.entries(extra)) {
    await mkdir(join(dir, dirname(path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  await mkdir(join(dir, 'etc'), { recursive: true });
  await writeFile(join(dir, 'etc/passwd'), `root:x:0:0:root:/root:/sbin/nologin\nnode:x:${AGENT_UID}:${AGENT_UID}:node:/home/node:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n`);
  await writeFile(join(dir, 'etc/group'), `root:x:0:\nnode:x:${AGENT_UID}:\nnogroup:x:65534:\n`);
  await writeFile(join(dir, 'etc/nsswitch.conf'), 'hosts: files dns\n');
  await mkdir(join(dir, 'tmp'), { recursive: true });
  await chmod(join(dir, 'tmp'), 0o1777);
  await mkdir(join(dir, 'home/node'), { recursive: true });
  log.debug({ binary: bin, libs: libs.length }, 'rootfs laid out');
  return dir;
}

/** The rootfs of the offline Node image: the host's node at /usr/local/bin/node. */
export function layoutNodeRootfs(nodeBinary: string, dir: string): Promise<string> {
  return layoutBinaryRootfs(nodeBinary, 'usr/local/bin/node', dir);
}

/**
 * Import a rootfs folder as an image (`docker import`) with Dockerfile-style `changes`
 * (ENV, USER, CMD, EXPOSE). Files are owned by root inside the image.
 */
export async function importRootfs(engine: Engine, dir: string, ref: string, changes: string[]): Promise<ImageInfo> {
  // umask 0: keep the modes as laid out (tar-fs applies the process umask by default, which
  // turned /tmp from 1777 into 1755 and left it unwritable for the non-root user)
  const stream = tar.pack(dir, { umask: 0, map: (h) => ({ ...h, uid: 0, gid: 0, uname: 'root', gname: 'root' }) } as tar.PackOptions);
  return engine.importImage(stream as unknown as Readable, ref, changes);
}

/** Revision of the offline images' layout: bump it when the rootfs changes, so cached images are rebuilt. */
export const ROOTFS_REVISION = 'r2';

/** The host's Node version without the "v", e.g. 20.20.2. */
export function hostNodeVersion(): string {
  return process.versions.node;
}

/** The offline Node image's tag: the host's Node version and the layout revision, e.g. 20.20.2-r2. */
export function hostNodeImageTag(): string {
  return `${hostNodeVersion()}-${ROOTFS_REVISION}`;
}

/**
 * Build the offline Node runtime image from this host's own `node` binary (`docker import` of the
 * rootfs above), when no registry is reachable. Reused when it already exists.
 * @throws AppError BASE_IMAGE_FAILED when the binary or its libraries cannot be packed.
 */
export async function ensureHostNodeImage(engine: Engine, ref: string, nodeBinary = process.execPath): Promise<ImageInfo> {
  const existing = await engine.inspectImage(ref);
  if (existing) return existing;
  const dir = await mkdtemp(join(tmpdir(), 'nexus-rootfs-'));
  try {
    await layoutNodeRootfs(nodeBinary, dir);
    return await importRootfs(engine, dir, ref, ['ENV PATH=/usr/local/bin:/usr/bin:/bin', `USER ${AGENT_UID}:${AGENT_UID}`]);
  } catch (err) {
    if (err instanceof AppError && err.code === 'ENGINE_UNREACHABLE') throw err;
    throw new AppError('BASE_IMAGE_FAILED', `cannot build the offline Node image ${ref} from ${nodeBinary}: ${messageOf(err)}`, {
      hint: 'check that ldd is installed and the node binary is dynamically linked against glibc',
      cause: err,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
