import { AppError } from '../errors.js';

/** The errors every Registry implementation (and the manager) raises for the same cases. */

export function notFound(slugOrName: string): AppError {
  return new AppError('AGENT_NOT_FOUND', `no agent named '${slugOrName}' in this workspace`, {
    hint: "see 'agent list' for the agents here, or pass --workspace",
    details: { agent: slugOrName },
  });
}

/** An agent with this slug exists already (`name` is its display name, when known). */
export function nameTaken(slug: string, name?: string): AppError {
  return new AppError('NAME_TAKEN', `an agent named '${name ?? slug}' (slug ${slug}) already exists`, {
    hint: `choose another --name, or remove it first: agent remove --name ${name ?? slug}`,
    details: { agent: slug },
  });
}

/** An agent whose `remove` waits for its marketplace listing to go (marketplace.pending unregister). */
export function beingRemoved(name: string): AppError {
  return new AppError('AGENT_NOT_FOUND', `agent '${name}' is being removed (its marketplace listing is removed once the marketplace answers)`, {
    hint: `finish it: agent remove --name ${name}`,
    details: { agent: name },
  });
}
