#!/usr/bin/env bash
# Governance on the registry, through the CLI: the signed policy refused at
# start when unsigned, signed by a non-admin or malformed; roles on publish
# (with kinds), deploy, approve, promote and revoke; every rule (approvals
# with one key counting once, privacy review for pii: true, card headings,
# metric thresholds, provenance builder) refused with its reason named and
# allowed once met; channels; policy check/show; a revoked key's approval no
# longer counting; a revoked operator refused at once on every operator path
# (hosts accept/rm, actions, join tokens, deploys); every change kind of the
# policy half in the audit log.
source "$(dirname "$0")/lib.sh"

declare -A KID
for k in admin ci ds reviewer reviewer2 dpo ops2 other; do
  KID[$k]=$("$FERRY" keygen $k --dir "$T" | awk '{print $2}')
done
id_of() { echo "${KID[$1]}"; }
cat > "$T/policy.yaml" <<YAML
keys:
  - {name: admin,     pub: admin.pub,     roles: [admin]}
  - {name: ci,        pub: ci.pub,        roles: [publisher, operator]}
  - {name: ds,        pub: ds.pub,        roles: [publisher], kinds: [model, notebook]}
  - {name: reviewer,  pub: reviewer.pub,  roles: [approver]}
  - {name: reviewer2, pub: reviewer2.pub, roles: [approver]}
  - {name: dpo,       pub: dpo.pub,       roles: [privacy]}
  - {name: ops2,      pub: ops2.pub,      roles: [operator]}
  - {name: enroll,    pub: $T/.lib/enroll.pub, roles: [operator]}
channels: [dev, staging, prod]
environments:
  - {name: prod, selector: "env=prod", channel: prod}
  - {name: dev,  selector: "env=dev",  channel: dev}
rules:
  - kind: model
    channel: prod
    approvals: 2
    privacy_review: true
    card: [Intended use, Limitations]
    metrics: {accuracy: ">= 0.9"}
  - kind: app
    channel: prod
    provenance: {builder: "https://ci.example/builder"}
YAML

# --- refused at start: unsigned, signed by a non-admin, unknown key
reg_refused() { # PATTERN POLICY
  local rc=0 out
  out=$(timeout 20 "$FERRY_REGISTRY_BIN" --data "$T/refused" --listen tcp://127.0.0.1:0 \
        "${LIB_TRUST[@]}" --trust-admin "$T/admin.pub" --policy "$2" 2>&1) || rc=$?
  [ $rc -ne 0 ] || fail "registry started with $2"
  grep -Eq -- "$1" <<<"$out" || fail "registry with $2 said: $out"
  [ "$(wc -l <<<"$out")" -eq 1 ] || fail "registry with $2 said more than one line: $out"
  [ ! -e "$T/refused" ] || fail "a refused policy left $T/refused behind: $(ls "$T/refused")"
}
reg_refused "policy .*policy.yaml is not signed" "$T/policy.yaml"
reg_refused "$T/nope.yaml: No such file or directory" "$T/nope.yaml"
out=$("$FERRY" policy sign "$T/policy.yaml" --key "$T/ci.key" 2>&1) || fail "policy sign with ci: $out"
grep -q "warning: key .* is not an admin key" <<<"$out" || fail "no warning signing with ci: $out"
reg_refused "policy signed by key [0-9a-f]{16} \(ci\), which the policy does not name as admin" "$T/policy.yaml"
out=$("$FERRY" policy sign "$T/policy.yaml" --key "$T/admin.key") || fail "policy sign"
[ "$out" = "signed $T/policy.yaml (digest $(cut -c1-16 <<<"${out#*digest }"), 8 keys) with key $(id_of admin): wrote $T/policy.yaml.sig" ] \
  || fail "policy sign said: $out"
# Signed by an admin the registry does not anchor.
cp "$T/policy.yaml" "$T/policy2.yaml"
sed -i 's/{name: admin,     pub: admin.pub,     roles: \[admin\]}/{name: admin, pub: admin.pub, roles: [admin]}\n  - {name: other, pub: other.pub, roles: [admin]}/' "$T/policy2.yaml"
"$FERRY" policy sign "$T/policy2.yaml" --key "$T/other.key" >/dev/null
reg_refused "policy signed by key [0-9a-f]{16} \(other\), which is not a trusted admin key" "$T/policy2.yaml"
# A policy edited after signing.
cp "$T/policy.yaml" "$T/policy3.yaml"; cp "$T/policy.yaml.sig" "$T/policy3.yaml.sig"
sed -i 's/approvals: 2/approvals: 0/' "$T/policy3.yaml"
reg_refused "signature by key [0-9a-f]{16} \(admin\) does not match the policy" "$T/policy3.yaml"
printf 'keys:\n  - {name: admin, pub: admin.pub, roles: [admin]}\nfoo: 1\n' > "$T/policy4.yaml"
expect_fail "policy4.yaml:3: key 'foo': unknown key" "$FERRY" policy sign "$T/policy4.yaml" --key "$T/admin.key"
reg_refused "policy4.yaml:3: key 'foo': unknown key" "$T/policy4.yaml"
printf 'keys:\n  - {name: admin, pub: admin.pub, roles: [admin, boss]}\n' > "$T/policy5.yaml"
expect_fail "policy5.yaml:2: key 'keys\[0\]\.roles': 'boss' is not one of admin, publisher" \
  "$FERRY" policy sign "$T/policy5.yaml" --key "$T/admin.key"
pass "registry refuses an unsigned policy, one signed by a non-admin or an unanchored admin, an edited one, and unknown keys (file:line)"

# --- --trust names publishers, not admins: without --trust-admin, a policy
# its own admin signed is loaded (and the registry says nothing anchors it)
start_registry loose "$T/loose" --trust "$T/ci.pub" --policy "$T/policy.yaml"
grep -q "policy $T/policy.yaml: signed by its own admin key $(id_of admin); no --trust-admin anchors it" "$T/loose.log" \
  || fail "no line about the missing anchor: $(cat "$T/loose.log")"
stop_and_wait "$REG_PID" 30 "the registry" || true
pass "ferry-registry --trust KEY --policy FILE loads a policy signed by the policy's admin"

start_registry reg "$T/reg" --trust-admin "$T/admin.pub" --policy "$T/policy.yaml"
export FERRY_REGISTRY="$REG_URL"
grep -q "policy $T/policy.yaml (digest [0-9a-f]*): 8 keys, 3 channels, 2 environments, 2 rules" "$T/reg.log" \
  || fail "registry did not log the policy: $(cat "$T/reg.log")"
grep -q "listening on tcp://.* (data .*, keys from policy $T/policy.yaml)$" "$T/reg.log" \
  || fail "the listening line does not say the keys are the policy's: $(cat "$T/reg.log")"

# --- a malformed argument to a governance verb is a usage error (exit 2), one line
usage2() { # PATTERN CMD...
  local pattern=$1; shift
  local out rc=0
  out=$("$@" 2>&1 >/dev/null) || rc=$?
  [ $rc -eq 2 ] || fail "exit $rc (want 2) from: $* ($out)"
  grep -Eq -- "$pattern" <<<"$out" || fail "error for '$*' was '$out', expected /$pattern/"
  [ "$(wc -l <<<"$out")" -eq 1 ] || fail "error for '$*' is not one line: $out"
}
usage2 "^ferry approve: 'iris': expected NAME@VERSION" "$FERRY" approve iris --key "$T/reviewer.key"
usage2 "^ferry promote: 'iris@': expected NAME@VERSION" "$FERRY" promote iris@ --channel prod --key "$T/ci.key"
usage2 "^ferry promote: --channel 'a b': invalid channel name" "$FERRY" promote iris@1 --channel 'a b' --key "$T/ci.key"
usage2 "^ferry policy check: '@1': expected NAME@VERSION" "$FERRY" policy check @1 --channel prod
usage2 "^ferry channels: 'a b': invalid name" "$FERRY" channels 'a b'
usage2 "^ferry keys revoke: 'abc': a key id is 16 hex characters" "$FERRY" keys revoke abc --key "$T/admin.key"
pass "a malformed NAME@VERSION, channel, name or key id is a usage error (exit 2)"

# --- artifacts
make_model() { # DIR VERSION ACCURACY CARD_HEADINGS... (pii: true, runs as exec)
  local dir=$1 v=$2 acc=$3; shift 3
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
  metrics: {accuracy: $acc, auc: 0.97}
YAML
  printf '#!/bin/sh\nexec sleep 1000\n' > "$dir/serve.sh"; chmod 755 "$dir/serve.sh"
  : > "$dir/CARD.md"
  for h in "$@"; do printf '## %s\n\ntext\n\n' "$h" >> "$dir/CARD.md"; done
}
make_model "$T/iris1" 1.0.0 0.94 "Intended use" "Limitations"
make_model "$T/iris2" 1.1.0 0.85 "Intended use"
make_app "$T/web1" web 1
make_app "$T/web2" web 2
make_app "$T/web3" web 3

# --- publish: roles and kinds
expect_fail "publish refused: key [0-9a-f]{16} \(ds\) may not publish kind app" \
  "$FERRY" publish "$T/web1" --key "$T/ds.key"
expect_fail "publish refused: key [0-9a-f]{16} \(reviewer\) does not hold the publisher role" \
  "$FERRY" publish "$T/iris1" --key "$T/reviewer.key"
expect_fail "publish refused: manifest signed by untrusted key [0-9a-f]{16}" \
  "$FERRY" publish "$T/iris1" --key "$T/other.key"
"$FERRY" publish "$T/iris1" --key "$T/ds.key" >/dev/null || fail "ds publishes a model"
"$FERRY" publish "$T/iris2" --key "$T/ds.key" >/dev/null || fail "ds publishes iris 1.1.0"
"$FERRY" publish "$T/web1" --key "$T/ci.key" >/dev/null || fail "ci publishes an app"
"$FERRY" publish "$T/web2" --key "$T/ci.key" --provenance builder=https://other.example/b,commit=abc >/dev/null \
  || fail "publish with provenance"
"$FERRY" publish "$T/web3" --key "$T/ci.key" \
  --provenance builder=https://ci.example/builder,commit=0123abc,repo=https://git.example/web >/dev/null \
  || fail "publish with the right provenance"
expect_fail "--provenance 'commit=abc': builder=ID is required" \
  "$FERRY" publish "$T/web1" --key "$T/ci.key" --provenance commit=abc
pass "publish needs the publisher role, for the key's kinds"

# --- promote: every missing requirement named, exit 1
rc=0; out=$("$FERRY" promote iris@1.1.0 --channel prod --key "$T/ci.key" 2>&1) || rc=$?
[ $rc -eq 1 ] || fail "promote of an unapproved model exited $rc"
want="promote iris@1.1.0 to prod refused: needs 2 more approvals; model card lacks 'Limitations'; pii: true needs a privacy review; metric accuracy is 0.85, needs >= 0.9"
[ "$out" = "ferry: $want" ] || fail "promote said: $out"
expect_fail "promote iris@1.0.0 to prod refused: key [0-9a-f]{16} \(ds\) does not hold the operator role" \
  "$FERRY" promote iris@1.0.0 --channel prod --key "$T/ds.key"
expect_fail "refused: the policy has no channel qa" "$FERRY" promote iris@1.0.0 --channel qa --key "$T/ci.key"
pass "promote is refused with every missing requirement named"

# --- approvals: one key counts once; roles checked
"$FERRY" approve iris@1.0.0 --key "$T/reviewer.key" | grep -q "^approved iris@1.0.0 as approver" || fail "approve"
"$FERRY" approve iris@1.0.0 --key "$T/reviewer.key" | grep -q "^already approved iris@1.0.0" || fail "approve twice"
rc=0; out=$("$FERRY" policy check iris@1.0.0 --channel prod) || rc=$?
[ $rc -eq 1 ] || fail "policy check exited $rc"
[ "$out" = "iris@1.0.0 may not go to prod: needs 1 more approval; pii: true needs a privacy review" ] \
  || fail "policy check after one key approved twice: $out"
expect_fail "approve iris@1.0.0 as approver refused: key [0-9a-f]{16} \(ci\) does not hold the approver role" \
  "$FERRY" approve iris@1.0.0 --key "$T/ci.key"
expect_fail "approve iris@1.0.0 as privacy refused: key [0-9a-f]{16} \(reviewer\) does not hold the privacy role" \
  "$FERRY" approve iris@1.0.0 --role privacy --key "$T/reviewer.key"
expect_fail "--role is approver or privacy" "$FERRY" approve iris@1.0.0 --role boss --key "$T/reviewer.key"
expect_fail "iris@9.9.9: no such artifact version" "$FERRY" approve iris@9.9.9 --key "$T/reviewer.key"
"$FERRY" approve iris@1.0.0 --key "$T/reviewer2.key" >/dev/null || fail "second approver"
out=$("$FERRY" policy check iris@1.0.0 --channel prod) && fail "policy check passed without privacy review"
[ "$out" = "iris@1.0.0 may not go to prod: pii: true needs a privacy review" ] || fail "check: $out"
"$FERRY" approve iris@1.0.0 --role privacy --key "$T/dpo.key" | grep -q "as privacy" || fail "privacy review"
out=$("$FERRY" policy check iris@1.0.0 --channel prod) || fail "policy check refused: $out"
[ "$out" = "iris@1.0.0 may go to prod" ] || fail "check: $out"
"$FERRY" policy check iris@1.0.0 --channel prod --json | python3 -c '
import json,sys; d=json.load(sys.stdin); assert d=={"artifact":"iris@1.0.0","channel":"prod","allowed":True,"missing":[]}, d' \
  || fail "policy check --json (allowed)"
rc=0; out=$("$FERRY" policy check iris@1.1.0 --channel prod --json) || rc=$?
[ $rc -eq 1 ] || fail "policy check --json of a refused version exited $rc"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert not d["allowed"] and "metric accuracy is 0.85, needs >= 0.9" in d["missing"], d' "$out" \
  || fail "policy check --json (refused): $out"
expect_fail "policy check: the policy has no channel qa" "$FERRY" policy check iris@1.0.0 --channel qa
expect_fail "--channel CH is required" "$FERRY" policy check iris@1.0.0
"$FERRY" channels iris --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d=={"channels":{}}, d' \
  || fail "policy check changed a channel"
pass "approvals: distinct keys counted, the same key twice once, roles checked; policy check exits 0/1 and changes nothing"

# --- promote allowed, channels
"$FERRY" promote iris@1.0.0 --channel prod --key "$T/ci.key" | grep -q "^promoted iris@1.0.0 to prod$" || fail "promote"
"$FERRY" promote iris@1.1.0 --channel dev --key "$T/ci.key" >/dev/null || fail "dev has no rule for models"
"$FERRY" channels iris --json | python3 -c '
import json,sys; d=json.load(sys.stdin); assert d=={"channels":{"dev":"1.1.0","prod":"1.0.0"}}, d' \
  || fail "channels --json: $("$FERRY" channels iris --json)"
[ "$("$FERRY" channels iris --json)" = '{"channels": {"dev": "1.1.0", "prod": "1.0.0"}}' ] \
  || fail "channels --json is not the documented line: $("$FERRY" channels iris --json)"
"$FERRY" channels iris | grep -Eq "^prod +1.0.0 " || fail "channels: $("$FERRY" channels iris)"
pass "promote moves the channel once every rule is met; a channel without a rule takes anything signed"

# --- deploy: operator role; a plain deploy passes the rules of the environments it reaches
expect_fail "deploy iris: key [0-9a-f]{16} \(ds\) does not hold the operator role|refused: key [0-9a-f]{16} \(ds\) does not hold the operator role" \
  "$FERRY" deploy iris@1.0.0 --to env=prod --key "$T/ds.key"
expect_fail "deploy iris@1.1.0 to env=prod refused: needs 2 more approvals; model card lacks 'Limitations'; .*environment prod follows the rules of channel prod" \
  "$FERRY" deploy iris@1.1.0 --to env=prod --key "$T/ci.key"
"$FERRY" deploy iris@1.1.0 --to env=dev --key "$T/ci.key" >/dev/null || fail "deploy to dev"
"$FERRY" deploy iris --channel prod --to env=prod --key "$T/ci.key" | grep -q "^deployed iris (channel prod, now 1.0.0) to env=prod" \
  || fail "deploy --channel"
expect_fail "channel staging of iris points at no version; promote one first" \
  "$FERRY" deploy iris --channel staging --to env=staging --key "$T/ci.key"
pass "deploy needs an operator; a plain deploy to prod is held to prod's rules; deploy --channel follows the channel"

# --- a join token signed by a key without the operator role enrolls nothing
"$FERRY" hosts token --key "$T/reviewer.key" --ttl 10m -o "$T/reviewer.token" 2>/dev/null
START_AGENT_ENROLL=0 start_agent hx "$T/hx" --label env=dev --trust "$T/ci.pub" --join-token "$T/reviewer.token"
host_status() { "$FERRY" hosts --json | python3 -c '
import json,sys; print([h["status"] for h in json.load(sys.stdin)["hosts"] if h["name"]=="hx"])'; }
wait_until 20 grep -q "pending: host hx (key [0-9a-f]*): join token: signed by key $(id_of reviewer), which is not trusted" "$T/reg.log" \
  || fail "the reviewer's join token was not refused: $(tail -3 "$T/reg.log")"
[ "$(host_status)" = "['pending']" ] || fail "hx enrolled with a reviewer's token: $(host_status)"
kill -9 "$AGENT_PID"
pass "a join token signed by a key without the operator role does not enroll a host"
# ops2, an operator, signs a join token now; it is revoked below.
"$FERRY" hosts token --key "$T/ops2.key" --ttl 10m -o "$T/ops2.token" 2>/dev/null
"$FERRY" deploy web@1 --to env=dev --key "$T/ops2.key" >/dev/null || fail "ops2 deploys before its revocation"

# --- provenance builder
expect_fail "promote web@1 to prod refused: needs provenance from builder https://ci.example/builder" \
  "$FERRY" promote web@1 --channel prod --key "$T/ci.key"
expect_fail "promote web@2 to prod refused: provenance builder is https://other.example/b, needs https://ci.example/builder" \
  "$FERRY" promote web@2 --channel prod --key "$T/ci.key"
"$FERRY" promote web@3 --channel prod --key "$T/ci.key" >/dev/null || fail "promote with the right builder"
pass "provenance: missing and wrong builder refused, the right builder allowed"

# --- ferry inspect shows the signature list: the publisher's, approvals, provenance
out=$("$FERRY" inspect iris@1.0.0) || fail "inspect iris@1.0.0"
grep -qx "signature $(id_of ds) publisher" <<<"$out" || fail "inspect lacks the publisher: $out"
grep -qx "signature $(id_of reviewer) approver" <<<"$out" || fail "inspect lacks the approval: $out"
grep -qx "signature $(id_of dpo) privacy" <<<"$out" || fail "inspect lacks the privacy review: $out"
"$FERRY" inspect web@3 | grep -qx "signature $(id_of ci) provenance builder=https://ci.example/builder,commit=0123abc,repo=https://git.example/web" \
  || fail "inspect lacks the provenance statement: $("$FERRY" inspect web@3)"
"$FERRY" inspect web@3 --json | python3 -c '
import json,sys; s=json.load(sys.stdin)["signatures"]
assert [x["role"] for x in s]==["publisher","provenance"] and all(x["valid"] for x in s), s
assert s[1]["statement"].startswith("builder=https://ci.example/builder,") and "statement" not in s[0], s' \
  || fail "inspect --json signatures: $("$FERRY" inspect web@3 --json)"
pass "ferry inspect lists the signatures: publisher, approvals, provenance with its statement"

# --- policy show
out=$("$FERRY" policy show) || fail "policy show"
grep -q "signed by key $(id_of admin) (signature valid)" <<<"$out" || fail "policy show: $out"
grep -Eq "^  reviewer2 +[0-9a-f]{16}  approver$" <<<"$out" || fail "policy show keys: $out"
grep -Eq "^  ds +$(id_of ds)  publisher \(kinds model,notebook\)$" <<<"$out" || fail "policy show lacks ds's kinds: $out"
"$FERRY" policy show --json | python3 -c '
import json,sys; d=json.load(sys.stdin)
assert d["policy"] and d["signature_valid"] and d["channels"]==["dev","staging","prod"], d
k={x["name"]: x for x in d["keys"]}
assert k["ds"]["kinds"]==["model","notebook"] and "kinds" not in k["ci"], d["keys"]
assert d["rules"][0]["approvals"]==2 and d["rules"][1]["provenance_builder"]=="https://ci.example/builder", d' \
  || fail "policy show --json"
pass "policy show prints the signed policy (text and --json)"

# --- revoke: admin only; the revoked key's approval no longer counts, its requests are refused
rid=$(id_of reviewer2)
expect_fail "revoke refused: key [0-9a-f]{16} \(ci\) does not hold the admin role" \
  "$FERRY" keys revoke "$rid" --key "$T/ci.key"
expect_fail "'abc': a key id is 16 hex characters" "$FERRY" keys revoke abc --key "$T/admin.key"
"$FERRY" keys revoke "$rid" --key "$T/admin.key" | grep -q "^revoked key $rid (reviewer2)" || fail "revoke"
out=$("$FERRY" keys revoke "$rid" --key "$T/admin.key") || fail "a second revoke of reviewer2 failed"
[ "$out" = "already revoked key $rid (reviewer2)" ] || fail "a second revoke said: $out"
out=$("$FERRY" policy check iris@1.0.0 --channel prod) && fail "a revoked approval still counts"
[ "$out" = "iris@1.0.0 may not go to prod: needs 1 more approval" ] || fail "check after revoke: $out"
expect_fail "approve iris@1.1.0 as approver refused: key $rid \(reviewer2\) is revoked" \
  "$FERRY" approve iris@1.1.0 --key "$T/reviewer2.key"
"$FERRY" policy show | grep -Eq "^  reviewer2 +$rid  approver  REVOKED$" || fail "policy show lacks the revocation"
# A revoked operator, at once (no restart): every operator request is refused
# with the reason, and a host presenting the join token it signed stays pending.
oid=$(id_of ops2)
"$FERRY" keys revoke "$oid" --key "$T/admin.key" | grep -q "^revoked key $oid (ops2)" || fail "revoke ops2"
expect_fail "hosts accept refused: key $oid \(ops2\) is revoked" "$FERRY" hosts accept hx --key "$T/ops2.key"
# A key that is not revoked still may; then hx is enrolled, and only the
# revocation stands between ops2 and an action for it or its removal.
"$FERRY" hosts accept hx --key "$T/ci.key" >/dev/null || fail "ci could not accept hx"
expect_fail "action refused: key $oid \(ops2\) is revoked" \
  "$FERRY_BIN/tests/ferry-actforge" "$REG_URL" flood hx web "$T/ops2.key" 1
expect_fail "hosts rm refused: key $oid \(ops2\) is revoked" "$FERRY" hosts rm hx --key "$T/ops2.key"
expect_fail "refused: key $oid \(ops2\) is revoked" "$FERRY" deploy web@1 --to env=dev --key "$T/ops2.key"
START_AGENT_ENROLL=0 start_agent hy "$T/hy" --label env=dev --trust "$T/ci.pub" --join-token "$T/ops2.token"
wait_until 20 grep -q "pending: host hy (key [0-9a-f]*): join token: signed by key $oid, which is not trusted" "$T/reg.log" \
  || fail "the revoked operator's join token was not refused: $(tail -3 "$T/reg.log")"
kill -9 "$AGENT_PID"
hy_status() { "$FERRY" hosts --json | python3 -c '
import json,sys; print([h["status"] for h in json.load(sys.stdin)["hosts"] if h["name"]=="hy"])'; }
[ "$(hy_status)" = "['pending']" ] || fail "hy enrolled with a revoked operator's token: $(hy_status)"
# A revoked publisher: its next publish is refused.
make_model "$T/iris3" 1.3.0 0.95 "Intended use" "Limitations"
"$FERRY" keys revoke "$(id_of ds)" --key "$T/admin.key" >/dev/null || fail "revoke ds"
expect_fail "publish refused: key $(id_of ds) \(ds\) is revoked" "$FERRY" publish "$T/iris3" --key "$T/ds.key"
pass "a revoked operator or publisher is refused at once: hosts accept, hosts rm, actions, deploys, join tokens, publishes"
# The revocation outlives a restart.
stop_and_wait "$REG_PID" 30 "the registry" || true
start_registry_at reg2 "$T/reg" "$REG_URL" --trust-admin "$T/admin.pub" --policy "$T/policy.yaml"
out=$("$FERRY" policy check iris@1.0.0 --channel prod) && fail "revocation lost on restart"
[ "$out" = "iris@1.0.0 may not go to prod: needs 1 more approval" ] || fail "check after restart: $out"
expect_fail "hosts rm refused: key $oid \(ops2\) is revoked" "$FERRY" hosts rm hx --key "$T/ops2.key"
pass "keys revoke: admin only; a revoked key's approval no longer counts and its requests are refused, across restarts"

# --- the audit log: every change of the policy half, with key id and role
"$FERRY" audit --json > "$T/audit.json"
python3 - "$T/audit.json" "$(id_of admin)" "$(id_of ci)" "$(id_of ds)" "$(id_of reviewer)" "$(id_of dpo)" "$rid" "$oid" <<'PY' \
  || fail "audit --json: $(cat "$T/audit.json")"
import json, sys
admin, ci, ds, reviewer, dpo, rid, oid = sys.argv[2:]
es = json.load(open(sys.argv[1]))['entries']
def has(what, key, role, detail):
    assert any(e['what'] == what and e['key_id'] == key and e['role'] == role and e['detail'] == detail
               for e in es), (what, key, role, detail, es)
pol = [e for e in es if e['what'] == 'policy']
assert len(pol) == 1 and all(e['key_id'] == admin and e['role'] == 'admin' and len(e['detail']) == 64
                             for e in pol), pol  # a restart with the same policy is no change
has('publish', ds, 'publisher', 'iris@1.0.0')
has('approve', reviewer, 'approver', 'iris@1.0.0 (approver)')
has('approve', dpo, 'privacy', 'iris@1.0.0 (privacy)')
assert len([e for e in es if e['what'] == 'approve' and e['key_id'] == reviewer
            and e['detail'] == 'iris@1.0.0 (approver)']) == 1, es  # the second approval is no change
has('promote', ci, 'operator', 'iris@1.0.0 to prod')
has('deploy', ci, 'operator', 'iris@1.0.0 to env=prod')
has('revoke', admin, 'admin', 'key %s (reviewer2)' % rid)
assert len([e for e in es if e['what'] == 'revoke' and e['detail'] == 'key %s (reviewer2)' % rid]) == 1, es  # the second revoke is no change
has('revoke', admin, 'admin', 'key %s (ops2)' % oid)
has('revoke', admin, 'admin', 'key %s (ds)' % ds)
assert any(e['what'] == 'accept-host' and e['key_id'] == ci and e['detail'].startswith('hx key ') for e in es), es
for e in es:
    assert e['time_unix'] > 0 and e['time'].endswith('Z') and len(e['hash']) == 64, e
PY
"$FERRY" audit --verify | grep -q "^audit log verified: [0-9]* entries" || fail "audit --verify: $("$FERRY" audit --verify 2>&1)"
pass "policy, publish, approve, promote, deploy, revoke and host accept are chained audit entries with key id and role"

# A changed policy is a change: the restart that loads it adds one entry.
stop_and_wait "$REG_PID" 30 "the registry" || true
sed -i 's/^channels: \[dev, staging, prod\]$/channels: [dev, staging, prod, qa]/' "$T/policy.yaml"
grep -q "prod, qa\]" "$T/policy.yaml" || fail "the policy edit did not apply"
"$FERRY" policy sign "$T/policy.yaml" --key "$T/admin.key" >/dev/null || fail "policy sign (edited)"
start_registry_at reg3 "$T/reg" "$REG_URL" --trust-admin "$T/admin.pub" --policy "$T/policy.yaml"
n=$("$FERRY" audit --json | python3 -c "import json,sys; print(sum(e['what'] == 'policy' for e in json.load(sys.stdin)['entries']))")
[ "$n" = 2 ] || fail "policy entries after a changed policy: $n, expected 2"
"$FERRY" audit --verify >/dev/null || fail "audit --verify after the policy change"
pass "the audit log gets a policy entry when the policy changes, not at every start"

# --- without --policy: every trusted key may do everything, as before
start_registry plain "$T/plain" --trust "$T/ds.pub"
"$FERRY" publish "$T/web1" --registry "$REG_URL" --key "$T/ds.key" >/dev/null || fail "plain registry: publish"
"$FERRY" promote web@1 --channel prod --registry "$REG_URL" --key "$T/ds.key" >/dev/null || fail "plain registry: promote"
"$FERRY" policy show --registry "$REG_URL" | grep -q "no policy: every trusted key may do everything" || fail "plain: policy show"
pass "without --policy every trusted key may do everything"
