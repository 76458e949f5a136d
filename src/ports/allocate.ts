import { AppError } from '../errors.js';

/** An inclusive range of TCP ports, e.g. 8081-8180. */
export interface PortRange {
  from: number;
  to: number;
}

/**
 * Parse "8081-8180" (inclusive) into a PortRange.
 * @throws AppError CONFIG_INVALID when malformed, reversed or outside 1-65535.
 */
export function parsePortRange(text: string): PortRange {
  const m = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(text);
  const from = m ? Number(m[1]) : NaN;
  const to = m ? Number(m[2]) : NaN;
  if (!m || from < 1 || to > 65535 || from > to) {
    throw new AppError('CONFIG_INVALID', `port range '${text}' is not FROM-TO within 1-65535`, {
      hint: 'use a range like 8081-8180 (NEXUS_PORT_RANGE or ports.range in nexus.yaml)',
    });
  }
  return { from, to };
}

export function inRange(range: PortRange, port: number): boolean {
  return Number.isInteger(port) && port >= range.from && port <= range.to;
}

/**
 * Ports of the range not reserved in the registry, lowest first. Pure.
 * @param reserved ports already held by agent records.
 */
export function candidatePorts(range: PortRange, reserved: ReadonlySet<number>): number[] {
  const out: number[] = [];
  for (let p = range.from; p <= range.to; p++) if (!reserved.has(p)) out.push(p);
  return out;
}

/** A port the registry already holds for another agent. */
export function portReserved(port: number, holder: string): AppError {
  return new AppError('PORT_IN_USE', `port ${port} is already reserved by agent '${holder}'`, {
    hint: 'omit --port to get a free port from the range',
    details: { port, agent: holder },
  });
}

/** Says whether a host port can be bound now (something else may hold it). */
export type HostPortProbe = (port: number) => Promise<boolean>;

/**
 * Pick the port for a new agent: the requested one (checked), or the lowest free port of the range.
 * A port is free when no registry record holds it and `isHostPortFree` says the host can bind it.
 * @throws AppError PORT_OUT_OF_RANGE, PORT_IN_USE (requested port held), PORT_RANGE_EXHAUSTED.
 */
export async function choosePort(opts: {
  range: PortRange;
  reserved: ReadonlyMap<number, string>;
  requested?: number | undefined;
  isHostPortFree: HostPortProbe;
}): Promise<number> {
  const { range, reserved, requested, isHostPortFree } = opts;
  const rangeText = `${range.from}-${range.to}`;
  if (requested !== undefined) {
    if (!inRange(range, requested)) {
      throw new AppError('PORT_OUT_OF_RANGE', `port ${requested} is outside the agent port range ${rangeText}`, {
        hint: `choose a port in ${rangeText}, or widen the range (ports.range in nexus.yaml)`,
        details: { port: requested },
      });
    }
    const holder = reserved.get(requested);
    if (holder !== undefined) throw portReserved(requested, holder);
    if (!(await isHostPortFree(requested))) {
      throw new AppError('PORT_IN_USE', `port ${requested} is already in use on this host`, {
        hint: `free the port (e.g. 'ss -ltnp | grep :${requested}') or omit --port`,
        details: { port: requested },
      });
    }
    return requested;
  }
  for (const port of candidatePorts(range, new Set(reserved.keys()))) {
    if (await isHostPortFree(port)) return port;
  }
  throw new AppError('PORT_RANGE_EXHAUSTED', `no free port left in ${rangeText}`, {
    hint: 'remove unused agents or widen the range (ports.range in nexus.yaml)',
  });
}
