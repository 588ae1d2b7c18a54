#!/usr/bin/env bash
# SIGTERM stops the registry within 2 s, with exit status 0 and without the
# last-resort watchdog, twenty times in a row: each time under load (a pull
# of a large blob and a loop of small requests), with an agent long-polling,
# non-reading clients holding pipelined GetChunk and Polls, silent
# connections, and after hostile input (garbage, raw TCP) was sent.
# FERRY_STOP_ROUNDS (default 20) changes the number of rounds.
source "$(dirname "$0")/lib.sh"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
URL=$REG_URL
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
mkdir -p "$T/big"
printf 'name: big\nversion: "1"\nkind: model\nruntime: model\nmodel: {format: sklearn, file: weights.bin, inputs: [{name: x, datatype: FP64, shape: [-1]}]}\n' > "$T/big/ferry.yaml"
head -c $((16 * 1048576)) /dev/urandom > "$T/big/weights.bin"
timeout 60 "$FERRY" publish "$T/big" >/dev/null || fail "publish big@1"
start_agent h1 "$T/h1" --trust "$T/ops.pub"
# The non-reading poller is a compromised enrolled host (signed polls park),
# with a host identity per poll (4 x 12).
enroll_attackers evil 48

LOADS=()
start_load() {
  ( while :; do timeout 20 "$FERRY" pull big@1 --out "$T/pull.$BASHPID" --trust "$T/ops.pub" >/dev/null 2>&1 || true
             rm -rf "$T/pull.$BASHPID"; done ) &
  LOADS+=($!); PIDS+=($!)
  ( while :; do timeout 5 "$FERRY" versions big >/dev/null 2>&1 || true; done ) &
  LOADS+=($!); PIDS+=($!)
  local name
  for name in chunks polls; do
    local args=(stall-chunks big@1 12 4)
    [ $name = polls ] && args=(stall-polls "$ATTACK_HOSTS" 12 4 --key "$ATTACK_KEYS")
    "$FERRY_POKE" "127.0.0.1:$REG_PORT" "${args[@]}" --from 127.0.0.2 > "$T/$name.out" 2>&1 &
    LOADS+=($!); PIDS+=($!)
  done
  "$FERRY_POKE" "127.0.0.1:$REG_PORT" conns 5 60 --from 127.0.0.3 > "$T/conns.out" 2>&1 &
  LOADS+=($!); PIDS+=($!)
  wait_until 20 grep -q '^stalling' "$T/chunks.out" || fail "chunk staller: $(cat "$T/chunks.out")"
  wait_until 20 grep -q '^stalling' "$T/polls.out" || fail "poll staller: $(cat "$T/polls.out")"
  wait_until 20 grep -q '^open 5' "$T/conns.out" || fail "silent connections: $(cat "$T/conns.out")"
}
stop_load() {
  local p
  for p in "${LOADS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${LOADS[@]:-}"; do wait "$p" 2>/dev/null || true; done
  LOADS=()
}

for i in $(seq ${FERRY_STOP_ROUNDS:-20}); do
  if [ "$i" -gt 1 ]; then
    start_registry_at "reg" "$T/reg" "$URL" --trust "$T/ops.pub"
  fi
  # Hostile input first (each of these ends by itself), then the load.
  timeout 10 "$FERRY_POKE" "$URL" garbage 100 >/dev/null || fail "round $i: garbage got no error reply"
  timeout 10 "$FERRY_POKE" "127.0.0.1:$REG_PORT" rawtcp 3000 >/dev/null || fail "round $i: rawtcp"
  start_load
  timeout 10 "$FERRY" versions big >/dev/null || fail "round $i: not serving before the stop"
  t0=$(date +%s%N)
  rc=0
  stop_and_wait "$REG_PID" 2 "registry (round $i)" || rc=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  [ "$rc" -eq 0 ] || fail "round $i: registry exited with status $rc"
  [ "$ms" -lt 2000 ] || fail "round $i: the stop took ${ms} ms (limit 2000)"
  if grep -q 'shutdown did not finish' "$T/reg.log"; then
    fail "round $i: the watchdog fired: $(grep 'shutdown did not finish' "$T/reg.log")"
  fi
  echo "  round $i: stopped in ${ms} ms$(grep 'stopping:' "$T/reg.log" | tail -n 1 | sed 's/^ferry-registry: / - /')"
  cat "$T/reg.log" >> "$T/reg.log.all"; : > "$T/reg.log" # each round's lines apart
  stop_load
done
pass "SIGTERM under load and after hostile clients: exit 0 within 2 s, no watchdog, 20 times"
