#!/usr/bin/env bash
# ferry logs round trip (called by bench/run.sh; also runs alone):
#   bash bench/logs.sh BUILD_DIR
# One registry and one agent on 127.0.0.1, an app that wrote 1000 lines.
# N calls (FERRY_BENCH_LOGS_CALLS, default 20) of `ferry logs NAME --tail
# 100`, interleaved with as many `ferry versions NAME` (the baseline: a
# CLI process, a key-less registry round trip), median and p95 (nearest
# rank) of each and their ratio. The logs call signs an action, the
# registry wakes the agent's parked poll, the agent reads its log file and
# answers on its report channel. Figures only; nothing is asserted.
set -euo pipefail
BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
N=${FERRY_BENCH_LOGS_CALLS:-20}
FERRY="$BUILD/cli/ferry"
REGISTRY="$BUILD/registry/ferry-registry"
AGENT="$BUILD/agent/ferry-agent"
unset FERRY_REGISTRY FERRY_KEY FERRY_TRUST FERRY_AGENT_HEARTBEAT_MS

W=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-logs.XXXXXX")
PIDS=()
cleanup() {
  local p d
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for d in /proc/[0-9]*; do # workloads outlive their agent by design
    case "$(readlink "$d/cwd" 2>/dev/null)" in
      "$W" | "$W"/*) kill -9 "${d#/proc/}" 2>/dev/null || true ;;
    esac
  done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "bench/logs.sh: $*" >&2; exit 1; }
now_ns() { date +%s%N; }
wait_until() {
  local limit=$1; shift
  local deadline=$(( $(now_ns) + limit * 1000000000 ))
  until "$@" >/dev/null 2>&1; do
    [ "$(now_ns)" -lt "$deadline" ] || return 1
    sleep 0.02
  done
}
# stats FILE -> "median p95" (nearest rank), in ms with one decimal
stats() {
  sort -g "$1" | awk '{a[NR]=$1} END {
    p = int(NR * 0.95); if (p < NR * 0.95) p++;
    printf "%.1f %.1f\n", a[int((NR+1)/2)], a[p]}'
}
timed() { # timed FILE CMD...: append CMD's wall time in ms
  local f=$1; shift
  local t0; t0=$(now_ns)
  "$@" >/dev/null || die "failed: $*"
  echo "scale=3; ($(now_ns) - $t0) / 1000000" | bc -l >> "$f"
}

"$FERRY" keygen ops --dir "$W" >/dev/null
"$FERRY" hosts token --key "$W/ops.key" --ttl 1d -o "$W/join.token" 2>/dev/null
"$REGISTRY" --data "$W/reg" --listen tcp://127.0.0.1:0 --http 127.0.0.1:0 --trust "$W/ops.pub" 2>"$W/reg.log" &
PIDS+=("$!")
wait_until 10 grep -q 'listening on' "$W/reg.log" || die "registry did not start"
URL=$(grep -o 'tcp://[0-9.]*:[0-9]*' "$W/reg.log" | head -n 1)
export FERRY_REGISTRY="$URL" FERRY_KEY="$W/ops.key"
"$AGENT" --registry "$URL" --state "$W/a1" --name a1 --label role=bench --trust "$W/ops.pub" \
    --plugins "$BUILD/plugins" --join-token "$W/join.token" 2>"$W/a1.log" &
PIDS+=("$!")

mkdir -p "$W/app"
printf 'name: chatty\nversion: "1"\nkind: app\nruntime: exec\nrun:\n  command: ["./talk.sh"]\n' \
    > "$W/app/ferry.yaml"
printf '#!/bin/sh\nseq -f "line %%g of the benchmark output, padded to a typical width" 1000\nexec sleep 100000\n' \
    > "$W/app/talk.sh"
chmod +x "$W/app/talk.sh"
"$FERRY" publish "$W/app" >/dev/null
"$FERRY" deploy chatty@1 --to role=bench >/dev/null
"$FERRY" status --wait chatty@1 --timeout 30 >/dev/null || die "chatty did not start"
has_all() { "$FERRY" logs chatty --host a1 --tail 1 | grep -q 'line 1000 '; }
wait_until 10 has_all || die "no output from chatty"
lines=$("$FERRY" logs chatty --host a1 --tail 100 | wc -l)
bytes=$("$FERRY" logs chatty --host a1 --tail 100 | wc -c)

for _ in $(seq "$N"); do
  timed "$W/t.versions" "$FERRY" versions chatty
  timed "$W/t.logs" "$FERRY" logs chatty --host a1 --tail 100
  timed "$W/t.all" "$FERRY" logs chatty --tail 100
done
read -r v_med v_p95 < <(stats "$W/t.versions")
read -r l_med l_p95 < <(stats "$W/t.logs")
read -r a_med a_p95 < <(stats "$W/t.all")
ratio() { echo "scale=2; $1 / $2" | bc -l | sed 's/^\./0./'; }

echo
echo "== ferry logs round trip ($(nproc) cores, $(uname -r)), $N calls each (ms)"
printf '%-58s %8s %8s %8s\n' "measurement" "median" "p95" "ratio"
printf '%-58s %8s %8s %8s\n' "  ferry versions (baseline: CLI + registry round trip)" "$v_med" "$v_p95" "1.00"
printf '%-58s %8s %8s %8s\n' "  ferry logs --host a1 --tail 100 ($lines lines, $bytes B)" "$l_med" "$l_p95" "$(ratio "$l_med" "$v_med")"
printf '%-58s %8s %8s %8s\n' "  ferry logs --tail 100 (hosts looked up, prefixed)" "$a_med" "$a_p95" "$(ratio "$a_med" "$v_med")"
echo "  (ratio: median / baseline median; the logs call signs an action and goes"
echo "   registry -> agent poll -> agent reply -> registry -> CLI)"
