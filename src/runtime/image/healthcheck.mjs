// Docker HEALTHCHECK of agent containers: exit 0 when GET /health answers 200 within 2 s, else 1.
// (No curl/wget in the offline base image, so Node itself does the probe.)
const port = process.env.PORT ?? '8080';
fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) }).then(
  (res) => process.exit(res.ok ? 0 : 1),
  () => process.exit(1),
);
