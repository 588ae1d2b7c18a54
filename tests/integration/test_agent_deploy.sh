#!/usr/bin/env bash
# The agent end to end: deploy, supervision, rollback, trust, undeploy.
source "$(dirname "$0")/lib.sh"

make_key ops
make_key mallory
start_registry reg "$T/reg" --trust "$T/ops.pub" --trust "$T/mallory.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent h1 "$T/h1" --label env=test --label zone=a --trust "$T/ops.pub"

# --- deploy -> the app answers on its port, status --wait returns 0
make_web_app "$T/web1" web 1.0
head -c 3000000 /dev/urandom > "$T/model.bin"   # every web version ships it
cp "$T/model.bin" "$T/web1/"
"$FERRY" publish "$T/web1" >/dev/null
"$FERRY" deploy web@1.0 --to env=test | grep -q 'deployed web@1.0 to env=test'
"$FERRY" status --wait web@1.0 --timeout 30 >/dev/null || fail "status --wait web@1.0"
port=$(workload_field h1 web 1.0 port)
[ "$(answer "$port")" = "web 1.0" ] || fail "web@1.0 does not answer on $port"
"$FERRY" hosts --json | python3 -c "
import json, sys
h = json.load(sys.stdin)['hosts'][0]
assert h['name'] == 'h1' and h['online'] is True, h
assert h['labels'] == {'env': 'test', 'zone': 'a'}, h" || fail "hosts --json"
pass "deploy: the app answers on port $port and status --wait returns 0"

# --- kill -9 of the workload: restarted, restart count grows
pid=$(workload_field h1 web 1.0 pid)
kill -9 "$pid"
restarted() { [ "$(workload_field h1 web 1.0 restarts)" -ge 1 ] && workload_state_is h1 web 1.0 running; }
wait_until 20 restarted || fail "web was not restarted after kill -9"
[ "$(workload_field h1 web 1.0 pid)" != "$pid" ] || fail "same pid after restart"
wait_until 10 answer "$(workload_field h1 web 1.0 port)" || fail "restarted web does not answer"
pass "a killed workload is restarted (restarts=$(workload_field h1 web 1.0 restarts))"

# --- a version whose health never passes is rolled back; the old one answers
make_web_app "$T/web2" web 2.0 /healthz-that-does-not-exist
cp "$T/model.bin" "$T/web2/"
"$FERRY" publish "$T/web2" >/dev/null
"$FERRY" deploy web@2.0 --to env=test >/dev/null
rc=0; out=$("$FERRY" status --wait web@2.0 --timeout 60 2>&1 >/dev/null) || rc=$?
[ $rc -ne 0 ] || fail "status --wait for a bad version returned 0"
grep -q 'host h1: web@2.0 rolled_back' <<<"$out" || fail "status --wait said: $out"
workload_state_is h1 web 2.0 rolled_back || fail "web@2.0 is not rolled_back"
workload_field h1 web 2.0 reason | grep -q 'not healthy' || fail "no reason for the rollback"
workload_state_is h1 web 1.0 running || fail "web@1.0 is not running after the rollback"
[ "$(answer "$(workload_field h1 web 1.0 port)")" = "web 1.0" ] || fail "web@1.0 stopped answering"
pass "an unhealthy version is rolled back and the previous one keeps answering"

# --- a re-deploy of the version that kept running supersedes the rolled_back one
pid1=$(workload_field h1 web 1.0 pid)
"$FERRY" deploy web@1.0 --to env=test >/dev/null
"$FERRY" status --wait web@1.0 --timeout 30 >/dev/null || fail "status --wait web@1.0 after re-deploy"
no_web2() { ! workload_field h1 web 2.0 state; }
wait_until 20 no_web2 || fail "web@2.0 still reported as $(workload_field h1 web 2.0 state)"
[ ! -e "$T/h1/workloads/web/2.0" ] || fail "web@2.0's tree was left behind"
[ "$(workload_field h1 web 1.0 pid)" = "$pid1" ] || fail "the re-deploy restarted web@1.0"
pass "a re-deploy of the running version leaves no rolled_back version behind"

# --- a good new version replaces the old one
make_web_app "$T/web3" web 3.0
cp "$T/model.bin" "$T/web3/"
echo "v3" > "$T/web3/VERSION"
"$FERRY" publish "$T/web3" >/dev/null
served=$("$FERRY" stats --json | python3 -c "import json,sys; print(json.load(sys.stdin)['chunks_served'])")
"$FERRY" deploy web@3.0 --to env=test >/dev/null
"$FERRY" status --wait web@3.0 --timeout 30 >/dev/null || fail "status --wait web@3.0"
served=$(( $("$FERRY" stats --json | python3 -c "import json,sys; print(json.load(sys.stdin)['chunks_served'])") - served ))
[ "$served" -eq 1 ] || fail "web@3.0 changed one small file but the agent fetched $served chunks"
cmp -s "$T/model.bin" "$T/h1/workloads/web/3.0/model.bin" || fail "model.bin differs in web@3.0"
old_gone() { ! workload_field h1 web 1.0 state >/dev/null 2>&1; }
wait_until 15 old_gone || fail "web@1.0 still listed after web@3.0 took over"
wait_until 15 test ! -e "$T/h1/workloads/web/1.0" || fail "web@1.0's tree was not removed"
[ ! -e "$T/h1/workloads/web/2.0" ] || fail "the rolled-back web@2.0's tree was not removed"
[ "$(answer "$(workload_field h1 web 3.0 port)")" = "web 3.0" ] || fail "web@3.0 does not answer"
pass "a healthy new version replaces the old one, fetching only the file that changed"

# --- a crash-looping app ends failed
mkdir -p "$T/crash"
cat > "$T/crash/ferry.yaml" <<'YAML'
name: crashy
version: "1"
kind: app
runtime: exec
run:
  command: ["/bin/sh", "-c", "echo dying >&2; exit 3"]
YAML
"$FERRY" publish "$T/crash" >/dev/null
"$FERRY" deploy crashy@1 --to env=test >/dev/null
rc=0; out=$("$FERRY" status --wait crashy@1 --timeout 60 2>&1 >/dev/null) || rc=$?
[ $rc -ne 0 ] || fail "status --wait succeeded for a crash loop"
workload_state_is h1 crashy 1 failed || fail "crashy is not failed: $(workload_field h1 crashy 1 state)"
workload_field h1 crashy 1 reason | grep -q 'crash loop' || fail "reason: $(workload_field h1 crashy 1 reason)"
grep -q dying "$T/h1/workloads/crashy/1/.ferry/stderr.log" || fail "stderr not captured"
pass "a crash-looping app ends failed ($(workload_field h1 crashy 1 reason))"

# --- an artifact signed by a key the agent does not trust never runs
make_web_app "$T/evil" evil 1.0
"$FERRY" publish "$T/evil" --key "$T/mallory.key" >/dev/null
"$FERRY" deploy evil@1.0 --to env=test >/dev/null
mallory_id=$("$FERRY" versions evil --json | python3 -c "import json,sys; print(json.load(sys.stdin)['versions'][0]['publisher'])")
rc=0; "$FERRY" status --wait evil@1.0 --timeout 30 >/dev/null 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "status --wait succeeded for an untrusted artifact"
workload_state_is h1 evil 1.0 failed || fail "evil is not failed"
workload_field h1 evil 1.0 reason | grep -q "untrusted key $mallory_id" || fail "reason: $(workload_field h1 evil 1.0 reason)"
[ ! -e "$T/h1/workloads/evil/1.0" ] || fail "the untrusted artifact was materialized"
! pgrep -f "$T/h1/workloads/evil" >/dev/null || fail "the untrusted artifact runs"
pass "an artifact signed by an untrusted key is failed and never started"

# --- a deployment signed by a key the agent does not trust is refused too
"$FERRY" deploy web@1.0 --to env=test --key "$T/mallory.key" >/dev/null
wait_until 10 grep -q 'refusing deployment of web: deployment of web@1.0 signed by untrusted key' "$T/agent-h1.log" \
  || fail "agent did not refuse a deployment signed by an untrusted key"
workload_state_is h1 web 3.0 running || fail "web@3.0 was disturbed by a refused deployment"
pass "a deployment signed by an untrusted key is refused; the running version stays"

# --- undeploy: the workload stops and disappears from status
pid=$(workload_field h1 web 3.0 pid)
"$FERRY" undeploy web --to env=test | grep -q 'undeployed web from env=test'
gone() { ! workload_field h1 web 3.0 state >/dev/null 2>&1; }
wait_until 15 gone || fail "web still in status after undeploy"
wait_until 10 bash -c "! kill -0 $pid 2>/dev/null" || fail "web process $pid still runs"
pass "undeploy stops the workload and removes it from status"

wait_until 15 test ! -e "$T/h1/workloads/web/3.0" || fail "undeployed web@3.0's tree was not removed"
served=$("$FERRY" stats --json | python3 -c "import json,sys; print(json.load(sys.stdin)['chunks_served'])")
"$FERRY" deploy web@3.0 --to env=test >/dev/null
"$FERRY" status --wait web@3.0 --timeout 60 >/dev/null || fail "web@3.0 did not come back after a re-deploy"
served=$(( $("$FERRY" stats --json | python3 -c "import json,sys; print(json.load(sys.stdin)['chunks_served'])") - served ))
[ "$served" -eq 0 ] || fail "re-deploying web@3.0 fetched $served chunks; its blobs were cached"
[ "$(answer "$(workload_field h1 web 3.0 port)")" = "web 3.0" ] || fail "re-deployed web@3.0 does not answer"
"$FERRY" undeploy web --to env=test >/dev/null
pass "an undeployed version can be deployed again, from the agent's blob cache"

# --- bad input to the fleet commands
expect_fail "selector 'env': label 'env': expected KEY=VALUE|label 'env': expected KEY=VALUE" \
  "$FERRY" deploy web@3.0 --to env
expect_fail 'nope@1: no such artifact version' "$FERRY" deploy nope@1 --to env=test
expect_fail 'no signing key' env -u FERRY_KEY "$FERRY" deploy web@3.0 --to env=test
"$FERRY_POKE" "$REG_URL" ping >/dev/null || fail "registry stopped answering"
pass "bad deploys are refused with one line"
