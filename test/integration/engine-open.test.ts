import { createServer } from 'node:net';
import { afterAll } from 'vitest';
import { openDockerEngine } from '../../src/engine/open.js';
import { hostNodeImageTag } from '../../src/engine/rootfs.js';
import { HOST_NODE_IMAGE_REPO } from '../../src/names.js';
import { engineContract, NODE_PROBES } from '../helpers/engine-contract.js';
import { removeByLabel, testRunId, TEST_LABEL } from '../helpers/workspace.js';

// The engine every command gets (src/fleet/open.ts): ping and listContainers through the light
// node:http client, every other call through dockerode, loaded on first use. It must pass the same
// contract as DockerEngine (test/integration/engine-docker.test.ts).
// ports 9841-9843 of this file's band (9841-9850)
const labels = { [TEST_LABEL]: testRunId(), 'dev.nexus-delta.contract': 'engine-open' };
const engine = openDockerEngine();
const hostNodeRef = `${HOST_NODE_IMAGE_REPO}:${hostNodeImageTag()}`;

afterAll(async () => {
  await removeByLabel(labels);
});

engineContract('docker, opened lazily (light reads)', async () => {
  await engine.ensureHostNodeImage(hostNodeRef);
  return {
    engine,
    image: hostNodeRef,
    ...NODE_PROBES,
    labels,
    prefix: `nxt-${testRunId()}-engopen`,
    ports: [9841, 9842, 9843],
    holdPort: async (port) => {
      const srv = createServer();
      await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(port, '127.0.0.1', resolve));
      return () => new Promise<void>((resolve) => srv.close(() => resolve()));
    },
    hostNodeRef,
  };
});
