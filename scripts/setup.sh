#!/usr/bin/env bash
# Set this checkout up to run the demo and the tests, skipping what is already there:
#
# - a Docker engine, docker-compose, nginx and docker-registry (scripts/ensure-docker.sh: installs
#   Debian's packages when missing, which needs root, and starts dockerd when none answers)
# - node_modules exactly as package-lock.json says (`npm ci`), only when node_modules is missing or
#   older than package-lock.json (npm's own record of the last install, node_modules/.package-lock.json,
#   tells when)
#
# The README's two lines run it: `bash scripts/setup.sh && npm run demo`, `bash scripts/setup.sh && npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

bash scripts/ensure-docker.sh
log "engine $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"

log "node $(node --version), npm $(npm --version)"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing dependencies (npm ci)"
  npm ci --no-audit --no-fund
else
  log "dependencies up to date with package-lock.json"
fi
