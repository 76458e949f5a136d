import type { Engine } from './engine.js';
import { LIGHT_CALLS, LightEngine, lightTarget, type LightCall } from './light.js';

/** Where dockerode will connect: DOCKER_HOST, else the default socket (Docker's own rule). */
export function engineEndpoint(env: Record<string, string | undefined> = process.env): string {
  return env.DOCKER_HOST || 'unix:///var/run/docker.sock';
}

/**
 * The Docker engine for an environment, loaded on its first call: dockerode and its SSH/TLS/gRPC
 * stack take 80-200 ms to import, and commands such as `create` never talk to the engine. The
 * read-only calls of quick commands (`ping`, `listContainers`: what `list` makes) go through the
 * light node:http client (./light.ts) when DOCKER_HOST is a unix socket or plain tcp, so they never
 * load dockerode; every other call, and every call over TLS or ssh, loads DockerEngine.
 */
export function openDockerEngine(env: Record<string, string | undefined> = process.env): Engine {
  let engine: Promise<Engine> | undefined;
  const load = () => (engine ??= import('./docker.js').then(({ DockerEngine }) => new DockerEngine({ env })));
  const endpoint = engineEndpoint(env);
  const target = lightTarget(env);
  const light = target ? new LightEngine(endpoint, target) : undefined;
  return new Proxy({} as Engine, {
    get(_, prop) {
      if (prop === 'endpoint') return endpoint;
      if (light && (LIGHT_CALLS as readonly (string | symbol)[]).includes(prop)) {
        const call = prop as LightCall;
        return (...args: unknown[]) => (light[call] as (...a: unknown[]) => Promise<unknown>).apply(light, args);
      }
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
