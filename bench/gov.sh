#!/usr/bin/env bash
# Governance benchmarks (called by bench/run.sh; also runs alone):
#   bash bench/gov.sh BUILD_DIR
# 1. Envelope verification on the agent, median of 1000 (ferry-govbench),
#    against one deploy-record verification and the record verifications
#    the agent does anyway, timed in the same run.
# 2. ferry audit --verify on 100,000 entries (FERRY_BENCH_AUDIT_N), median
#    of 3, against ferry audit (the same pages fetched and printed, nothing
#    hashed) and sqlite3 reading the table, in the same run.
# Figures only; nothing is asserted.
set -euo pipefail
BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
N=${FERRY_BENCH_AUDIT_N:-100000}
ROUNDS=${FERRY_BENCH_AUDIT_ROUNDS:-3}
FERRY="$BUILD/cli/ferry"
REGISTRY="$BUILD/registry/ferry-registry"
GOVBENCH="$BUILD/bench/ferry-govbench"
unset FERRY_REGISTRY FERRY_KEY FERRY_TRUST

W=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-gov.XXXXXX")
REG_PID=
cleanup() { [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run_timed() {
  local f=$1; shift
  local t0 t1
  t0=$(now); "$@" >/dev/null; t1=$(now)
  echo "$t1 - $t0" | bc -l >> "$f"
}

echo
echo "== desired-state envelope verification (agent, in-process)"
"$GOVBENCH" envelope 1000 10

echo
echo "== ferry audit --verify on $N entries"
mkdir -p "$W/reg"
"$GOVBENCH" auditfill "$W/reg" "$N"
"$REGISTRY" --data "$W/reg" --listen tcp://127.0.0.1:0 --http 127.0.0.1:0 2>"$W/reg.log" &
REG_PID=$!
for _ in $(seq 500); do grep -q 'listening on' "$W/reg.log" && break; sleep 0.01; done
URL=$(grep -o 'tcp://[0-9.]*:[0-9]*' "$W/reg.log" | head -n 1)
"$FERRY" audit --verify --registry "$URL" | grep -q "verified: $N entries" \
  || { echo "the filled log does not verify" >&2; exit 1; }
for _ in $(seq "$ROUNDS"); do
  run_timed "$W/t.verify" "$FERRY" audit --verify --registry "$URL"
  run_timed "$W/t.list" "$FERRY" audit --registry "$URL"
  run_timed "$W/t.sqlite" sqlite3 -readonly "$W/reg/registry.db" "SELECT * FROM audit"
done
v=$(median < "$W/t.verify"); l=$(median < "$W/t.list"); s=$(median < "$W/t.sqlite")
printf '%-58s %10s %8s\n' "measurement (median of $ROUNDS)" "seconds" "ratio"
printf '%-58s %10.3f %8s\n' "ferry audit, $N entries listed (baseline)" "$l" "1.00"
printf '%-58s %10.3f %8.2f\n' "sqlite3 reading the table (floor)" "$s" "$(echo "$s / $l" | bc -l)"
printf '%-58s %10.3f %8.2f\n' "ferry audit --verify, $N entries" "$v" "$(echo "$v / $l" | bc -l)"
