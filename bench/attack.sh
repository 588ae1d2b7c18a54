#!/usr/bin/env bash
# Registry latency under a client that never reads (called by bench/run.sh;
# also runs alone):  bash bench/attack.sh BUILD_DIR
# `ferry versions` round trips, N of them with no attacker, then N with
# non-reading clients attached (raw TCP speaking SP, see
# tests/integration/poke.c): waves of 8 connections x 12 pipelined 1 MiB
# GetChunk, waves of 8 x 12 parked Polls, and 20 silent connections, a new
# wave every 0.5 s because the registry drops each within about a second.
# Both series run in this invocation on this machine; median, p99 and the
# ratio are printed. Nothing is asserted. Knob: FERRY_BENCH_ATTACK_N (200).
set -euo pipefail
BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
N=${FERRY_BENCH_ATTACK_N:-200}
FERRY="$BUILD/cli/ferry"
REGISTRY="$BUILD/registry/ferry-registry"
AGENT="$BUILD/agent/ferry-agent"
POKE="$BUILD/tests/ferry-poke"
unset FERRY_REGISTRY FERRY_KEY FERRY_TRUST

W=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-attack.XXXXXX")
PIDS=()
WAVES=
cleanup() {
  local p
  # The wave loop ends its own attackers on TERM.
  [ -n "$WAVES" ] && { kill -TERM "$WAVES" 2>/dev/null || true; wait "$WAVES" 2>/dev/null || true; }
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ns() { date +%s%N; }
# stats FILE -> "median p99" (nearest rank) in ms
stats() {
  sort -g "$1" | awk '{a[NR]=$1} END {
    p = int(NR * 0.99); if (p < NR * 0.99) p++;
    printf "%.1f %.1f\n", a[int((NR+1)/2)], a[p]}'
}
measure() { # measure FILE: N timed `ferry versions` round trips, in ms
  local i t0
  : > "$1"
  for i in $(seq "$N"); do
    t0=$(now_ns)
    "$FERRY" versions bench --registry "$URL" >/dev/null
    echo "scale=3; ($(now_ns) - $t0) / 1000000" | bc -l >> "$1"
  done
}

mkdir -p "$W/app"
printf 'name: bench\nversion: "1"\nkind: model\nruntime: model\n' > "$W/app/ferry.yaml"
head -c $((32 * 1048576)) /dev/urandom > "$W/app/weights.bin"
"$FERRY" keygen bench --dir "$W" >/dev/null
# Hosts enroll with a join token signed by an operator key the registry trusts.
"$FERRY" keygen enroll --dir "$W" >/dev/null
"$FERRY" hosts token --key "$W/enroll.key" --ttl 12h -o "$W/join.token" 2>/dev/null
"$REGISTRY" --data "$W/reg" --listen tcp://127.0.0.1:0 --http 127.0.0.1:0 --trust "$W/bench.pub" \
  --trust "$W/enroll.pub" 2>"$W/reg.log" &
PIDS+=($!)
for _ in $(seq 500); do grep -q 'listening on' "$W/reg.log" && break; sleep 0.01; done
URL=$(grep -o 'tcp://[0-9.]*:[0-9]*' "$W/reg.log" | head -n 1)
HOSTPORT=${URL#tcp://}
"$FERRY" publish "$W/app" --registry "$URL" --key "$W/bench.key" >/dev/null
# A registered host, as a real agent.
"$AGENT" --registry "$URL" --state "$W/h1" --name h1 --plugins "$BUILD/plugins" \
  --join-token "$W/join.token" 2>"$W/agent.log" &
PIDS+=($!)
for _ in $(seq 500); do grep -q 'registered with' "$W/agent.log" && break; sleep 0.01; done
# The poller is a compromised enrolled host, so that its signed polls park:
# a host identity per poll of a wave (8 x 12; see enroll_attackers in
# tests/integration/lib.sh for why).
EVIL_HOSTS= EVIL_KEYS= ENROLLS=()
for i in $(seq 96); do
  "$FERRY" keygen "evil$i" --dir "$W" >/dev/null
  "$BUILD/tests/ferry-forge" "$URL" hello "evil$i" "$W/evil$i.key" --token "$W/join.token" &
  ENROLLS+=($!)
  EVIL_HOSTS+=${EVIL_HOSTS:+,}evil$i EVIL_KEYS+=${EVIL_KEYS:+,}$W/evil$i.key
done
for p in "${ENROLLS[@]}"; do wait "$p" || { echo "bench: enrolling evil hosts failed" >&2; exit 1; }; done

measure "$W/t.quiet"

( a= b=
  trap 'kill -9 $a $b 2>/dev/null; exit 0' TERM
  while :; do
    "$POKE" "$HOSTPORT" stall-chunks bench@1 12 8 --from 127.0.0.2 >/dev/null 2>&1 &
    a=$!
    "$POKE" "$HOSTPORT" stall-polls "$EVIL_HOSTS" 12 8 --key "$EVIL_KEYS" --from 127.0.0.2 \
      >/dev/null 2>&1 &
    b=$!
    sleep 0.5
    kill -9 $a $b 2>/dev/null || true
    wait $a $b 2>/dev/null || true
  done ) 2>/dev/null &
WAVES=$!
"$POKE" "$HOSTPORT" conns 20 100000 --from 127.0.0.3 >/dev/null 2>&1 &
PIDS+=($!)
sleep 1 # let the first waves land
measure "$W/t.attacked"
drops=$(grep -c 'dropping a connection' "$W/reg.log" || true)

read -r q50 q99 < <(stats "$W/t.quiet")
read -r a50 a99 < <(stats "$W/t.attacked")
echo
echo "registry under a non-reading client: ferry versions, $N round trips each (ms)"
printf '%-48s %10s %10s\n' "measurement" "median" "p99"
printf '%-48s %10s %10s\n' "no attacker (baseline)" "$q50" "$q99"
printf '%-48s %10s %10s\n' "non-reading clients attached" "$a50" "$a99"
printf '%-48s %10.2f %10.2f\n' "  ratio attacked / baseline" "$(echo "$a50 / $q50" | bc -l)" "$(echo "$a99 / $q99" | bc -l)"
echo "registry log lines about dropped connections (rate-limited, 1/s): $drops"
echo "target: attacked within 2x of the baseline"
