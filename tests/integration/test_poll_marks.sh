#!/usr/bin/env bash
# A host's poll replay mark and liveness are kept in memory (a poll costs no
# database write) and written lazily: at most once a second, and at a clean
# stop.
# A poll replayed after a SIGTERM restart is refused; after a kill -9 only
# the marks of the last second before it can be lost, and one written
# before the crash still refuses its replay.
source "$(dirname "$0")/lib.sh"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub" --host-ttl 2
URL=$REG_URL
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent h1 "$T/h1" --trust "$T/ops.pub"
wait_until 10 grep -q "registered with .* as h1" "$T/agent-h1.log" || fail "h1 not enrolled"
stop_and_wait "$AGENT_PID" 10 "agent h1" || true
KEY="$T/h1/host.key"

# db_poll_ms: h1's poll mark as the registry's database holds it.
db_poll_ms() { python3 -c "
import sqlite3, sys
c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True, timeout=5)
print(c.execute('SELECT poll_ms FROM hosts WHERE name=?', ('h1',)).fetchone()[0])" "$T/reg/registry.db"; }
db_poll_is() { [ "$(db_poll_ms)" = "$1" ]; }
online_is() { [ "$("$FERRY" hosts --json | python3 -c "
import json, sys
print([h['online'] for h in json.load(sys.stdin)['hosts'] if h['name'] == 'h1'][0])")" = "$1" ]; }
poll() { "$FERRY_FORGE" "$URL" poll h1 --key "$KEY" --sent-ms "$1"; }
replayed() {
  expect_fail "poll for h1: not newer than the last one seen \(replayed\?\)" "$FERRY_FORGE" "$URL" \
    poll h1 --key "$KEY" --sent-ms "$1"
}

# --- in memory at once, in the database within a second
wait_until 10 online_is False || fail "h1 did not go offline"
S=$(( $(date +%s%N) / 1000000 + 20000 ))
poll "$S" || fail "a fresh signed poll was refused"
online_is True || fail "a signed poll did not make h1 online at once"
replayed "$S"
replayed $(( S - 1 ))
# Written by the next lazy write (once a second; not timed here).
t0=$(date +%s%N)
wait_until 10 db_poll_is "$S" || fail "the poll mark was not written (database has $(db_poll_ms))"
echo "  the mark reached the database $(( ($(date +%s%N) - t0) / 1000000 )) ms after the poll"
pass "a signed poll counts in memory at once (online, replay refused) and is written lazily"

# --- a clean stop writes what is only in memory
poll $(( S + 1 )) || fail "poll S+1 refused"
stop_and_wait "$REG_PID" 5 "registry" || fail "registry exit status $?"
db_poll_is $(( S + 1 )) || fail "the stop did not write the last mark (database has $(db_poll_ms))"
start_registry_at reg "$T/reg" "$URL" --trust "$T/ops.pub" --host-ttl 2
replayed $(( S + 1 ))
poll $(( S + 2 )) || fail "poll S+2 refused after the restart"
pass "after a SIGTERM restart the newest poll seen is still refused as a replay"

# --- after a crash, a mark written before it still holds
poll $(( S + 3 )) || fail "poll S+3 refused"
wait_until 10 db_poll_is $(( S + 3 )) || fail "mark S+3 not written (database has $(db_poll_ms))"
kill -9 "$REG_PID"; wait "$REG_PID" 2>/dev/null || true
start_registry_at reg "$T/reg" "$URL" --trust "$T/ops.pub" --host-ttl 2
replayed $(( S + 3 ))
poll $(( S + 4 )) || fail "poll S+4 refused after the crash"
pass "after a kill -9 the marks written before it still refuse their replays"
