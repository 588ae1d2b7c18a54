#!/usr/bin/env bash
# The audit log: every change the registry makes is an entry (publish,
# deploy, undeploy, rollback, host accept/enroll and removal) with key id
# and role; ferry audit --verify passes on an untouched log and names the
# first entry that does not match once a row is edited in SQLite.
source "$(dirname "$0")/lib.sh"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub" --host-ttl 1s
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
OPS_ID=$(grep -o "trusting key [0-9a-f]* ops" "$T/reg.log" | awk '{print $3}')
ENROLL_ID=$(grep -o "trusting key [0-9a-f]* enroll" "$T/reg.log" | awk '{print $3}')
# An empty log verifies.
"$FERRY" audit --verify | grep -q '^audit log verified: 0 entries' || fail "an empty log did not verify"

for v in 1.0 2.0; do
  make_app "$T/app$v" app "$v"
  "$FERRY" publish "$T/app$v" >/dev/null
done
"$FERRY" deploy app@1.0 --to env=test >/dev/null
"$FERRY" deploy app@2.0 --to env=test >/dev/null
"$FERRY" rollback app --to env=test >/dev/null
"$FERRY" undeploy app --to env=test >/dev/null
start_agent h1 "$T/h1" --label env=test --trust "$T/ops.pub"
enrolled() { sqlite3 -readonly "$T/reg/registry.db" "SELECT action FROM audit" | grep -q enroll-host; }
wait_until 20 enrolled \
  || fail "the token enrollment is not in the audit log"
kill -TERM "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true
offline() { "$FERRY" hosts --json | python3 -c "import json,sys; assert not json.load(sys.stdin)['hosts'][0]['online']"; }
wait_until 20 offline || fail "h1 did not go offline"
"$FERRY" hosts rm h1 >/dev/null || fail "hosts rm h1"

"$FERRY" audit --json > "$T/audit.json"
python3 - "$T/audit.json" "$OPS_ID" "$ENROLL_ID" <<'PY' || fail "audit --json: $(cat "$T/audit.json")"
import json, sys
doc = json.load(open(sys.argv[1]))
es = doc['entries']
whats = [e['what'] for e in es]
assert whats == ['publish', 'publish', 'deploy', 'deploy', 'rollback', 'undeploy', 'enroll-host', 'remove-host'], whats
assert [e['seq'] for e in es] == list(range(1, 9)), es
for e in es:
    # the join token h1 enrolled with is signed by lib.sh's enrollment key
    assert e['key_id'] == (sys.argv[3] if e['what'] == 'enroll-host' else sys.argv[2]), e
    assert len(e['hash']) == 64 and len(e['prev_hash']) == 64, e
    assert set(e) == {'seq', 'time', 'time_unix', 'key_id', 'role', 'what', 'detail', 'prev_hash', 'hash'}, e
assert es[0]['prev_hash'] == '0' * 64
for a, b in zip(es, es[1:]):
    assert b['prev_hash'] == a['hash'], (a, b)
assert es[0]['role'] == 'publisher' and es[2]['role'] == 'operator', es
assert es[0]['detail'] == 'app@1.0' and es[3]['detail'] == 'app@2.0 to env=test', es
PY
"$FERRY" audit | grep -q '^5 .* rollback .*app@1.0 to env=test' || fail "ferry audit does not list the rollback: $("$FERRY" audit)"
pass "publish, deploy, rollback, undeploy, enrollment and host removal are chained entries with key id and role"

out=$("$FERRY" audit --verify) || fail "an untouched log did not verify"
grep -q '^audit log verified: 8 entries, head [0-9a-f]\{64\}$' <<<"$out" || fail "verify said: $out"
"$FERRY" audit --verify --json | python3 -c "
import json, sys
d = json.load(sys.stdin)
assert d['verified'] is True and d['entries'] == 8 and len(d['head']) == 64, d" || fail "verify --json"
pass "ferry audit --verify passes on an untouched log"

# --- edit one entry in SQLite: verify names it and exits 1
sqlite3 "$T/reg/registry.db" "UPDATE audit SET subject='app@9.9 to env=test' WHERE seq=3"
expect_fail '^ferry: audit entry 3 \(deploy app@9.9 to env=test\) does not match: its content does not match its hash$' \
  "$FERRY" audit --verify
rc=0; "$FERRY" audit --verify --json > "$T/bad.json" || rc=$?
[ $rc = 1 ] || fail "verify --json on an edited log exited $rc"
python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
assert d['verified'] is False and d['first_bad']['seq'] == 3 and d['entries'] == 2, d" "$T/bad.json" \
  || fail "verify --json: $(cat "$T/bad.json")"
pass "an entry edited in SQLite is named by ferry audit --verify (exit 1)"

# --- a deleted entry breaks the chain at the one after it; the registry
# keeps serving and appending
sqlite3 "$T/reg/registry.db" "UPDATE audit SET subject='app@1.0 to env=test' WHERE seq=3; DELETE FROM audit WHERE seq=5"
expect_fail '^ferry: audit entry 6 \(undeploy .*\) does not match: entries before it are missing$' "$FERRY" audit --verify
"$FERRY" versions app >/dev/null || fail "the registry stopped serving"
expect_fail "unknown or incomplete option '--bogus'" "$FERRY" audit --bogus
pass "a deleted entry is found at the next one; bad options are one-line errors"
