#!/usr/bin/env bash
# Hosts are enrolled, not self-declared: a new host is pending until an
# operator accepts it or it presents a join token signed by an operator key;
# a name enrolled with another key is refused until an operator re-keys it.
source "$(dirname "$0")/lib.sh"

make_key ops
make_key mallory
make_key probe
start_registry reg "$T/reg" --trust "$T/ops.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
make_web_app "$T/web" web 1.0
"$FERRY" publish "$T/web" >/dev/null
"$FERRY" deploy web@1.0 --to env=test >/dev/null

key_id_of() { grep -o "host $1 (key [0-9a-f]*)" "$T/agent-$1.log" | head -n 1 | sed 's/.*key \([0-9a-f]*\))/\1/'; }
host_field() { # host_field NAME FIELD: from ferry hosts --json
  "$FERRY" hosts --json | python3 -c "
import json, sys
for h in json.load(sys.stdin)['hosts']:
    if h['name'] == sys.argv[1]: print(h[sys.argv[2]]); sys.exit(0)
sys.exit(1)" "$@"
}
db_count() { python3 -c "
import sqlite3, sys
print(sqlite3.connect('file:$T/reg/registry.db?mode=ro', uri=True).execute(sys.argv[1], sys.argv[2:]).fetchone()[0])" "$@"; }
events_of() { "$FERRY" events --host "$1" --limit 10000 --json | python3 -c "import json,sys; print(len(json.load(sys.stdin)['events']))"; }

# --- a self-registered host gets nothing and stores nothing until accepted
start_agent_unenrolled h1 "$T/h1" --label env=test --trust "$T/ops.pub"
wait_until 10 grep -q "warn: registry refused registration of h1: host h1 (key [0-9a-f]*) is not enrolled" \
  "$T/agent-h1.log" || fail "the agent did not log why it is not served: $(cat "$T/agent-h1.log")"
h1_id=$(key_id_of h1)
wait_until 10 bash -c "[ \"\$('$FERRY' hosts --json | python3 -c 'import json,sys; print([h[\"status\"] for h in json.load(sys.stdin)[\"hosts\"] if h[\"name\"]==\"h1\"])')\" = \"['pending']\" ]" \
  || fail "h1 is not listed as pending: $("$FERRY" hosts)"
[ "$(host_field h1 key_id)" = "$h1_id" ] || fail "pending h1 shows key $(host_field h1 key_id), agent has $h1_id"
[ "$(host_field h1 online)" = False ] || fail "a pending host is shown online"
"$FERRY" hosts | grep -Eq "^h1 +pending +no .* $h1_id " || fail "ferry hosts text: $("$FERRY" hosts)"
# The agent's own key signs a report and a poll: still refused, nothing kept.
expect_fail "report from h1: host is not enrolled" "$FERRY_FORGE" "$REG_URL" report h1 "$T/h1/host.key" --events 5
expect_fail "host 'h1' is not enrolled" "$FERRY_FORGE" "$REG_URL" poll h1 --key "$T/h1/host.key"
[ "$(db_count "SELECT count(*) FROM hosts WHERE name=?" h1)" = 0 ] || fail "a pending host is in the hosts table"
[ "$(db_count "SELECT count(*) FROM events WHERE host=?" h1)" = 0 ] || fail "a pending host's events were stored"
[ "$(events_of h1)" = 0 ] || fail "events of a pending host are listed"
[ ! -d "$T/h1/workloads/web" ] || fail "a pending host got desired state: $(ls "$T/h1/workloads")"
"$FERRY" status | grep -q "^h1 (pending)" || fail "status does not show h1 pending: $("$FERRY" status)"
pass "a self-registered host is pending (key $h1_id), gets nothing and stores nothing"

expect_fail "accept refused: signed by key [0-9a-f]+, which is not trusted" \
  "$FERRY" hosts accept h1 --key "$T/mallory.key"
expect_fail "accept nobody: no pending request" "$FERRY" hosts accept nobody
expect_fail "accept h1: no pending request with key 0123456789abcdef" \
  "$FERRY" hosts accept h1 --key-id 0123456789abcdef
[ "$("$FERRY" hosts accept h1)" = "accepted h1 (key $h1_id)" ] || fail "accept h1"
"$FERRY" status --wait web@1.0 --timeout 30 >/dev/null || fail "web does not run on h1 once accepted"
[ "$(host_field h1 status)" = enrolled ] || fail "h1 not enrolled after accept"
wait_until 10 grep -q "registered with .* as h1" "$T/agent-h1.log" || fail "agent did not log its registration"
expect_fail "accept h1: already enrolled" "$FERRY" hosts accept h1
pass "ferry hosts accept enrolls it and it gets its desired state"

# --- a join token enrolls a host (its labels are labels the host must carry)
"$FERRY" hosts token --label env=test --ttl 10m > "$T/test.token" 2>/dev/null
grep -q '^ferry-join-v1:' "$T/test.token" || fail "token format: $(cat "$T/test.token")"
start_agent_unenrolled h2 "$T/h2" --label env=test --trust "$T/ops.pub" --join-token "$T/test.token"
wait_until 20 workload_state_is h2 web 1.0 running || fail "a join token did not enroll h2: $(cat "$T/agent-h2.log")"
grep -q "host h2 (key [0-9a-f]*) enrolled with a join token signed by key" "$T/reg.log" || fail "registry log"
# the same token again (reusable within its TTL), but the host lacks its label
start_agent_unenrolled h3 "$T/h3" --label env=prod --trust "$T/ops.pub" --join-token "$T/test.token"
wait_until 10 grep -q "registry refused registration of h3: host h3 (key [0-9a-f]*): register h3: the host must carry label env=test" \
  "$T/agent-h3.log" || fail "a host without the token's label was not refused: $(cat "$T/agent-h3.log")"
kill "$AGENT_PID"
"$FERRY" hosts token --ttl 10m -o "$T/other.token" 2>/dev/null
[ "$(stat -c %a "$T/other.token")" = 600 ] || fail "-o FILE is not 0600"
start_agent_unenrolled h4 "$T/h4" --label env=test --trust "$T/ops.pub" --join-token "$T/other.token"
wait_until 20 workload_state_is h4 web 1.0 running || fail "a second host did not enroll with a token"
pass "a join token enrolls hosts (reusable, -o FILE private); its labels are required"

# --- expired, untrusted, tampered or malformed tokens: refused with one line
"$FERRY" hosts token --ttl 1s -o "$T/short.token" 2>/dev/null
"$FERRY" hosts token --key "$T/mallory.key" -o "$T/mallory.token" 2>/dev/null
python3 - "$T/other.token" "$T/tampered.token" <<'PY'
import sys
t = open(sys.argv[1]).read().strip()
i = len(t) // 2
open(sys.argv[2], 'w').write(t[:i] + ('A' if t[i] != 'A' else 'B') + t[i + 1:] + '\n')
PY
expired_after=$(( $(date +%s%N) / 1000000 + 1200 ))
wait_until 5 bash -c "[ \$(( \$(date +%s%N) / 1000000 )) -gt $expired_after ]" || fail "clock"
expect_fail "join token: expired at" "$FERRY_FORGE" "$REG_URL" hello probe "$T/probe.key" --token "$T/short.token"
expect_fail "join token: signed by key [0-9a-f]+, which is not trusted" \
  "$FERRY_FORGE" "$REG_URL" hello probe "$T/probe.key" --token "$T/mallory.token"
expect_fail "join token" "$FERRY_FORGE" "$REG_URL" hello probe "$T/probe.key" --token "$T/tampered.token"
start_agent_unenrolled h5 "$T/h5" --label env=test --trust "$T/ops.pub" --join-token "$T/short.token"
wait_until 10 grep -q "registry refused registration of h5: host h5 (key [0-9a-f]*): join token: expired at" \
  "$T/agent-h5.log" || fail "expired token: $(cat "$T/agent-h5.log")"
seen=$(host_field h5 last_seen_ms)
wait_until 20 bash -c "[ \"\$('$FERRY' hosts --json | python3 -c 'import json,sys; print([h[\"last_seen_ms\"] for h in json.load(sys.stdin)[\"hosts\"] if h[\"name\"]==\"h5\"][0])')\" != $seen ]" \
  || fail "the agent did not try again"
[ "$(grep -c 'registry refused registration of h5' "$T/agent-h5.log")" = 1 ] \
  || fail "the refusal is not logged once: $(grep 'refused' "$T/agent-h5.log")"
[ ! -d "$T/h5/workloads/web" ] || fail "an expired token got desired state"
kill "$AGENT_PID"
echo "not a token" > "$T/bad.token"
expect_fail "ferry-agent: --join-token $T/bad.token: not a ferry join token" \
  "$FERRY_AGENT_BIN" --registry "$REG_URL" --state "$T/h6" --join-token "$T/bad.token"
mkfifo "$T/fifo.token"
expect_fail "fifo.token: not a regular file" timeout 5 \
  "$FERRY_AGENT_BIN" --registry "$REG_URL" --state "$T/h6" --join-token "$T/fifo.token"
expect_fail "hosts token: --ttl '5abc': expected a duration" "$FERRY" hosts token --ttl 5abc
expect_fail "hosts token: --ttl '0': expected a duration" "$FERRY" hosts token --ttl 0
expect_fail "hosts token: --ttl '31d': expected a duration" "$FERRY" hosts token --ttl 31d
expect_fail "hosts token: no operator key" env -u FERRY_KEY "$FERRY" hosts token
pass "expired, untrusted, tampered and malformed tokens are refused with one line"

# --- a squatted name does not lock out the real agent once an operator accepts it
"$FERRY_FORGE" "$REG_URL" hello web1 "$T/mallory.key" --label env=test --token "$T/test.token" \
  || fail "squatter could not enroll with a token"
squat_id=$("$FERRY" hosts --json | python3 -c "import json,sys; print([h['key_id'] for h in json.load(sys.stdin)['hosts'] if h['name']=='web1'][0])")
start_agent_unenrolled web1 "$T/web1" --label env=test --trust "$T/ops.pub" --join-token "$T/test.token"
real_id=$(key_id_of web1)
wait_until 10 grep -q "warn: registry refused registration of web1: host web1 is enrolled with another host key ($squat_id, this one is $real_id); an operator can re-key it: ferry hosts accept web1 --replace" \
  "$T/agent-web1.log" || fail "the real agent did not log the squatted name: $(cat "$T/agent-web1.log")"
expect_fail "host 'web1' is enrolled with another host key \($squat_id\); re-key it with: ferry hosts accept web1 --replace" \
  "$FERRY" hosts accept web1
[ "$("$FERRY" hosts accept web1 --replace --key-id "$real_id")" = "re-keyed web1 (key $real_id)" ] || fail "re-key"
wait_until 20 workload_state_is web1 web 1.0 running || fail "the real web1 is not served after re-keying"
[ "$(host_field web1 key_id)" = "$real_id" ] || fail "web1 key after re-key"
expect_fail "register web1: hello|enrolled with another host key" \
  "$FERRY_FORGE" "$REG_URL" hello web1 "$T/mallory.key" --label env=test --token "$T/test.token"
expect_fail "report from web1: not signed by its host key" \
  "$FERRY_FORGE" "$REG_URL" report web1 "$T/mallory.key"
grep -q "enroll-host h2 key" < <(python3 -c "
import sqlite3
for r in sqlite3.connect('file:$T/reg/registry.db?mode=ro', uri=True).execute('SELECT action, subject FROM audit'): print(*r)") \
  || fail "token enrollments are not in the audit log"
grep -q "accept-host web1 key $real_id (re-keyed)" < <(python3 -c "
import sqlite3
for r in sqlite3.connect('file:$T/reg/registry.db?mode=ro', uri=True).execute('SELECT action, subject FROM audit'): print(*r)") \
  || fail "accepts are not in the audit log"
pass "a squatted name is re-keyed with ferry hosts accept --replace; the squatter is refused"

# --- labels are bounded at registration, with the reason, never truncated
long=$(printf 'v%.0s' $(seq 70))
expect_fail "register probe: label 'zone': keys and values are at most 64 bytes" \
  "$FERRY_FORGE" "$REG_URL" hello probe "$T/probe.key" --label-raw zone "$long"
many=(); for i in $(seq 33); do many+=(--label "k$i=v"); done
expect_fail "register probe: 33 labels, at most 32" "$FERRY_FORGE" "$REG_URL" hello probe "$T/probe.key" "${many[@]}"
expect_fail "register probe: label key 'a' given twice" \
  "$FERRY_FORGE" "$REG_URL" hello probe "$T/probe.key" --label a=1 --label a=2
wide=(); for i in $(seq 32); do wide+=(--label "key$(printf %02d "$i")$(printf 'k%.0s' $(seq 50))=$(printf 'v%.0s' $(seq 60))"); done
expect_fail "register probe: labels take [0-9]+ bytes as text, at most 2047" \
  "$FERRY_FORGE" "$REG_URL" hello probe "$T/probe.key" "${wide[@]}"
"$FERRY" versions web >/dev/null || fail "registry stopped serving"
pass "too many, too long or repeated labels are refused with the reason"

# --- a database from before enrollment is migrated: its pinned hosts stay enrolled
mkdir -p "$T/old/state" "$T/oldreg"
"$FERRY" keygen host --dir "$T/old/state" >/dev/null
python3 - "$T/oldreg/registry.db" "$T/old/state/host.pub" <<'PY'
import base64, sqlite3, sys
pk = base64.b64decode(open(sys.argv[2]).read().split()[1])
db = sqlite3.connect(sys.argv[1])
db.executescript("""
CREATE TABLE hosts(name TEXT PRIMARY KEY, host_key BLOB NOT NULL, labels TEXT NOT NULL,
                   last_seen_ms INTEGER NOT NULL, report BLOB);
CREATE TABLE events(seq INTEGER PRIMARY KEY AUTOINCREMENT, host TEXT NOT NULL, change BLOB NOT NULL);
""")
db.execute("INSERT INTO hosts VALUES('old1', ?, 'env=test', 0, NULL)", (pk,))
db.commit()
PY
start_registry oldreg "$T/oldreg" --trust "$T/ops.pub"
export FERRY_REGISTRY="$REG_URL"
[ "$("$FERRY" hosts --json | python3 -c "import json,sys; print([h['status'] for h in json.load(sys.stdin)['hosts']])")" = "['enrolled']" ] \
  || fail "the migrated host is not enrolled: $("$FERRY" hosts)"
start_agent_unenrolled old1 "$T/old/state" --label env=test --trust "$T/ops.pub"
wait_until 10 grep -q "registered with .* as old1" "$T/agent-old1.log" || fail "the migrated host's agent: $(cat "$T/agent-old1.log")"
start_agent_unenrolled new1 "$T/new1" --label env=test --trust "$T/ops.pub"
wait_until 10 grep -q "registry refused registration of new1" "$T/agent-new1.log" || fail "a new host on a migrated registry"
pass "a database from before enrollment is migrated; its hosts stay enrolled, new ones are pending"
