import { createServer } from 'node:net';
import { afterAll } from 'vitest';
import { DockerEngine } from '../../src/engine/docker.js';
import { hostNodeImageTag } from '../../src/engine/rootfs.js';
import { HOST_NODE_IMAGE_REPO } from '../../src/names.js';
import { engineContract, NODE_PROBES } from '../helpers/engine-contract.js';
import { removeByLabel, testRunId, TEST_LABEL } from '../helpers/workspace.js';

// ports 9301-9303 of this file's band (9301-9320)
const labels = { [TEST_LABEL]: testRunId(), 'dev.nexus-delta.contract': 'engine' };
const engine = new DockerEngine();
const hostNodeRef = `${HOST_NODE_IMAGE_REPO}:${hostNodeImageTag()}`;

afterAll(async () => {
  await removeByLabel(labels);
});

engineContract('docker', async () => {
  await engine.ensureHostNodeImage(hostNodeRef);
  return {
    engine,
    image: hostNodeRef,
    ...NODE_PROBES,
    labels,
    prefix: `nxt-${testRunId()}-engine`,
    ports: [9301, 9302, 9303],
    holdPort: async (port) => {
      const srv = createServer();
      await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(port, '127.0.0.1', resolve));
      return () => new Promise<void>((resolve) => srv.close(() => resolve()));
    },
    hostNodeRef,
  };
});
