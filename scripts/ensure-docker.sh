#!/usr/bin/env bash
# Make a Docker engine available on a Debian host, idempotently.
#
# - installs Debian's docker.io (dockerd, containerd, runc), docker-compose, nginx,
#   docker-registry (the distribution registry) and redis-server (the shared task store) when missing
# - starts dockerd in the background when /var/run/docker.sock does not answer
# - waits (up to 60 s) for the engine to answer `docker info`
#
# Safe to run again: it skips what is already installed or running. Needs root (apt-get, dockerd).
# Users who already run Docker Desktop or a system dockerd never need this script.
set -euo pipefail

SOCK=${DOCKER_SOCK:-/var/run/docker.sock}
LOG=${DOCKERD_LOG:-/tmp/dockerd.log}

log() { printf 'ensure-docker: %s\n' "$*" >&2; }

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || need_pkgs+=(docker-compose)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_pkgs+=(nginx)
# the distribution registry, for `agent push` tests on loopback
command -v docker-registry >/dev/null 2>&1 || need_pkgs+=(docker-registry)
# the shared task store's server, started by the tests on a free loopback port (src/tasks/redis-store.ts)
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
# the static busybox copied into agent images for their health probe (a wget, not a second node)
dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
# the dashboard's browser tests drive Debian's chromium with playwright-core (test/integration/dashboard.test.ts)
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing ${need_pkgs[*]}; run as root or install them yourself"; exit 1
  fi
  log "installing ${need_pkgs[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # Keep any docker CLI already on PATH; docker.io brings its own in /usr/bin.
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  # nginx's and docker-registry's packages start services on systemd hosts; we only want the binaries.
  if command -v service >/dev/null 2>&1; then
    service nginx stop >/dev/null 2>&1 || true
    service docker-registry stop >/dev/null 2>&1 || true
    service redis-server stop >/dev/null 2>&1 || true
  fi
fi

engine_up() { docker -H "unix://$SOCK" info >/dev/null 2>&1; }

if engine_up; then
  log "engine already running at $SOCK"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  log "no engine at $SOCK and not root: start Docker yourself (systemctl start docker)"; exit 1
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  log "starting dockerd (log: $LOG)"
  rm -f /var/run/docker.pid
  nohup dockerd --host "unix://$SOCK" >"$LOG" 2>&1 &
fi

for _ in $(seq 1 120); do
  if engine_up; then log "engine ready at $SOCK"; exit 0; fi
  sleep 0.5
done
log "dockerd did not answer within 60 s; last log lines:"
tail -n 20 "$LOG" >&2 || true
exit 1
