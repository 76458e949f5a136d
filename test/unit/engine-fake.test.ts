import { FakeEngine } from '../../src/engine/fake.js';
import { engineContract, NODE_PROBES } from '../helpers/engine-contract.js';

const IMAGE = 'nexus-delta-node:fake';

engineContract('fake', async () => {
  const engine = new FakeEngine({ images: [IMAGE], healthOf: (s) => (s.healthcheck?.test.join(' ').includes('exit(1)') ? 'unhealthy' : 'healthy') });
  return {
    engine,
    image: IMAGE,
    ...NODE_PROBES,
    labels: { 'dev.nexus-delta.test': 'fake' },
    prefix: 'fake',
    ports: [9301, 9302, 9303],
    holdPort: async (port) => {
      engine.heldPorts.add(port);
      return async () => void engine.heldPorts.delete(port);
    },
    hostNodeRef: 'nexus-delta-node:fake-offline',
  };
});
