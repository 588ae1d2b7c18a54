#!/usr/bin/env bash
# Registry under a flood of signed polls (called by bench/run.sh; also runs
# alone):  bash bench/pollflood.sh BUILD_DIR
# 80 enrolled attacker hosts (a compromised host's worth of identities, one
# per connection) send 5040 signed, parked Polls over 80 non-reading
# connections (tests/integration/poke.c stall-polls), while a loop of
# `ferry versions` runs. Prints the polls the registry took per second
# (until its request counter has counted them all, less its own and the
# latency loop's requests) and the `ferry versions`
# round trips (median, p99, max) during the flood and with nothing attached.
# Nothing is asserted. Knobs: FERRY_BENCH_FLOOD_CONNS (80), _PER_CONN (63).
set -euo pipefail
BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
CONNS=${FERRY_BENCH_FLOOD_CONNS:-80}
PER=${FERRY_BENCH_FLOOD_PER_CONN:-63}
FERRY="$BUILD/cli/ferry"
POKE="$BUILD/tests/ferry-poke"
FORGE="$BUILD/tests/ferry-forge"
unset FERRY_REGISTRY FERRY_KEY FERRY_TRUST

W=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-flood.XXXXXX")
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
requests() { "$FERRY" stats --registry "$URL" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['requests'])"; }
# latency loop: "END_MS ROUND_TRIP_MS" per `ferry versions`, until killed
versions_loop() {
  local t0
  while :; do
    t0=$(date +%s%N)
    "$FERRY" versions bench --registry "$URL" >/dev/null
    echo "$(now_ms) $(( ($(date +%s%N) - t0) / 1000000 ))"
  done
}
# summary FILE FROM_MS TO_MS -> "n median p99 max" of the round trips that ended in [FROM, TO]
summary() {
  awk -v a="$2" -v b="$3" '$1 >= a && $1 <= b {print $2}' "$1" | sort -n | awk '{v[NR]=$1} END {
    if (NR == 0) { print "0 - - -"; exit }
    p = int(NR * 0.99); if (p < NR * 0.99) p++;
    printf "%d %d %d %d\n", NR, v[int((NR+1)/2)], v[p], v[NR]}'
}

mkdir -p "$W/app"
printf 'name: bench\nversion: "1"\nkind: model\nruntime: model\n' > "$W/app/ferry.yaml"
echo small > "$W/app/file"
"$FERRY" keygen bench --dir "$W" >/dev/null
"$FERRY" keygen enroll --dir "$W" >/dev/null
"$FERRY" hosts token --key "$W/enroll.key" --ttl 12h -o "$W/join.token" 2>/dev/null
"$BUILD/registry/ferry-registry" --data "$W/reg" --listen tcp://127.0.0.1:0 --http 127.0.0.1:0 --trust "$W/bench.pub" \
  --trust "$W/enroll.pub" 2>"$W/reg.log" &
PIDS+=($!)
for _ in $(seq 500); do grep -q 'listening on' "$W/reg.log" && break; sleep 0.01; done
URL=$(grep -o 'tcp://[0-9.]*:[0-9]*' "$W/reg.log" | head -n 1)
HOSTPORT=${URL#tcp://}
"$FERRY" publish "$W/app" --registry "$URL" --key "$W/bench.key" >/dev/null
HOSTS= KEYS= ENROLLS=()
for i in $(seq "$CONNS"); do
  "$FERRY" keygen "evil$i" --dir "$W" >/dev/null
  "$FORGE" "$URL" hello "evil$i" "$W/evil$i.key" --token "$W/join.token" &
  ENROLLS+=($!)
  HOSTS+=${HOSTS:+,}evil$i KEYS+=${KEYS:+,}$W/evil$i.key
done
for p in "${ENROLLS[@]}"; do wait "$p" || { echo "bench: enrolling failed" >&2; exit 1; }; done

versions_loop > "$W/lat" 2>/dev/null &
PIDS+=($!)
q0=$(now_ms)
while [ $(( $(now_ms) - q0 )) -lt 3000 ]; do sleep 0.1; done
q1=$(now_ms)
base=$(requests)
t0=$(now_ms)
"$POKE" "$HOSTPORT" stall-polls "$HOSTS" "$PER" "$CONNS" --key "$KEYS" --from 127.0.0.2 > "$W/poke.out" 2>&1 &
PIDS+=($!)
total=$(( CONNS * PER ))
# The request counter also counts the probes (one per host), these stats
# calls and the versions loop's requests (one each): discount them.
checks=0
while :; do
  checks=$(( checks + 1 ))
  seen=$(requests)
  others=$(awk -v a="$t0" '$1 >= a' "$W/lat" | wc -l)
  [ "$seen" -ge $(( base + total + CONNS + checks + others + 1 )) ] && break
  grep -q 'poke:' "$W/poke.out" && { cat "$W/poke.out" >&2; exit 1; }
  sleep 0.05
done
t1=$(now_ms)
read -r qn q50 q99 qmax < <(summary "$W/lat" "$q0" "$q1")
read -r an a50 a99 amax < <(summary "$W/lat" "$t0" "$t1")
echo
echo "registry under $total signed, parked polls from $CONNS enrolled hosts on $CONNS non-reading connections"
echo "  polls taken: $total in $(( t1 - t0 )) ms = $(( total * 1000 / (t1 - t0 > 0 ? t1 - t0 : 1) )) polls/s (includes signing and sending them)"
printf '  %-34s %6s %8s %8s %8s\n' "ferry versions (ms)" "n" "median" "p99" "max"
printf '  %-34s %6s %8s %8s %8s\n' "nothing attached" "$qn" "$q50" "$q99" "$qmax"
printf '  %-34s %6s %8s %8s %8s\n' "during the flood" "$an" "$a50" "$a99" "$amax"
