#!/usr/bin/env bash
# Run one fuzz target for a set time and fail on any crash, leak or UBSan
# error (libFuzzer exits non-zero on each).
#
#   run.sh BIN SEEDS SECONDS [CORPUS]
#
# New inputs go to CORPUS (kept, for make fuzz) or to a scratch dir removed
# afterwards (the ctest smoke); SEEDS is only read. A crashing input is kept
# in $FERRY_FUZZ_ARTIFACTS (default: the directory of BIN, artifacts/) and
# its path printed, so `BIN FILE` reproduces it.
set -euo pipefail

bin=${1:?usage: run.sh BIN SEEDS SECONDS [CORPUS]}
seeds=${2:?usage: run.sh BIN SEEDS SECONDS [CORPUS]}
secs=${3:?usage: run.sh BIN SEEDS SECONDS [CORPUS]}
corpus=${4:-}
name=$(basename "$bin")

if [ ! -x "$bin" ]; then
  echo "$name: $bin is not built (make test and make fuzz build it with clang into build-fuzz/)" >&2
  exit 1
fi
if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds")" ]; then
  echo "$name: no seed corpus in $seeds (the fuzz build generates it)" >&2
  exit 1
fi
case $secs in '' | *[!0-9]*) echo "$name: seconds must be a whole number, not '$secs'" >&2; exit 2 ;; esac

# Scratch for the target's own files (registry data dir, bundle staging):
# tmpfs when there is one, so the registry's fsyncs cost nothing.
base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
work=$(mktemp -d "$base/ferry-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tmp" "$work/corpus"
if [ -z "$corpus" ]; then
  corpus=$work/corpus
fi
mkdir -p "$corpus"
artifacts=${FERRY_FUZZ_ARTIFACTS:-$(dirname "$bin")/artifacts}
mkdir -p "$artifacts"

export FERRY_FUZZ_TMP=$work/tmp
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

rc=0
"$bin" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$artifacts/$name-" "$corpus" "$seeds" >"$work/log" 2>&1 || rc=$?

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1)
units=$(sed -n 's/^stat::new_units_added: *//p' "$work/log" | tail -1)
rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/log" | tail -1)
cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -1 || true)
if [ "$rc" -ne 0 ]; then
  echo "$name: FAILED (exit $rc) after ${execs:-?} executions; libFuzzer's report:" >&2
  grep -v -e '^#[0-9]' -e '^ferry-registry: ' "$work/log" | tail -60 >&2
  ls "$artifacts"/"$name"-* 2>/dev/null | sed 's/^/  input kept: /' >&2 || true
  exit 1
fi
echo "$name: ${execs:-?} executions in ${secs} s (${rate:-?}/s), ${cov:-cov: ?}, ${units:-0} new inputs, peak RSS ${rss:-?} MB"
