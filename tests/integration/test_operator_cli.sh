#!/usr/bin/env bash
# The operator's everyday commands: --version and help for every verb,
# deploy's host count and warnings, status --wait scoped by selector (exit
# 0/1/3), rollback, history and deployments with key ids, hosts rm, the
# plugins hosts report, workload addresses, and the agent's URL check.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ociimage.sh"

# --- --version of every program, from CMake's project version
want=$(sed -n 's/^project(ferry VERSION \([0-9.]*\).*/\1/p' "$FERRY_SRC/CMakeLists.txt")
[ -n "$want" ] || fail "no project version in CMakeLists.txt"
[ "$("$FERRY" --version)" = "ferry $want" ] || fail "ferry --version: $("$FERRY" --version)"
[ "$("$FERRY_REGISTRY_BIN" --version)" = "ferry-registry $want" ] || fail "ferry-registry --version"
[ "$("$FERRY_AGENT_BIN" --version)" = "ferry-agent $want" ] || fail "ferry-agent --version"
pass "--version prints $want for ferry, ferry-registry and ferry-agent"

# --- help VERB and VERB --help, for every verb ferry help lists
verbs=$("$FERRY" help | sed -n 's/^  \([a-z]*\) .*/\1/p' | sort -u)
[ "$(echo "$verbs" | wc -l)" -ge 15 ] || fail "ferry help lists too few verbs: $verbs"
for v in help version logs metrics rollback deployments history hosts status deploy; do
  grep -qx "$v" <<<"$verbs" || fail "ferry help does not list $v: $verbs"
done
for v in $verbs; do
  out=$("$FERRY" help "$v") || fail "ferry help $v exited non-zero"
  grep -q "^  $v" <<<"$out" || fail "ferry help $v: $out"
  out=$("$FERRY" "$v" --help) || fail "ferry $v --help exited non-zero"
  grep -q "^usage: ferry $v" <<<"$out" || fail "ferry $v --help: $out"
done
"$FERRY" deploy web@1 --to env=x --help | grep -q -- '--wait' || fail "deploy --help after arguments"
[ "$("$FERRY" help --help | head -n 1)" = "usage: ferry help ..." ] || fail "ferry help --help"
[ "$("$FERRY" version --help | head -n 1)" = "usage: ferry version ..." ] || fail "ferry version --help"
"$FERRY" hosts rm h1 --help | grep -q '^  hosts rm NAME' || fail "hosts rm --help"
# a usage error's "see 'ferry help ...'" names a command that works, for
# subcommands too
for cmd in "hosts token --ttl 5abc" "hosts accept" "hosts rm" "kernel start" "keys revoke" "policy sign"; do
  rc=0; out=$("$FERRY" $cmd 2>&1 >/dev/null) || rc=$?
  [ $rc -eq 2 ] || fail "ferry $cmd exited $rc, want 2: $out"
  hint=$(sed -n "s/.*(see '\(ferry help [a-z ]*\)')\$/\1/p" <<<"$out")
  [ -n "$hint" ] || fail "ferry $cmd: no help hint in: $out"
  "$FERRY" ${hint#ferry } >/dev/null 2>&1 || fail "ferry $cmd points at '$hint', which fails"
done
# an option the verb does not take is named itself, not the word after it
# (which getopt took as its value)
expect_fail "^ferry rollback: unknown or incomplete option '--wait'" "$FERRY" rollback web --wait --to env=x
expect_fail "^ferry undeploy: unknown or incomplete option '--wait'" "$FERRY" undeploy web --to env=x --wait --key "$T/x.key"
expect_fail "^ferry hosts accept: unknown or incomplete option '--label'" "$FERRY" hosts accept h1 --label a=b
rc=0; "$FERRY" help nosuchverb >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "ferry help nosuchverb exited $rc, want 2"
pass "help VERB and VERB --help exit 0 for: $(echo $verbs)"

# --- the agent refuses a registry URL it cannot use: one line, exit 2
agent_url_fails() { # PATTERN URL
  local rc=0 out
  out=$(timeout 5 "$FERRY_AGENT_BIN" --registry "$2" --state "$T/never" --trust "$T/.lib/enroll.pub" 2>&1 >/dev/null) || rc=$?
  [ $rc -eq 2 ] || fail "agent --registry '$2' exited $rc, want 2 ($out)"
  grep -Eq -- "$1" <<<"$out" || fail "agent --registry '$2' said: $out"
  [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "agent --registry '$2': not one line: $out"
}
agent_url_fails "^ferry-agent: --registry 'http://127.0.0.1:7400': scheme 'http' is not supported" http://127.0.0.1:7400
agent_url_fails "^ferry-agent: --registry 'localhost:7400': " localhost:7400
agent_url_fails "^ferry-agent: --registry 'tcp://127.0.0.1': expected tcp://HOST:PORT" tcp://127.0.0.1
agent_url_fails "^ferry-agent: --registry 'tcp://127.0.0.1:99999': expected" tcp://127.0.0.1:99999
agent_url_fails "^ferry-agent: --registry 'tcp://:7400': no host" tcp://:7400
agent_url_fails "^ferry-agent: --registry 'tcp://999.1.1.1:7400': '999.1.1.1' is not a host name or an IP address$" tcp://999.1.1.1:7400
agent_url_fails "^ferry-agent: --registry 'tcp://reg host:7400': 'reg host' is not a host name or an IP address$" "tcp://reg host:7400"
agent_url_fails "^ferry-agent: --registry 'tcp://reg..example:7400': 'reg..example' is not a host name" tcp://reg..example:7400
agent_url_fails "^ferry-agent: --registry 'tls\+tcp://-reg:7400': '-reg' is not a host name" tls+tcp://-reg:7400
rc=0; out=$("$FERRY_AGENT_BIN" --registry tcp://127.0.0.1:1 --state "$T/never" --advertise 'a b' 2>&1) || rc=$?
[ $rc -eq 2 ] && [ "$out" = "ferry-agent: --advertise 'a b': expected a host name or an IP address" ] \
  || fail "--advertise 'a b': exit $rc: $out"
[ ! -e "$T/never" ] || fail "a refused start left state behind"
pass "a registry URL the agent cannot use: one line, exit 2"

# --- an unreachable registry is logged at the default level, once per outage, with the reason
dead_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG_URL_SAVED=${REG_URL:-}
REG_URL="tcp://127.0.0.1:$dead_port" start_agent_unenrolled lonely "$T/lonely" --trust "$T/.lib/enroll.pub"
lonely_pid=$AGENT_PID
# chatty names the registry by host name: a well-formed name is accepted.
REG_URL="tcp://localhost:$dead_port" start_agent_unenrolled chatty "$T/chatty" --trust "$T/.lib/enroll.pub" --verbose
chatty_pid=$AGENT_PID
wait_until 10 grep -q 'warn: registry tcp://127.0.0.1:'"$dead_port"' unreachable; workloads keep running: Connection refused' "$T/agent-lonely.log" \
  || fail "no outage line at the default level: $(cat "$T/agent-lonely.log")"
polls_at_least() { [ "$(grep -c 'debug: poll:' "$T/agent-chatty.log")" -ge "$1" ]; }
wait_until 20 polls_at_least 3 || fail "chatty did not retry"
[ "$(grep -c 'unreachable; workloads keep running' "$T/agent-chatty.log")" -eq 1 ] \
  || fail "outage logged more than once: $(grep unreachable "$T/agent-chatty.log")"
kill -9 "$lonely_pid" "$chatty_pid"
pass "an unreachable registry: one warning per outage, with the reason"

# --- a fleet: h1 (env=test, trusts ops) and h2 (env=other, trusts nobody useful)
ops_id=$("$FERRY" keygen ops --dir "$T" | awk '{print $2}')
make_key nobody
# Hosts unheard of for 1s are offline (for hosts rm): heartbeats come faster.
export FERRY_AGENT_HEARTBEAT_MS=200
start_registry reg "$T/reg" --trust "$T/ops.pub" --host-ttl 1s
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
# No host online at all: status --wait without --to has nothing to wait for, exit 1 at once.
start=$(date +%s%N)
expect_fail '^ferry: no online host: nothing to wait for$' "$FERRY" status --wait web@1.0 --timeout 60
[ $(( ($(date +%s%N) - start) / 1000000 )) -lt 5000 ] || fail "status --wait with no host online did not fail at once"
# The plugin warning below needs a runtime no host serves: these hosts load
# every plugin ferry builds but oci.
mkdir -p "$T/plugins"
cp -a "$FERRY_PLUGINS"/. "$T/plugins"
rm -f "$T/plugins/oci.so"
chmod -R go-w "$T/plugins"
FERRY_PLUGINS="$T/plugins"
start_agent h1 "$T/h1" --label env=test --label role=web --trust "$T/ops.pub" --advertise 127.0.0.2
start_agent h2 "$T/h2" --label env=other --label role=web --trust "$T/nobody.pub"
h2_pid=$AGENT_PID
online() { "$FERRY" hosts --json | python3 -c "
import json, sys
hs = {h['name']: h for h in json.load(sys.stdin)['hosts']}
sys.exit(0 if all(n in hs and hs[n]['online'] == (sys.argv[2] == 'yes') for n in sys.argv[1].split(',')) else 1)" "$1" "$2"; }
wait_until 10 online h1,h2 yes || fail "h1 and h2 not online"

# hosts report their plugins
"$FERRY" hosts --json | python3 -c "
import json, sys
h = {h['name']: h for h in json.load(sys.stdin)['hosts']}['h1']
assert any(p['name'] == 'exec' and 'exec' in p['runtimes'] for p in h['plugins']), h['plugins']" \
  || fail "hosts --json has no exec plugin for h1: $("$FERRY" hosts --json)"
"$FERRY" hosts | grep '^h1 ' | grep -q 'exec(exec' || fail "ferry hosts shows no plugins: $("$FERRY" hosts)"
pass "hosts report their plugins (ferry hosts, --json)"

# --- deploy prints the matching online hosts; none: recorded, with a warning
make_web_app "$T/web1" web 1.0
make_web_app "$T/web2" web 2.0
"$FERRY" publish "$T/web1" >/dev/null
"$FERRY" publish "$T/web2" >/dev/null
out=$("$FERRY" deploy web@1.0 --to role=web 2>"$T/err")
grep -q '^deployed web@1.0 to role=web$' <<<"$out" || fail "deploy said: $out"
grep -q '^2 online hosts match role=web$' <<<"$out" || fail "deploy count: $out"
[ ! -s "$T/err" ] || fail "deploy warned: $(cat "$T/err")"
out=$("$FERRY" deploy web@1.0 --to env=nowhere 2>"$T/err") || fail "deploy to no host failed"
grep -q '^0 online hosts match env=nowhere$' <<<"$out" || fail "deploy count: $out"
grep -q '^ferry: warning: no online host matches env=nowhere; the deployment is recorded' "$T/err" \
  || fail "no-match warning: $(cat "$T/err")"
[ "$(wc -l < "$T/err")" -eq 1 ] || fail "no matching host: more than the one warning line: $(cat "$T/err")"
"$FERRY" deployments --json | python3 -c "
import json, sys
d = json.load(sys.stdin)['deployments']
assert any(e['selector'] == 'env=nowhere' and e['version'] == '1.0' for e in d), d" \
  || fail "the no-match deployment was not recorded"
pass "deploy prints the online hosts that match; with none it records and warns"

# --- status --wait --to: only the hosts the selector matches count
"$FERRY" status --wait web@1.0 --to env=test --timeout 30 >/dev/null || fail "status --wait --to env=test"
wait_until 20 workload_state_is h2 web 1.0 failed || fail "web@1.0 did not fail on h2 (untrusted)"
rc=0; out=$("$FERRY" status --wait web@1.0 --to env=test --timeout 10 2>&1 >/dev/null) || rc=$?
[ $rc -eq 0 ] || fail "status --wait --to env=test with h2 failed: exit $rc ($out)"
rc=0; out=$("$FERRY" status --wait web@1.0 --to role=web --timeout 10 2>&1 >/dev/null) || rc=$?
[ $rc -eq 1 ] || fail "status --wait --to role=web exited $rc, want 1"
grep -q '^ferry: host h2: web@1.0 failed' <<<"$out" || fail "status --wait role=web said: $out"
rc=0; out=$("$FERRY" status --wait web@1.0 --timeout 10 2>&1 >/dev/null) || rc=$?
[ $rc -eq 1 ] || fail "status --wait (every host) exited $rc, want 1"
grep -q '^ferry: host h2: web@1.0 failed' <<<"$out" || fail "status --wait (every host) said: $out"
pass "status --wait --to ignores hosts outside the selector (h2's failure counts only when matched)"

# no matching online host: exit 1 at once (well before the timeout)
start=$(date +%s%N); rc=0
out=$("$FERRY" status --wait web@1.0 --to env=nowhere --timeout 60 2>&1 >/dev/null) || rc=$?
took=$(( ($(date +%s%N) - start) / 1000000 ))
[ $rc -eq 1 ] || fail "no matching host: exit $rc, want 1"
[ $took -lt 5000 ] || fail "no matching host took ${took}ms"
grep -q 'no online host matches env=nowhere' <<<"$out" || fail "no-match said: $out"
[ "$(echo "$out" | wc -l)" -eq 1 ] || fail "no-match: not one line: $out"
# a timeout: exit 3, naming the hosts still waited for
rc=0; out=$("$FERRY" status --wait web@9.9 --to env=test --timeout 300ms 2>&1 >/dev/null) || rc=$?
[ $rc -eq 3 ] || fail "timeout exited $rc, want 3 ($out)"
grep -q '^ferry: timed out after 300ms waiting for web@9.9: still waiting for h1 (pending)' <<<"$out" \
  || fail "timeout said: $out"
[ "$(echo "$out" | wc -l)" -eq 1 ] || fail "without a terminal, more than the outcome: $out"
# without --to, online hosts but none meant to run it: waited for until the timeout (3)
rc=0; out=$("$FERRY" status --wait web@9.9 --timeout 300ms 2>&1 >/dev/null) || rc=$?
[ $rc -eq 3 ] || fail "status --wait of a version no host has exited $rc, want 3 ($out)"
[ "$out" = "ferry: timed out after 300ms waiting for web@9.9: no online host has web@9.9 as its desired state" ] \
  || fail "status --wait of a version no host has said: $out"
# on a terminal, the hosts still waited for are shown while waiting
rc=0; script -qec "$FERRY status --wait web@9.9 --to env=test --timeout 1s" /dev/null > "$T/tty.out" 2>&1 || rc=$?
grep -q 'waiting for web@9.9 on h1 (pending)' "$T/tty.out" || fail "no progress on a terminal: $(cat -v "$T/tty.out")"
grep -q 'timed out after 1s' "$T/tty.out" || fail "terminal run: $(cat -v "$T/tty.out")"
pass "status --wait: no matching host exits 1 at once (${took}ms), a timeout exits 3"

# deploy --wait waits the same way
out=$("$FERRY" deploy web@2.0 --to env=test --wait --timeout 30) || fail "deploy --wait web@2.0"
grep -q '^1 online host matches env=test$' <<<"$out" || fail "deploy --wait said: $out"
workload_state_is h1 web 2.0 running || fail "deploy --wait returned before web@2.0 ran"
[ "$(answer "$(workload_field h1 web 2.0 port)")" = "web 2.0" ] || fail "web@2.0 does not answer"
pass "deploy --wait returns once the version runs on the matching hosts"

# --- status shows each workload's address (--advertise)
port=$(workload_field h1 web 2.0 port)
[ "$(workload_field h1 web 2.0 address)" = "http://127.0.0.2:$port" ] || fail "address: $(workload_field h1 web 2.0 address)"
"$FERRY" status | grep '^h1 ' | grep -q "http://127.0.0.2:$port" || fail "status has no address: $("$FERRY" status)"
pass "status shows http://127.0.0.2:$port (agent --advertise)"

# --- rollback: back to the version that ran before, signed, and it runs
out=$("$FERRY" rollback web --to env=test) || fail "rollback failed"
grep -q '^rolled back web on env=test from 2.0 to 1.0' <<<"$out" || fail "rollback said: $out"
"$FERRY" status --wait web@1.0 --to env=test --timeout 30 >/dev/null || fail "web@1.0 did not come back"
wait_until 20 answer "$(workload_field h1 web 1.0 port)" || fail "rolled-back web does not answer"
[ "$(answer "$(workload_field h1 web 1.0 port)")" = "web 1.0" ] || fail "rolled back to the wrong version"
wait_until 20 bash -c "! \"$FERRY\" status --json | grep -q '\"version\": \"2.0\"'" || fail "web@2.0 still in status"
expect_fail "rollback nothing: it was never deployed to env=test" "$FERRY" rollback nothing --to env=test
expect_fail "no signing key" env -u FERRY_KEY "$FERRY" rollback web --to env=test
pass "rollback web --to env=test chose 1.0, signed it, and the agent runs it"

# --- history and deployments show who did what
ops_key_id=$("$FERRY" deployments --json | python3 -c "
import json, sys
d = [e for e in json.load(sys.stdin)['deployments'] if e['selector'] == 'env=test']
assert len(d) == 1 and d[0]['name'] == 'web' and d[0]['version'] == '1.0', d
assert set(d[0]) == {'name', 'version', 'selector', 'key_id', 'time'}, d
print(d[0]['key_id'])")
[ "$ops_key_id" = "$ops_id" ] || fail "deployments key id '$ops_key_id' is not ops's ($ops_id)"
"$FERRY" undeploy web --to env=nowhere >/dev/null
"$FERRY" history web --json | python3 -c "
import json, sys, re
doc = json.load(sys.stdin)
assert list(doc) == ['history'], doc
h = doc['history']
got = [(e['action'], e['version'], e['selector']) for e in h]
want = [('deploy', '1.0', 'role=web'), ('deploy', '1.0', 'env=nowhere'), ('deploy', '2.0', 'env=test'),
        ('rollback', '1.0', 'env=test'), ('undeploy', '', 'env=nowhere')]
assert got == want, got
for e in h:
    assert set(e) == {'action', 'name', 'version', 'selector', 'key_id', 'time'}, e
    assert e['key_id'] == sys.argv[1] and e['name'] == 'web', e
    assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ', e['time']), e
" "$ops_key_id" || fail "history --json: $("$FERRY" history web --json)"
"$FERRY" history web | grep -q "rollback  web  *1.0  *env=test  *$ops_key_id" || fail "history text: $("$FERRY" history web)"
"$FERRY" deployments | grep -q "^web  *1.0  *env=test  *$ops_key_id" || fail "deployments text: $("$FERRY" deployments)"
"$FERRY" deployments --json | python3 -c "
import json, sys
doc = json.load(sys.stdin)
assert list(doc) == ['deployments'], doc
for e in doc['deployments']:
    assert set(e) == {'name', 'version', 'selector', 'key_id', 'time'}, e
assert not [e for e in doc['deployments'] if e['selector'] == 'env=nowhere']" \
  || fail "an undeployed selector is still listed as deployed"
pass "history (oldest first, deploy/rollback/undeploy) and deployments name key $ops_key_id"

# --- a version superseded by a healthy re-deploy does not linger as rolled_back
make_web_app "$T/web3" web 3.0 /healthz-that-does-not-exist
"$FERRY" publish "$T/web3" >/dev/null
# deploy --wait and status --wait exit 1 once the host reports rolled_back
rc=0; out=$("$FERRY" deploy web@3.0 --to env=test --wait --timeout 60 2>&1 >/dev/null) || rc=$?
[ $rc -eq 1 ] || fail "deploy --wait of a version that is rolled back exited $rc: $out"
grep -q '^ferry: host h1: web@3.0 rolled_back: ' <<<"$out" || fail "deploy --wait web@3.0 said: $out"
workload_state_is h1 web 3.0 rolled_back || fail "web@3.0 was not rolled back"
rc=0; out=$("$FERRY" status --wait web@3.0 --to env=test --timeout 60 2>&1 >/dev/null) || rc=$?
[ $rc -eq 1 ] && grep -q '^ferry: host h1: web@3.0 rolled_back: ' <<<"$out" \
  || fail "status --wait on a rolled-back version: exit $rc: $out"
"$FERRY" deploy web@1.0 --to env=test --wait --timeout 30 >/dev/null || fail "re-deploy of web@1.0"
wait_until 10 bash -c "! \"$FERRY\" status --json | grep -q '\"version\": \"3.0\"'" \
  || fail "web@3.0 lingers after a healthy re-deploy: $("$FERRY" status)"
pass "a rolled-back version goes from status once a healthy version is re-deployed"

# --- rollback skips a version that never ran there: 3.0 was rolled back
# (1.0 kept running, then was re-deployed), so the version that ran before
# 1.0 is 2.0, not 3.0
out=$("$FERRY" rollback web --to env=test) || fail "rollback after a failed rollout failed"
grep -q '^rolled back web on env=test from 1.0 to 2.0' <<<"$out" || fail "rollback chose a version that never ran: $out"
"$FERRY" status --wait web@2.0 --to env=test --timeout 30 >/dev/null || fail "web@2.0 did not come back"
pass "rollback passes over a version the hosts reported rolled_back and never running"

# --- the plugin warning: published anyway, deploy warns
mkdir -p "$T/odd"
printf 'name: odd\nversion: "1"\nkind: app\nruntime: oci\noci:\n  image: img\n' > "$T/odd/ferry.yaml"
oci_busybox_layout "$T/odd/img"
printf '#!/bin/sh\n' > "$T/odd/x"; chmod +x "$T/odd/x"
"$FERRY" publish "$T/odd" >/dev/null 2>"$T/err" || fail "publish of a runtime no plugin serves: $(cat "$T/err")"
"$FERRY" deploy odd@1 --to env=test >/dev/null 2>"$T/err" || fail "deploy odd@1"
grep -q "^ferry: warning: no host matching env=test reports a plugin for runtime 'oci': the plugin may be missing on hosts" "$T/err" \
  || fail "no plugin warning: $(cat "$T/err")"
"$FERRY" undeploy odd --to env=test >/dev/null
"$FERRY" deploy web@1.0 --to env=test 2>"$T/err" >/dev/null
! grep -q plugin "$T/err" || fail "a plugin warning for exec: $(cat "$T/err")"
pass "a runtime no host's plugin serves is published, and deploy warns about it"

# --- hosts rm: an online host is refused, an offline one is forgotten
expect_fail "^ferry: hosts rm h1: the host is online" "$FERRY" hosts rm h1
online h1 yes || fail "h1 gone after a refused rm"
expect_fail "no operator key" env -u FERRY_KEY "$FERRY" hosts rm h2
expect_fail "not trusted" "$FERRY" hosts rm h2 --key "$T/nobody.key"
kill -9 "$h2_pid"
wait_until 10 online h2 no || fail "h2 did not go offline"
"$FERRY" hosts rm h2 | grep -q '^removed host h2$' || fail "hosts rm h2"
! "$FERRY" hosts | grep -q '^h2 ' || fail "h2 still listed: $("$FERRY" hosts)"
expect_fail "host 'h2' is not known" "$FERRY" hosts rm h2
grep -q 'host h2 removed by key' "$T/reg.log" || fail "registry did not log the removal"
pass "hosts rm: online host refused, offline host forgotten"

"$FERRY_POKE" "$REG_URL" ping >/dev/null || fail "registry stopped answering"
