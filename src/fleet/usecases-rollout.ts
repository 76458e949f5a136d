import * as z from 'zod';
import { lazy, routerPort, timeout, type UseCase } from './usecase.js';

const rollout = () => import('./rollout.js');
const common = z.object({ name: z.string(), routerPort: z.number().optional(), healthTimeout: z.number().optional(), timeout: z.number().optional() });
const healthTimeout = { flags: '--health-timeout <seconds>', description: 'deadline for the new replicas to pass their health checks (default: start.healthTimeoutS)', parse: 'count' } as const;
const optionsOf = (o: z.infer<typeof common>) => ({
  routerPort: o.routerPort,
  healthTimeoutMs: o.healthTimeout !== undefined ? o.healthTimeout * 1000 : undefined,
  stopTimeoutS: o.timeout,
});

/** Agent versioning (src/fleet/rollout.ts; see src/fleet/usecase.ts for the shape). */
export const ROLLOUT_USE_CASES = [
  {
    name: 'rollout',
    description: "roll out the agent's current source as a new version beside the old one, shift traffic once healthy, drain the old (rolled back if unhealthy)",
    options: [
      { flags: '--name <name>', description: 'agent', required: true },
      { flags: '--version <version>', description: "version to record (default: the manifest's)" },
      routerPort('host port of the local router'),
      healthTimeout,
      timeout,
    ],
    input: lazy(() => common.extend({ version: z.string().optional() })),
    run: async (o, deps) => (await rollout()).rolloutAgent(deps, o.name, { ...optionsOf(o), version: o.version }),
  } satisfies UseCase<z.infer<typeof common> & { version?: string | undefined }>,
  {
    name: 'rollback',
    description: 'return an agent to the version deployed before the running one (its kept image), with the same zero-drop replacement',
    options: [{ flags: '--name <name>', description: 'agent', required: true }, routerPort('host port of the local router'), healthTimeout, timeout],
    input: lazy(() => common),
    run: async (o, deps) => (await rollout()).rollbackAgent(deps, o.name, optionsOf(o)),
  } satisfies UseCase<z.infer<typeof common>>,
] as const;
