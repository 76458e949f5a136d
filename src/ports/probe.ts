import { createServer } from 'node:net';
import type { HostPortProbe } from './allocate.js';

/**
 * A HostPortProbe that asks the kernel: the port is free when a TCP listener can bind `host:port`
 * right now. (get-port is not used here: it locks every port it returns for 15 s process-wide,
 * which would make a second probe of the same port in one process report "in use".)
 * On Linux a listener on 0.0.0.0:P also blocks binding 127.0.0.1:P, so probing the bind address
 * the container will use covers both.
 */
export function hostPortProbe(host: string): HostPortProbe {
  return (port) =>
    new Promise((resolve) => {
      const srv = createServer();
      srv.unref();
      srv.once('error', () => resolve(false));
      srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
    });
}
