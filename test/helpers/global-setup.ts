import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { hostNodeImageTag } from '../../src/engine/rootfs.js';
import { hostNginxVersion, routerImageRef } from '../../src/engine/router-image.js';
import { HOST_NODE_IMAGE_REPO } from '../../src/names.js';
import { removeByLabel, TEST_LABEL } from './workspace.js';

/**
 * Integration tests: one run id for labels and image tags; afterwards remove what the run made:
 * containers and agent images by label, the test base image by tag, and the offline Node and
 * router images if this run created them.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const run = randomBytes(4).toString('hex');
  process.env.NEXUS_TEST_RUN = run;
  const docker = new Docker();
  await docker.ping();
  const hostRef = `${HOST_NODE_IMAGE_REPO}:${hostNodeImageTag()}`;
  const hadHostImage = await docker.getImage(hostRef).inspect().then(() => true, () => false);
  const routerRef = routerImageRef(await hostNginxVersion());
  const hadRouterImage = await docker.getImage(routerRef).inspect().then(() => true, () => false);
  return async () => {
    await removeByLabel({ [TEST_LABEL]: run });
    await docker.getImage(`nexus-delta-agent:test-${run}`).remove({ force: true }).catch(() => undefined);
    if (!hadHostImage) await docker.getImage(hostRef).remove({ force: true }).catch(() => undefined);
    if (!hadRouterImage) await docker.getImage(routerRef).remove({ force: true }).catch(() => undefined);
  };
}
