/**
 * The supervisor in the manager (issue 9 §5, §6): the factory createManager's `supervisor` seam
 * takes (ManagerSupervisor, src/server/manager.ts). The supervisor runs on the manager's fleet deps,
 * publishes its decisions on the event bus (`supervisor.<type>` on topic agents, events-bus.ts, so
 * the streams see them), replaces
 * the observed-state rotation with its health tracker's view (the gateway then routes only to
 * replicas that passed their last checks), samples the gateway's in-flight calls for autoscaling,
 * starts with the manager (restoring desired state at once) and stops before the gateway closes.
 */
import { supervisorStreamEvent } from './events-bus.js';
import type { ManagerContext, ManagerSupervisor } from './manager.js';
import { Supervisor, type SupervisorOptions } from '../supervisor/supervisor.js';

/** A ManagerSupervisor with the Supervisor itself (tests and the API read it). */
export interface SupervisedManager extends ManagerSupervisor {
  supervisor: Supervisor;
}

/**
 * `createManager({ ..., supervisor: superviseManager(opts) })`. `opts` are the Supervisor's (probe
 * interval 5000 ms, 3 failures, the restart policy, the autoscale source); `loadOf` defaults to the
 * gateway's in-flight calls of the agent.
 * @throws AppError USAGE for bad options (when createManager calls the factory; nothing stays open)
 */
export function superviseManager(opts: SupervisorOptions = {}): (ctx: ManagerContext) => SupervisedManager {
  return (ctx) => {
    const supervisor: Supervisor = new Supervisor(ctx.fleet.deps, {
      loadOf: (slug) => ({ inflight: ctx.gateway.inflight(slug), replicas: supervisor.rotation(slug).filter((r) => r.inRotation).length }),
      onEvent: (e) => ctx.events.publish(supervisorStreamEvent(e)),
      ...opts,
    });
    return {
      supervisor,
      rotation: { rotation: async (slug) => supervisor.rotation(slug) },
      start: () => supervisor.start(),
      close: () => supervisor.stop(),
    };
  };
}
