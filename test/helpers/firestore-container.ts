import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as esbuild from 'esbuild';
import { GenericContainer, Wait, type StartedTestContainer } from 'testcontainers';
import { DockerEngine } from '../../src/engine/docker.js';
import { ensureHostNodeImage, hostNodeImageTag } from '../../src/engine/rootfs.js';
import { HOST_NODE_IMAGE_REPO } from '../../src/names.js';
import { NODE_MODULES, PACKAGE_ROOT } from '../../src/paths.js';
import { TEST_LABEL, testRunId } from './workspace.js';

/**
 * Build the Firestore emulator image locally (no registry here): the emulator bundled into one
 * file on the offline Node base made from this host's runtime. Labelled for cleanup.
 */
export async function buildEmulatorImage(): Promise<string> {
  const engine = new DockerEngine();
  const base = await ensureHostNodeImage(engine, `${HOST_NODE_IMAGE_REPO}:${hostNodeImageTag()}`);
  const tag = `nexus-firestore-emulator:test-${testRunId()}`;
  const ctx = await mkdtemp(join(tmpdir(), 'nexus-emulator-'));
  try {
    await esbuild.build({
      entryPoints: [join(PACKAGE_ROOT, 'test/fixtures/firestore-emulator/entry.mjs')],
      outfile: join(ctx, 'emulator.mjs'),
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      nodePaths: [NODE_MODULES],
      banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
      logLevel: 'warning',
    });
    await writeFile(join(ctx, 'Dockerfile'), `FROM ${base.tags[0] ?? base.id}\nCOPY emulator.mjs /emulator.mjs\nENV PORT=8080\nEXPOSE 8080\nUSER 1000:1000\nCMD ["node", "/emulator.mjs"]\n`);
    await engine.buildImage({ contextDir: ctx, tag, labels: { [TEST_LABEL]: testRunId() } });
    return tag;
  } finally {
    await rm(ctx, { recursive: true, force: true });
  }
}

/** Start the emulator container with testcontainers; resolves once it logs that it is ready. */
export async function startEmulatorContainer(image: string): Promise<{ container: StartedTestContainer; host: string }> {
  const container = await new GenericContainer(image)
    .withExposedPorts(8080)
    .withLabels({ [TEST_LABEL]: testRunId() })
    .withWaitStrategy(Wait.forLogMessage('firestore emulator ready'))
    .withStartupTimeout(60_000)
    .start();
  return { container, host: `${container.getHost()}:${container.getMappedPort(8080)}` };
}
