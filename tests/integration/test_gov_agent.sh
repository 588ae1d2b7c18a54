#!/usr/bin/env bash
# The agent verifies governance itself (--trust-admin): a registry whose
# database is edited to point the prod channel at an unapproved model (or
# at one whose card lacks a heading the rule asks for) cannot make a prod
# host run it; the host refuses it with what is missing named and keeps the
# approved version running. A policy signed by an admin key the agent does
# not trust is refused, and nothing runs, as is one signed by a key the
# policy does not name as admin (served by a replaying registry). ferry
# hosts says which hosts verify policy; hosts follow the channel they were
# deployed with.
source "$(dirname "$0")/lib.sh"

for k in admin admin2 ci reviewer dpo; do make_key $k; done
ops2_id=$("$FERRY" keygen ops2 --dir "$T" | awk '{print $2}')
write_policy() { # FILE ADMIN_KEY_NAME
  cat > "$1" <<YAML
keys:
  - {name: $2,       pub: $T/$2.pub,       roles: [admin]}
  - {name: ci,       pub: $T/ci.pub,       roles: [publisher, operator]}
  - {name: reviewer, pub: $T/reviewer.pub, roles: [approver]}
  - {name: dpo,      pub: $T/dpo.pub,      roles: [privacy]}
  - {name: enroll,   pub: $T/.lib/enroll.pub, roles: [operator]}
  - {name: ops2,     pub: $T/ops2.pub,     roles: [operator]}
channels: [dev, prod]
environments:
  - {name: prod, selector: "env=prod", channel: prod}
rules:
  - kind: model
    channel: prod
    approvals: 1
    privacy_review: true
    card: [Intended use, Limitations]
    metrics: {accuracy: ">= 0.9"}
YAML
  "$FERRY" policy sign "$1" --key "$T/$2.key" >/dev/null
}
write_policy "$T/policy.yaml" admin
start_registry reg "$T/reg" --trust-admin "$T/admin.pub" --policy "$T/policy.yaml"
url=$REG_URL
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ci.key"
start_agent h1 "$T/h1" --label env=prod --trust "$T/ci.pub" --trust-admin "$T/admin.pub"
start_agent h0 "$T/h0" --label env=dev --trust "$T/ci.pub"
grep -q "no --trust-admin: this host verifies no governance policy itself" "$T/agent-h0.log" \
  || fail "h0 did not say it verifies no policy"

policy_col() { "$FERRY" hosts --json | python3 -c '
import json,sys; d={h["name"]: h["verifies_policy"] for h in json.load(sys.stdin)["hosts"]}
sys.exit(0 if d.get("h1") is True and d.get("h0") is False else 1)'; }
wait_until 30 policy_col || fail "ferry hosts --json: $("$FERRY" hosts --json)"
"$FERRY" hosts | grep -Eq "^h1 .* verified$" || fail "ferry hosts: $("$FERRY" hosts)"
"$FERRY" hosts | grep -Eq "^h0 .* not verified$" || fail "ferry hosts: $("$FERRY" hosts)"
pass "ferry hosts says which hosts verify the policy themselves"

# The registry runs with the default --desired-ttl: h1's envelope runs for 24 h.
ttl_left() { "$FERRY" hosts --json | python3 -c "
import json, sys, time
h = [h for h in json.load(sys.stdin)['hosts'] if h['name'] == 'h1'][0]
left = h['envelope_expires_ms'] - time.time() * 1000
assert 23 * 3600e3 < left <= 24 * 3600e3 + 60e3, left"; }
wait_until 20 ttl_left || fail "h1's envelope does not run for the default 24 h: $("$FERRY" hosts --json | grep envelope)"
pass "without --desired-ttl a host's desired state is valid for 24 h"

make_model() { # DIR VERSION CARD_HEADINGS...
  local dir=$1 v=$2; shift 2
  mkdir -p "$dir"
  cat > "$dir/ferry.yaml" <<YAML
name: iris
version: "$v"
kind: model
runtime: exec
run:
  command: ["./serve.sh"]
model:
  card: CARD.md
  pii: true
  metrics: {accuracy: 0.95}
YAML
  printf '#!/bin/sh\nexec sleep 1000\n' > "$dir/serve.sh"; chmod 755 "$dir/serve.sh"
  : > "$dir/CARD.md"
  for h in "$@"; do printf '# %s\n\ntext\n\n' "$h" >> "$dir/CARD.md"; done
}
make_model "$T/m1" 1.0.0 "Intended use" "Limitations"
make_model "$T/m2" 1.1.0 "Intended use" "Limitations"
make_model "$T/m3" 1.2.0 "Intended use"
for d in m1 m2 m3; do "$FERRY" publish "$T/$d" >/dev/null; done
# The issue's own example, word for word (exit 1, one line).
rc=0; out=$("$FERRY" promote iris@1.2.0 --channel prod 2>&1) || rc=$?
[ $rc -eq 1 ] && [ "$out" = "ferry: promote iris@1.2.0 to prod refused: needs 1 more approval; model card lacks 'Limitations'; pii: true needs a privacy review" ] \
  || fail "promote of the unapproved iris@1.2.0 (exit $rc): $out"
for v in 1.0.0 1.2.0; do
  "$FERRY" approve iris@$v --key "$T/reviewer.key" >/dev/null
  "$FERRY" approve iris@$v --role privacy --key "$T/dpo.key" >/dev/null
done
"$FERRY" promote iris@1.0.0 --channel prod >/dev/null || fail "promote 1.0.0"
"$FERRY" deploy iris --channel prod --to env=prod >/dev/null || fail "deploy --channel prod"
wait_until 60 workload_state_is h1 iris 1.0.0 running || fail "iris@1.0.0 did not start on h1"
pid=$(workload_field h1 iris 1.0.0 pid)
pass "an approved model promoted to prod runs on the prod host that follows the channel"

# --- a later promotion rolls out without another deploy (1.0.0 -> 1.1.0 needs approval first)
expect_fail "promote iris@1.1.0 to prod refused: needs 1 more approval; pii: true needs a privacy review" \
  "$FERRY" promote iris@1.1.0 --channel prod

# --- the registry's database edited: prod points at the unapproved 1.1.0
point_prod_at() { # VERSION
  stop_and_wait "$REG_PID" 30 "the registry" || true
  sqlite3 "$T/reg/registry.db" "UPDATE channels SET version='$1', set_ms=set_ms+1000,
    manifest_digest=(SELECT manifest_digest FROM artifacts WHERE name='iris' AND version='$1')
    WHERE name='iris' AND channel='prod'"
  start_registry_at "reg-$1" "$T/reg" "$url" --trust-admin "$T/admin.pub" --policy "$T/policy.yaml"
}
point_prod_at 1.1.0
[ "$("$FERRY" channels iris --json)" != "" ] && "$FERRY" channels iris | grep -Eq "^prod +1.1.0 " \
  || fail "the edit did not take: $("$FERRY" channels iris)"
why='iris@1.1.0 refused by the policy of environment prod \(channel prod\): needs 1 more approval; pii: true needs a privacy review'
wait_until 60 workload_state_is h1 iris 1.1.0 failed || fail "h1 did not refuse iris@1.1.0: $("$FERRY" status)"
workload_field h1 iris 1.1.0 reason | grep -Eq "^$why$" || fail "reason: $(workload_field h1 iris 1.1.0 reason)"
[ ! -e "$T/h1/workloads/iris/1.1.0" ] || fail "the unapproved model was materialized on the prod host"
workload_state_is h1 iris 1.0.0 running || fail "iris@1.0.0 stopped"
[ "$(workload_field h1 iris 1.0.0 pid)" = "$pid" ] && kill -0 "$pid" || fail "iris@1.0.0 was restarted or killed"
pass "prod pointed at an unapproved model in SQLite: the prod agent refuses it, naming what is missing, and keeps 1.0.0 running"

# --- approved, but its card lacks a heading: refused once the tree is there, never started
point_prod_at 1.2.0
why="iris@1.2.0 refused by the policy of environment prod \(channel prod\): model card lacks 'Limitations'"
wait_until 60 workload_state_is h1 iris 1.2.0 failed || fail "h1 did not refuse iris@1.2.0: $("$FERRY" status)"
workload_field h1 iris 1.2.0 reason | grep -Eq "^$why$" || fail "reason: $(workload_field h1 iris 1.2.0 reason)"
[ "$(workload_field h1 iris 1.0.0 pid)" = "$pid" ] && kill -0 "$pid" || fail "iris@1.0.0 was restarted or killed"
pass "a model whose card lacks a required heading is refused by the agent itself; 1.0.0 keeps running"

# --- a real promotion after approval rolls out without another deploy
point_prod_at 1.0.0
"$FERRY" approve iris@1.1.0 --key "$T/reviewer.key" >/dev/null
"$FERRY" approve iris@1.1.0 --role privacy --key "$T/dpo.key" >/dev/null
"$FERRY" promote iris@1.1.0 --channel prod >/dev/null || fail "promote 1.1.0 once approved"
wait_until 60 workload_state_is h1 iris 1.1.0 running || fail "iris@1.1.0 did not roll out: $("$FERRY" status)"
pass "a promotion moves the hosts that follow the channel, without another deploy"

# --- a deploy signed by an operator key the policy revoked after it signed:
# the registry still holds the record; a host that trusts that key checks
# the revocation itself and refuses the deploy, before fetching anything.
make_app "$T/late" late 1
"$FERRY" publish "$T/late" >/dev/null
"$FERRY" deploy late@1 --to zone=b --key "$T/ops2.key" >/dev/null 2>&1 || fail "deploy by ops2 before its revocation"
"$FERRY" keys revoke "$ops2_id" --key "$T/admin.key" >/dev/null || fail "revoke ops2"
start_agent h3 "$T/h3" --label env=prod --label zone=b --trust "$T/ci.pub" --trust "$T/ops2.pub" --trust-admin "$T/admin.pub"
why="deploy of late@1 refused: key $ops2_id \\(ops2\\) is revoked"
wait_until 60 workload_state_is h3 late 1 failed || fail "h3 ran a deploy signed by a revoked key: $("$FERRY" status)"
workload_field h3 late 1 reason | grep -Eq "^$why$" || fail "reason: $(workload_field h3 late 1 reason)"
[ ! -e "$T/h3/workloads/late/1" ] || fail "the revoked key's deploy was materialized"
pass "a deploy signed by an operator key the policy has revoked is refused by the agent itself"

# --- a policy signed by an admin key this agent does not trust
write_policy "$T/policy2.yaml" admin2
start_registry reg2 "$T/reg2" --trust-admin "$T/admin2.pub" --policy "$T/policy2.yaml"
export FERRY_REGISTRY="$REG_URL"
start_agent h2 "$T/h2" --label env=prod --trust "$T/ci.pub" --trust-admin "$T/admin.pub"
make_app "$T/web" web 1
"$FERRY" publish "$T/web" >/dev/null
"$FERRY" deploy web@1 --to env=prod >/dev/null
why='policy not verified: policy signed by key [0-9a-f]{16} \(admin2\), which is not a trusted admin key'
wait_until 60 workload_state_is h2 web 1 failed || fail "h2 ran web under an unverified policy"
workload_field h2 web 1 reason | grep -Eq "^$why$" || fail "reason: $(workload_field h2 web 1 reason)"
pass "an agent refuses a policy signed by an admin key it does not trust, and runs nothing under it"

# --- a registry that serves a policy signed by a key the policy does not
# name as admin (a real registry refuses such a policy at start, so this one
# is played by ferry-replay: the real answers, captured, with the policy's
# signature line replaced by ci's). The agent refuses it, although it takes
# ci.pub as an admin key too, and fetches nothing.
stop_and_wait "$REG_PID" 30 "the registry" || true
start_registry reg3 "$T/reg3" --trust-admin "$T/admin.pub" --policy "$T/policy.yaml"
export FERRY_REGISTRY="$REG_URL"
start_agent h4 "$T/h4" --label zone=q --trust "$T/ci.pub" --trust-admin "$T/admin.pub" --trust-admin "$T/ci.pub"
H4_PID=$AGENT_PID
wait_until 20 test -f "$T/h4/registry.pub" || fail "h4 got no envelope from reg3"
kill -TERM "$H4_PID"; wait "$H4_PID" 2>/dev/null || true
"$FERRY" publish "$T/web" >/dev/null
"$FERRY" deploy web@1 --to zone=q >/dev/null
FERRY_REPLAY="$FERRY_BIN/tests/ferry-replay"
wait_until 10 "$FERRY_REPLAY" capture "$REG_URL" h4 "$T/h4/host.key" "$T/h4-poll.bin" || fail "capture failed"
cp "$T/policy.yaml" "$T/evil.yaml"
"$FERRY" policy sign "$T/evil.yaml" --key "$T/ci.key" >/dev/null 2>&1
"$FERRY_REPLAY" policy "$REG_URL" "$T/evil.yaml.sig" "$T/evil-policy.bin" || fail "policy capture failed"
stop_and_wait "$REG_PID" 30 "the registry" || true
"$FERRY_REPLAY" serve "$REG_URL" "$T/h4-poll.bin" "$T/evil-policy.bin" 2>"$T/replay.log" &
PIDS+=("$!")
wait_until 10 grep -q 'serving on' "$T/replay.log" || fail "replay did not start: $(cat "$T/replay.log")"
start_agent h4 "$T/h4" --label zone=q --trust "$T/ci.pub" --trust-admin "$T/admin.pub" --trust-admin "$T/ci.pub"
ci_id=$(cut -d' ' -f2 "$T/evil.yaml.sig")
why="policy not verified: policy signed by key $ci_id \\(ci\\), which the policy does not name as admin"
wait_until 30 grep -Eq "web@1.*$why" "$T/agent-h4.log" \
  || fail "h4 did not refuse a policy signed by a non-admin key: $(tail -5 "$T/agent-h4.log")"
[ ! -e "$T/h4/workloads/web/1" ] || fail "h4 materialized web@1 under a policy signed by a non-admin key"
pass "a policy signed by a key the policy does not name as admin is refused by the agent, which fetches nothing"
