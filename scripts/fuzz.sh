#!/usr/bin/env bash
# Runs the fuzz targets (fuzz/, cargo fuzz) one after another, each for a
# given time, and prints a Markdown table of what each did.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 600; no TARGET means all of them. Each
# target's corpus is fuzz/corpus/TARGET (its committed seed-* files, plus
# whatever earlier runs found, which git ignores); its dictionary, if any,
# fuzz/dict/TARGET.dict. A crash, timeout or out-of-memory input is written
# to fuzz/artifacts/TARGET/ and named in the output; reproduce it with
#   fuzz/target/x86_64-unknown-linux-gnu/release/TARGET ARTIFACT
# The full log of each run is fuzz/logs/TARGET.log, the table
# fuzz/logs/summary.md. Exits non-zero if any target crashed, timed out or
# ran out of memory.
#
# Environment: FUZZ_TIMEOUT (seconds one input may take, default 10),
# FUZZ_RSS_LIMIT_MB (default 2048), FUZZ_NO_BUILD=1 (run the binaries
# already in fuzz/target as they are). One target runs at a time, in one
# process (no -jobs or -workers).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-600}"
shift || true
all_targets=(ws_message preview_headers html_inject body_decode config image_ref workspace_path)
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=("${all_targets[@]}")
fi
timeout_s="${FUZZ_TIMEOUT:-10}"
rss_mb="${FUZZ_RSS_LIMIT_MB:-2048}"

# Largest input each target is given.
max_len() {
  case "$1" in
    html_inject) echo 16384 ;;
    body_decode) echo 8192 ;;
    image_ref) echo 1024 ;;
    workspace_path) echo 4400 ;;
    *) echo 4096 ;;
  esac
}

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
# cargo fuzz needs a nightly compiler (sanitizers, -Z flags); without a
# nightly toolchain the stable one is told to accept them.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  build=(cargo +nightly fuzz build)
else
  build=(env RUSTC_BOOTSTRAP=1 cargo fuzz build)
fi
if [ "${FUZZ_NO_BUILD:-}" = 1 ]; then
  echo "not building (FUZZ_NO_BUILD=1)" >&2
else
  echo "building: ${build[*]}" >&2
  "${build[@]}" >&2
fi

bin_dir=fuzz/target/x86_64-unknown-linux-gnu/release
mkdir -p fuzz/logs
summary=fuzz/logs/summary.md
failed=0
rows=()
for t in "${targets[@]}"; do
  if [ ! -x "$bin_dir/$t" ]; then
    echo "unknown target: $t (targets: ${all_targets[*]})" >&2
    exit 2
  fi
  corpus="fuzz/corpus/$t"
  artifacts="fuzz/artifacts/$t"
  log="fuzz/logs/$t.log"
  mkdir -p "$corpus" "$artifacts"
  args=(
    "-max_total_time=$seconds"
    "-timeout=$timeout_s"
    "-rss_limit_mb=$rss_mb"
    "-max_len=$(max_len "$t")"
    "-print_final_stats=1"
    "-artifact_prefix=$artifacts/"
  )
  if [ -f "fuzz/dict/$t.dict" ]; then
    args+=("-dict=fuzz/dict/$t.dict")
  fi
  echo "fuzzing $t for ${seconds}s" >&2
  start=$(date +%s)
  set +e
  "$bin_dir/$t" "${args[@]}" "$corpus" >"$log" 2>&1
  status=$?
  set -e
  elapsed=$(($(date +%s) - start))

  final_stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
  execs=$(final_stat number_of_executed_units)
  rate=$(final_stat average_exec_per_sec)
  execs=${execs:-0}
  rate=${rate:-0}
  # Coverage (edges) and features of the last status line (`DONE` when
  # the run went to its end).
  last=$(grep -E '^#[0-9]+.*cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  size=$(find "$corpus" -type f | wc -l)
  crashes=$(grep -c -E 'Test unit written to .*/(crash|leak)-' "$log" || true)
  timeouts=$(grep -c -E 'Test unit written to .*/timeout-' "$log" || true)
  ooms=$(grep -c -E 'Test unit written to .*/oom-' "$log" || true)
  # A run that died without saying why counts as a crash.
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ] && [ "$timeouts" -eq 0 ] && [ "$ooms" -eq 0 ]; then
    crashes=1
  fi
  rows+=("| $t | $elapsed | $execs | $rate | $size | ${cov:-?} / ${ft:-?} | $crashes | $timeouts | $ooms |")
  if [ "$crashes" -ne 0 ] || [ "$timeouts" -ne 0 ] || [ "$ooms" -ne 0 ]; then
    failed=1
    echo "$t FAILED (exit $status); log: $log" >&2
    grep -E 'Test unit written to' "$log" | sed 's/^/  /' >&2 || true
  fi
done

{
  echo "| target | seconds | executions | exec/s | corpus files | coverage / features | crashes | timeouts | OOMs |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${rows[@]}"
} | tee "$summary"
exit "$failed"
