#!/usr/bin/env bash
# Clients that send requests and never read the replies (raw TCP speaking
# the SP protocol with a small receive buffer, see poke.c): pipelined
# GetChunk for a large blob, and pipelined Polls. While they hold their
# connections, another client's `ferry versions` is answered within a
# second, every time, and the registry says it dropped them.
source "$(dirname "$0")/lib.sh"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
mkdir -p "$T/big"
printf 'name: big\nversion: "1"\nkind: model\nruntime: model\nmodel: {format: sklearn, file: weights.bin, inputs: [{name: x, datatype: FP64, shape: [-1]}]}\n' > "$T/big/ferry.yaml"
head -c $((24 * 1048576)) /dev/urandom > "$T/big/weights.bin"
timeout 60 "$FERRY" publish "$T/big" >/dev/null || fail "publish big@1"
start_agent h1 "$T/h1" --trust "$T/ops.pub"
# The poller is a compromised enrolled host: its polls are signed, so they
# wait (park) instead of being refused. A host identity per poll (8 x 12),
# so that no two polls of one host are checked at once, out of order
# (enroll_attackers in lib.sh).
enroll_attackers evil 96

# versions_within_1s WHAT: one `ferry versions` round trip, answered and
# within a second (a deadline check: the task demands this bound).
versions_within_1s() {
  local t0 t1 ms out
  t0=$(date +%s%N)
  out=$(timeout 10 "$FERRY" versions big) || fail "$1: ferry versions failed"
  t1=$(date +%s%N)
  ms=$(( (t1 - t0) / 1000000 ))
  grep -q '^1 ' <<<"$out" || fail "$1: versions said: $out"
  [ "$ms" -lt 1000 ] || fail "$1: ferry versions took ${ms} ms (limit 1000)"
  echo "  $1: versions in ${ms} ms"
}

versions_within_1s "before the attack"
ATTACKERS=()
attack() { # attack NAME FROM ARGS...: a non-reading client, waits until it has sent everything
  local name=$1 from=$2; shift 2
  # From another loopback address: the attacker is another peer than the
  # client it must not disturb (the per-peer cap is test_conn_limits.sh's).
  "$FERRY_POKE" "127.0.0.1:$REG_PORT" "$@" --from "$from" > "$T/$name.out" 2>&1 &
  ATTACKERS+=($!)
  PIDS+=($!)
  wait_until 20 grep -q '^stalling' "$T/$name.out" || fail "$name did not start: $(cat "$T/$name.out")"
}
stop_attackers() {
  local p
  for p in "${ATTACKERS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${ATTACKERS[@]:-}"; do wait "$p" 2>/dev/null || true; done
  ATTACKERS=()
}

for round in 1 2 3 4 5; do
  # Eight connections with a dozen 1 MiB chunk requests each: more than the
  # registry's eight workers could ever push through unread sockets.
  attack "chunks$round" 127.0.0.2 stall-chunks big@1 12 8
  versions_within_1s "round $round, pipelined GetChunk held"
  # From its own address: parked polls are never answered while held, so
  # the registry has no reason to drop these connections (checked below).
  attack "polls$round" 127.0.0.4 stall-polls "$ATTACK_HOSTS" 12 8 --key "$ATTACK_KEYS"
  versions_within_1s "round $round, pipelined Polls held"
  versions_within_1s "round $round, both held"
  if [ "$round" -eq 1 ]; then
    # The registry notices within about a second (its send deadline).
    wait_until 10 grep -Eq 'dropping a connection (that does not read its replies|with too many unread replies) from 127\.0\.0\.2' \
      "$T/reg.log" || fail "the registry did not say it dropped a non-reading connection"
    versions_within_1s "round $round, after the drop"
    # Signed polls park: nothing comes back on their connections (had they
    # been refused, the error replies would), and none is dropped.
    wait_until 10 grep -q '^after 1 s' "$T/polls$round.out" || fail "poller: $(cat "$T/polls$round.out")"
    grep -q '^after 1 s: 0 connections with replies, 0 closed, 8 silent' "$T/polls$round.out" \
      || fail "the signed polls were not all parked: $(cat "$T/polls$round.out")"
    if grep -q 'dropping a connection .* from 127\.0\.0\.4' "$T/reg.log"; then
      fail "a parked poller was dropped: $(grep 'from 127\.0\.0\.4' "$T/reg.log")"
    fi
  fi
  stop_attackers
done
pass "ferry versions answered within 1 s throughout five rounds of non-reading clients"

pass "the registry dropped the non-reading connections and said so; the signed polls stayed parked"

# Still serving correctly: a full pull of the large blob.
timeout 60 "$FERRY" pull big@1 --out "$T/out" --trust "$T/ops.pub" >/dev/null || fail "pull after the attack"
cmp -s "$T/out/weights.bin" "$T/big/weights.bin" || fail "pulled bytes differ"
kill -0 "$REG_PID" || fail "registry died"
pass "a pull of the large blob works after the attack"
