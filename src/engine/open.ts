import type { Engine } from './engine.js';

/** Where dockerode will connect: DOCKER_HOST, else the default socket (Docker's own rule). */
export function engineEndpoint(env: Record<string, string | undefined> = process.env): string {
  return env.DOCKER_HOST || 'unix:///var/run/docker.sock';
}

/**
 * The Docker engine for an environment, loaded on its first call: dockerode and its SSH/TLS stack
 * take ~80 ms to import, and commands such as `create` never talk to the engine.
 */
export function openDockerEngine(env: Record<string, string | undefined> = process.env): Engine {
  let engine: Promise<Engine> | undefined;
  const load = () => (engine ??= import('./docker.js').then(({ DockerEngine }) => new DockerEngine({ env })));
  const endpoint = engineEndpoint(env);
  return new Proxy({} as Engine, {
    get(_, prop) {
      if (prop === 'endpoint') return endpoint;
      if (prop === 'then') return undefined; // not a thenable
      // a stream, not a promise: load the engine on the first next()
      if (prop === 'events') {
        return (...args: Parameters<Engine['events']>) => ({
          async *[Symbol.asyncIterator]() {
            yield* (await load()).events(...args);
          },
        });
      }
      return async (...args: unknown[]) => {
        const e = (await load()) as unknown as Record<string | symbol, (...a: unknown[]) => unknown>;
        return e[prop]!.apply(e, args);
      };
    },
  });
}
