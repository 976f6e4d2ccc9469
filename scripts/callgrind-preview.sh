#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: the
# preview (the server under valgrind) and the bench's bare hyper forwarder,
# against the same container app. Instruction counts barely move between
# runs, unlike wall-clock figures on a shared machine.
#
#   scripts/callgrind-preview.sh [N]     # N requests per workload (2000)
#
# Needs Docker, valgrind (apt-get install valgrind) and the test image
# (scripts/build-test-image.sh). Builds a release server and the preview
# bench with line tables into target/prof. For each of /small (3 B) and
# /html20k (a 20 KB page, injected by the preview), over one kept-alive
# connection: 200 requests to warm up, counters zeroed, N requests, counters
# dumped; the total over N. The same window with no requests, for as long,
# is measured and subtracted (the server's own timers: a session's port
# watch polls the engine every 100 ms while the session is in use).
# SERVER_BIN=path measures another server binary (an older build, say);
# CALLGRIND_NO_BUILD=1 builds nothing; CALLGRIND_ONLY=preview|bare.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
OUT=${CALLGRIND_OUT:-target/prof/callgrind}
export CARGO_TARGET_DIR=target/prof CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
  CARGO_PROFILE_BENCH_DEBUG=line-tables-only
bench_bin() { ls -t target/prof/release/deps/preview-* 2>/dev/null | grep -v '\.d$' | head -1 || true; }
if [ -z "${CALLGRIND_NO_BUILD:-}" ]; then
  cargo build --release --bin claude-studio
  # The forwarder is the bench's own code: built once.
  [ -n "$(bench_bin)" ] || cargo bench --bench preview --no-run
fi
BENCH=$(bench_bin)
# CALLGRIND_ONLY=preview or bare measures one of the two.
ONLY=${CALLGRIND_ONLY:-}
IMAGE=${STUDIO_TEST_IMAGE:-studio-test-busybox:latest}
rm -rf "$OUT" && mkdir -p "$OUT"
INSTANCE=callgrind-$$
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  docker ps -aq --filter "label=studio.instance=$INSTANCE" | xargs -r docker rm -f >/dev/null 2>&1 || true
  [ -z "${STATE:-}" ] || rm -rf "$STATE"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

export PYTHONUNBUFFERED=1
cat >"$OUT/client.py" <<'EOF'
import http.client, sys, urllib.parse
base, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
u = urllib.parse.urlsplit(base)
c = http.client.HTTPConnection(u.hostname, u.port)
for _ in range(n):
    c.request("GET", u.path + path)
    r = c.getresponse()
    r.read()
    assert r.status == 200, (base + path, r.status)
EOF
# N GETs of PATH on one connection (after 200 to warm up), callgrind's
# counters of PID zeroed before and dumped after, as NAME; then as long
# again with no requests, as NAME-idle.
measure() { # PID BASE PATH NAME
  local pid=$1 base=$2 path=$3 name=$4
  python3 "$OUT/client.py" "$base" "$path" 200
  callgrind_control -z "$pid" >/dev/null
  local t0 t1
  t0=$(date +%s.%N)
  python3 "$OUT/client.py" "$base" "$path" "$N"
  callgrind_control -d "$name" "$pid" >/dev/null
  t1=$(date +%s.%N)
  callgrind_control -z "$pid" >/dev/null
  sleep "$(echo "$t1 - $t0" | bc)"
  callgrind_control -d "$name-idle" "$pid" >/dev/null
}

# The server, under callgrind (it makes the session the forwarder uses too).
PORT=$(free_port)
STATE=$(mktemp -d)
RUST_LOG=claude_studio=warn valgrind --tool=callgrind --callgrind-out-file="$OUT/server.out" \
  "${SERVER_BIN:-target/prof/release/claude-studio}" --listen "127.0.0.1:$PORT" --instance "$INSTANCE" \
  --default-image "$IMAGE" --state-dir "$STATE" >"$OUT/server.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
for _ in $(seq 120); do curl -sf "127.0.0.1:$PORT/api/health" >/dev/null && break; sleep 1; done
CREATED=$(curl -sf -XPOST "127.0.0.1:$PORT/api/containers" -H 'content-type: application/json' -d '{}')
SID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["sessionId"])' "$CREATED")
CID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["containerId"])' "$CREATED")
docker exec -d "$CID" preview-upstream 8080
curl -sf -XPOST "127.0.0.1:$PORT/api/preview/configure" -H 'content-type: application/json' \
  -d "{\"sessionId\":\"$SID\",\"port\":8080}" >/dev/null
IP=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$CID")
for _ in $(seq 60); do curl -sf "127.0.0.1:$PORT/preview/$SID/small" >/dev/null && break; sleep 1; done

if [ "$ONLY" != preview ]; then
# The bare forwarder, under callgrind.
valgrind --tool=callgrind --callgrind-out-file="$OUT/bare.out" \
  "$BENCH" --bare-forwarder "$IP:8080" >"$OUT/bare.port" 2>"$OUT/bare.log" &
BARE=$!
PIDS+=("$BARE")
for _ in $(seq 60); do [ -s "$OUT/bare.port" ] && break; sleep 1; done
BARE_PORT=$(head -1 "$OUT/bare.port")

measure "$BARE" "http://127.0.0.1:$BARE_PORT" /small bare-small
measure "$BARE" "http://127.0.0.1:$BARE_PORT" /html20k bare-html20k
fi
if [ "$ONLY" != bare ]; then
measure "$SERVER" "http://127.0.0.1:$PORT/preview/$SID" /small preview-small
measure "$SERVER" "http://127.0.0.1:$PORT/preview/$SID" /html20k preview-html20k
fi

total() { # the summed Ir of one dump (callgrind_control -d writes FILE.N)
  local f
  f=$(ls "$OUT"/*.out.* | xargs grep -l "^desc: Trigger: .*$1\$" | head -1)
  grep -E '^(summary|totals):' "$f" | head -1 | awk '{print $2}'
}
printf '| workload | path | instructions per request |\n|---|---|---:|\n'
for w in small html20k; do
  for p in preview bare; do
    [ "$ONLY" = "" ] || [ "$ONLY" = "$p" ] || continue
    busy=$(total "$p-$w")
    idle=$(total "$p-$w-idle")
    printf '| %s | %s | %s |\n' "$w" "$p" $(((busy - idle) / N))
  done
done
