#!/usr/bin/env bash
# Connection caps: per peer address and in total, and an idle timeout.
# The attacker connects from 127.0.0.2/.3 (raw TCP doing the SP handshake,
# then silent), so the normal client on 127.0.0.1 is another peer.
source "$(dirname "$0")/lib.sh"

# make_sleep_app DIR NAME VERSION: an app that stays up (healthy after 1 s).
make_sleep_app() {
  mkdir -p "$1"
  printf 'name: %s\nversion: "%s"\nkind: app\nruntime: exec\nrun:\n  command: ["./run.sh"]\n' "$2" "$3" \
    > "$1/ferry.yaml"
  printf '#!/bin/sh\nexec sleep 100000\n' > "$1/run.sh"
  chmod 755 "$1/run.sh"
}

# --- bad values for the new flags: a usage error naming the flag
for bad in "--max-conns 5abc" "--max-conns 0" "--max-conns-per-peer -1" "--idle-timeout 1.5" \
           "--idle-timeout x" "--workers 5abc" "--host-ttl 10x"; do
  # shellcheck disable=SC2086
  rc=0; out=$("$FERRY_REGISTRY_BIN" --data "$T/never" $bad 2>&1 >/dev/null) || rc=$?
  [ $rc -eq 2 ] || fail "ferry-registry $bad: exit $rc, expected 2"
  grep -q -- "${bad%% *} '" <<<"$out" || fail "ferry-registry $bad said: $out"
  [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "ferry-registry $bad: not one line: $out"
done
[ ! -e "$T/never" ] || fail "a refused start left a data directory"
pass "numeric registry flags are parsed strictly (5abc, 0, -1, 1.5, 10x are usage errors)"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub" --max-conns 8 --max-conns-per-peer 4
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
make_sleep_app "$T/app" capped 1.0
timeout 60 "$FERRY" publish "$T/app" >/dev/null || fail "publish"

# --- per peer: 10 connections from 127.0.0.2, 4 stay, 6 are closed
"$FERRY_POKE" "127.0.0.1:$REG_PORT" conns 10 60 --from 127.0.0.2 > "$T/a.out" 2>&1 &
A=$!; PIDS+=("$A")
wait_until 10 grep -q '^open 4 closed 6' "$T/a.out" || fail "per-peer cap: $(cat "$T/a.out")"
timeout 10 "$FERRY" versions capped | grep -q '^1.0 ' || fail "normal client refused while 127.0.0.2 is at its cap"
grep -q 'refused a connection (per-peer connection limit reached' "$T/reg.log" || fail "no log line for the per-peer cap"
pass "a peer over --max-conns-per-peer 4 keeps 4 connections; another client is still served"

# --- in total: 4 more from 127.0.0.3 fill --max-conns 8; then everyone is refused
"$FERRY_POKE" "127.0.0.1:$REG_PORT" conns 6 60 --from 127.0.0.3 > "$T/b.out" 2>&1 &
B=$!; PIDS+=("$B")
wait_until 10 grep -q '^open 4 closed 2' "$T/b.out" || fail "second peer: $(cat "$T/b.out")"
out=$("$FERRY_POKE" "127.0.0.1:$REG_PORT" conns 1 2 2>&1 | tail -n 1)
grep -q 'open 0 closed 1' <<<"$out" || fail "a 9th connection was not refused: $out"
grep -q 'refused a connection (total connection limit reached' "$T/reg.log" || fail "no log line for the total cap"
kill "$B"; wait "$B" 2>/dev/null || true
wait_until 10 bash -c "timeout 5 '$FERRY' versions capped | grep -q '^1.0 '" || fail "not served again once below the cap"
pass "over --max-conns 8 new connections are refused; served again once connections end"
kill "$A"; wait "$A" 2>/dev/null || true

# --- idle timeout: a silent connection is closed after --idle-timeout
stop_and_wait "$REG_PID" 5 "registry" || fail "registry exit status $?"
start_registry idle "$T/reg" --trust "$T/ops.pub" --idle-timeout 1
export FERRY_REGISTRY="$REG_URL"
"$FERRY_POKE" "127.0.0.1:$REG_PORT" conns 1 10 --from 127.0.0.2 > "$T/idle.out" 2>&1 &
I=$!; PIDS+=("$I")
wait_until 8 grep -q '^open 0 closed 1' "$T/idle.out" || fail "idle connection not closed: $(cat "$T/idle.out")"
after=$(grep -o 'after [0-9]* ms' "$T/idle.out" | tr -dc 0-9)
[ "$after" -ge 900 ] || fail "idle connection closed after ${after} ms, before the 1 s timeout"
grep -q 'closing an idle connection from 127.0.0.2' "$T/idle.log" || fail "no log line for the idle close"
pass "a silent connection is closed after --idle-timeout 1 (${after} ms)"

# A long poll is not idle: an agent's poll parked far longer than the idle
# timeout keeps its connection, while its reporter's connection (silent
# between heartbeats) is closed.
start_agent h1 "$T/h1" --label env=idle --trust "$T/ops.pub"
wait_until 10 grep -q 'registry .* reachable' "$T/agent-h1.log" || fail "agent never reached the registry"
wait_until 10 grep -q 'closing an idle connection from 127.0.0.1' "$T/idle.log" \
  || fail "the agent's idle reporter connection was never closed"
if grep -q 'unreachable' "$T/agent-h1.log"; then fail "the agent's long poll was cut: $(cat "$T/agent-h1.log")"; fi
timeout 20 "$FERRY" deploy capped@1.0 --to env=idle >/dev/null || fail "deploy"
"$FERRY" status --wait capped@1.0 --timeout 30 >/dev/null || fail "the agent did not get the deploy"
if grep -q 'unreachable' "$T/agent-h1.log"; then fail "the agent's long poll was cut: $(cat "$T/agent-h1.log")"; fi
pass "an agent's parked long poll outlives --idle-timeout 1; the deploy arrives on it"
