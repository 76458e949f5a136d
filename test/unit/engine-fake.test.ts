import { FakeEngine } from '../../src/engine/fake.js';
import { engineContract } from '../helpers/engine-contract.js';

const IMAGE = 'nexus-delta-node:fake';

engineContract('fake', async () => {
  const engine = new FakeEngine({ images: [IMAGE], healthOf: (s) => (s.healthcheck?.test.join(' ').includes('exit(1)') ? 'unhealthy' : 'healthy') });
  return {
    engine,
    image: IMAGE,
    cmd: ['node', '-e', 'setInterval(() => {}, 1e9)'],
    passing: ['node', '-e', '0'],
    failing: ['node', '-e', 'process.exit(1)'],
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
