#!/usr/bin/env bash
# Makes sure a Docker engine answers. On a fresh machine (root, no engine) it
# installs Debian's docker.io and starts dockerd in the background.
set -euo pipefail

log() { printf 'ensure-docker: %s\n' "$*" >&2; }

if docker info >/dev/null 2>&1; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    log "no Docker engine answers and dockerd is not installed; install Debian's docker.io (as root) or start an engine"
    exit 1
  fi
  log "installing docker.io"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

if [ "$(id -u)" != 0 ]; then
  log "no Docker engine answers; start dockerd (as root) or set DOCKER_HOST"
  exit 1
fi

log "starting dockerd"
mkdir -p /var/log
# In a session of its own: it outlives the shell (or tool) that started it.
setsid nohup dockerd >/var/log/claude-studio-dockerd.log 2>&1 < /dev/null &
for _ in $(seq 1 120); do
  if docker info >/dev/null 2>&1; then
    log "engine is up"
    exit 0
  fi
  sleep 0.5
done
log "dockerd did not come up; see /var/log/claude-studio-dockerd.log"
tail -n 20 /var/log/claude-studio-dockerd.log >&2 || true
exit 1
