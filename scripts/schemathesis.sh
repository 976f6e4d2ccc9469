#!/usr/bin/env bash
# Schema testing: schemathesis against /api/openapi.json, with the engine up.
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]      (default 25 per operation and phase)
#
# Builds the server, starts it on a free loopback port with its own
# --instance, --state-dir and session network, an API token, the rate
# limits off (schemathesis sends bad tokens, which would lock the address
# out), only the local test image allowed and egress denied to sessions;
# makes a session and runs a command in it for the tests to use; runs every
# phase (examples, coverage, fuzzing, stateful) with every check; prints a
# summary (operations, requests, statuses, failures by check, 5xx) from the
# JUnit report and the hooks' tally in target/schemathesis-report/. The server is stopped and its containers and
# network removed whatever happens. Exits non-zero on any failure.
#
# Settings and hooks: scripts/schemathesis/ (schemathesis.toml, hooks.py).
# ST_SEED=N repeats a run's generation; ST_VENV moves the virtualenv;
# ST_MIN_REQUESTS (default 1000) is the fewest generated requests that pass;
# STUDIO_ST_DEBUG=1 adds each request's parts and the answer's start to the
# tally (large: request bodies are kept whole).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MAX_EXAMPLES="${1:-25}"
ST_VERSION=4.32.5
VENV="${ST_VENV:-$ROOT/target/schemathesis-venv}"
IMAGE="${STUDIO_TEST_IMAGE:-studio-test-busybox:latest}"
REPORT="$ROOT/target/schemathesis-report"

log() { printf 'schemathesis: %s\n' "$*" >&2; }

if ! "$VENV/bin/st" --version 2>/dev/null | grep -qx "st, version $ST_VERSION"; then
  log "installing schemathesis $ST_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi

scripts/ensure-docker.sh
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  scripts/build-test-image.sh >/dev/null
fi

log "building the server"
cargo build --release --quiet --bin claude-studio

instance="st-$$-$RANDOM"
network="studio-$instance"
work=$(mktemp -d /tmp/studio-schemathesis.XXXXXX)
mkdir -p "$work/state" "$work/roots/ws"
chown 1000:1000 "$work/roots/ws" 2>/dev/null || true
token="st-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
server_pid=

cleanup() {
  local rc=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  local left
  left=$(docker ps -aq --filter "label=studio.instance=$instance")
  if [ -n "$left" ]; then
    # shellcheck disable=SC2086
    docker rm -f $left >/dev/null || true
  fi
  docker network rm "$network" >/dev/null 2>&1 || true
  if [ -n "$(docker ps -aq --filter "label=studio.instance=$instance")" ]; then
    log "containers of $instance are left over"
    rc=1
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting the server (instance $instance)"
target/release/claude-studio \
  --listen 127.0.0.1:0 \
  --instance "$instance" \
  --state-dir "$work/state" \
  --network "$network" \
  --egress deny \
  --default-image "$IMAGE" \
  --allowed-image "$IMAGE" \
  --workspace-root "$work/roots" \
  --api-token "$token" \
  --rate-limit-auth off --rate-limit-general off --rate-limit-container off --rate-limit-preview off \
  --rate-limit-ws off \
  --max-sessions-per-owner 12 \
  --session-timeout 2h \
  >"$work/server.out" 2>"$work/server.err" &
server_pid=$!

addr=
for _ in $(seq 1 300); do
  addr=$(sed -n 's#^claude-studio listening on http://##p' "$work/server.out" | head -n1)
  [ -n "$addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$addr" ]; then
  log "the server did not start"
  tail -n 20 "$work/server.err" >&2 || true
  exit 1
fi
base="http://$addr"
log "server on $base"

api() {
  curl -sS --fail-with-body --max-time 120 -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' "$@"
}
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

session=$(api -X POST "$base/api/containers" -d '{}' | json_field sessionId)
log "session $session"
done_exec=$(api -X POST "$base/api/containers/$session/exec" \
  -d '{"cmd":["sh","-c","echo out; echo err >&2"],"execId":"st-done","timeout":30}' | json_field execId)
api -X PUT "$base/api/containers/$session/files/content?path=/workspace/notes.txt" \
  -H 'Content-Type: application/octet-stream' --data-binary 'hello' >/dev/null

rm -rf "$REPORT"
mkdir -p "$REPORT"
# The document the run is made against, as the server serves it. Loaded
# from a file: loaded from its URL, schemathesis leaves out the operation
# that serves it (`GET /api/openapi.json`).
api "$base/api/openapi.json" >"$REPORT/openapi.json"
seed=()
[ -n "${ST_SEED:-}" ] && seed=(--seed "$ST_SEED")

log "running schemathesis ($MAX_EXAMPLES examples per operation and phase)"
st_rc=0
STUDIO_ST_BASE_URL="$base" STUDIO_ST_TOKEN="$token" STUDIO_ST_SESSION="$session" \
  STUDIO_ST_IMAGE="$IMAGE" STUDIO_ST_WORKSPACE_DIR="$work/roots/ws" STUDIO_ST_DONE_EXEC="$done_exec" \
  STUDIO_ST_TALLY="$REPORT/tally.jsonl" STUDIO_ST_DOCUMENT="$REPORT/openapi.json" \
  STUDIO_ST_CACHE="$ROOT/target/schemathesis-cache" \
  PYTHONPATH="$ROOT/scripts/schemathesis" SCHEMATHESIS_HOOKS=hooks \
  "$VENV/bin/st" --config-file "$ROOT/scripts/schemathesis/schemathesis.toml" run \
  "$REPORT/openapi.json" --url "$base" \
  --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$MAX_EXAMPLES" \
  "${seed[@]}" \
  --report junit --report-dir "$REPORT" \
  --no-color || st_rc=$?

summary_rc=0
"$VENV/bin/python" "$ROOT/scripts/schemathesis/summary.py" "$REPORT" "${ST_MIN_REQUESTS:-1000}" \
  | tee "$REPORT/summary.txt" || summary_rc=$?

if ! kill -0 "$server_pid" 2>/dev/null; then
  log "the server died during the run"
  tail -n 20 "$work/server.err" >&2 || true
  exit 1
fi
if grep -q 'panicked' "$work/server.err"; then
  log "the server panicked:"
  grep -A3 'panicked' "$work/server.err" | head -n 20 >&2
  exit 1
fi
if [ "$st_rc" != 0 ] || [ "$summary_rc" != 0 ]; then
  log "FAILED (schemathesis exit $st_rc)"
  exit 1
fi
log "passed"
