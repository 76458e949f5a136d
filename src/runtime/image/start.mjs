// Entry point of every agent container (base image CMD): serve the agent bundled at /app/agent/agent.mjs.
import { runAgent } from '@nexus-delta/runtime';

runAgent(process.env.AGENT_MODULE ?? '/app/agent/agent.mjs').catch((err) => {
  console.error(JSON.stringify({ level: 60, msg: 'agent failed to start', err: String(err?.stack ?? err) }));
  process.exit(1);
});
