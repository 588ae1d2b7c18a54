#!/usr/bin/env bash
# ferry metrics: the exec plugin's resident memory and CPU time for a
# running app reach the registry with the reports, per host, with --host
# and --json, and the errors are one line. (Needs the agent.c metrics hooks,
# see docs/plugins.md.)
source "$(dirname "$0")/lib.sh"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent h1 "$T/h1" --label env=test --trust "$T/ops.pub" --metrics-interval 1s

make_web_app "$T/web" web 1.0
"$FERRY" publish "$T/web" >/dev/null
"$FERRY" deploy web@1.0 --to env=test >/dev/null
"$FERRY" status --wait web@1.0 --timeout 30 >/dev/null || fail "web@1.0 is not running"
pid=$(workload_field h1 web 1.0 pid)

rss_reported() {
  "$FERRY" metrics web --json | python3 -c "
import json, sys
doc = json.load(sys.stdin)
for e in doc['metrics']:
    assert e['host'] == 'h1' and e['name'] == 'web' and e['version'] == '1.0', e
    for m in e['metrics']:
        if m['name'] == 'process_resident_memory_bytes':
            assert m['type'] == 'gauge' and m['labels'] == {}, m
            print(int(m['value'])); sys.exit(0)
sys.exit(1)"
}
wait_until 20 rss_reported || fail "no resident memory reported: $("$FERRY" metrics web 2>&1)"
rss=$(rss_reported)
# The app is one python3 process: what the agent reported is its VmRSS
# give or take what changed since.
vmrss=$(( $(awk '/^VmRSS:/{print $2}' "/proc/$pid/status") * 1024 ))
[ "$rss" -gt $((vmrss / 2)) ] && [ "$rss" -lt $((vmrss * 2)) ] || fail "reported $rss bytes, VmRSS is $vmrss"
pass "the exec plugin's resident memory for web reaches ferry metrics ($rss bytes, VmRSS $vmrss)"

out=$("$FERRY" metrics web)
grep -Eq '^HOST +VERSION +METRIC +TYPE +VALUE +LABELS$' <<<"$out" || fail "no header: $out"
grep -Eq '^h1 +1\.0 +process_resident_memory_bytes +gauge +[0-9]+ +-$' <<<"$out" || fail "text: $out"
grep -Eq '^h1 +1\.0 +process_cpu_seconds_total +counter +[0-9.e+-]+ +-$' <<<"$out" || fail "no CPU seconds: $out"
"$FERRY" metrics web --host h1 | grep -q process_resident_memory_bytes || fail "--host h1"
pass "text output, with the CPU seconds counter and --host"

# The values are fresh: the collection keeps running.
first=$("$FERRY" metrics web --json | python3 -c "import json,sys; print(json.load(sys.stdin)['metrics'][0]['collected_ms'])")
newer() { [ "$("$FERRY" metrics web --json | python3 -c "import json,sys; print(json.load(sys.stdin)['metrics'][0]['collected_ms'])")" -gt "$first" ]; }
wait_until 20 newer || fail "the metrics were not collected again"
pass "metrics are collected again at the interval"

expect_fail '^ferry: no metrics from host h2 for web$' "$FERRY" metrics web --host h2
expect_fail '^ferry: no host reported metrics for nothing-here$' "$FERRY" metrics nothing-here
expect_fail "^ferry metrics: 'Bad Name' is not a workload name$" "$FERRY" metrics 'Bad Name'
expect_fail "^ferry metrics: expected exactly one NAME" "$FERRY" metrics
expect_fail "^ferry metrics: unknown or incomplete option '--frobnicate'" "$FERRY" metrics web --frobnicate
rc=0; "$FERRY" metrics web --host h2 --json > "$T/empty.json" 2>/dev/null || rc=$?
[ $rc -eq 1 ] && python3 -c "import json,sys; assert json.load(open(sys.argv[1])) == {'metrics': []}" "$T/empty.json" \
  || fail "--json with nothing to show should print {\"metrics\": []} and exit 1"
expect_fail "^ferry-agent: --metrics-interval '100ms': must be from 1s to 1h$" \
  "$FERRY_AGENT_BIN" --registry "$REG_URL" --state "$T/x" --metrics-interval 100ms
pass "bad input: one line each, non-zero exit"

# A host (here: a forged report signed with h1's own key, the agent
# stopped) that sends too many samples, malformed ones and run entries with
# a bad or repeated name: the report is taken, the bad parts are refused
# and counted, and the host's set replaces what it sent before.
stop_and_wait "$AGENT_PID" 30 "agent h1" || fail "agent h1 did not stop cleanly"
"$FERRY_FORGE" "$REG_URL" report h1 "$T/h1/host.key" --metrics 70 --hostile-metrics \
  || fail "a report with hostile metrics was refused"
"$FERRY" metrics forged-0 --json | python3 -c "
import json, sys
doc = json.load(sys.stdin)['metrics']
assert len(doc) == 1, doc
e = doc[0]
assert e['host'] == 'h1' and e['version'] == '1.0', e
names = [m['name'] for m in e['metrics']]
assert names == ['m_%d' % i for i in range(64)], names
assert e['refused'] == 11, e['refused']" || fail "hostile metrics were not bounded: $("$FERRY" metrics forged-0 --json)"
grep -q 'metrics from h1: 2 runs skipped, 11 samples refused' "$T/reg.log" || fail "no log line for the refused metrics"
"$FERRY" metrics forged-0 | grep -q '(collected .*; 0 samples dropped by the agent, 11 refused by the registry)' \
  || fail "the text output does not say samples were refused"
expect_fail '^ferry: no host reported metrics for web$' "$FERRY" metrics web
pass "hostile metrics: 64 kept, 11 refused and counted, bad run entries skipped; the host's new set replaced its old"

kill -0 "$REG_PID" || fail "the registry stopped"
"$FERRY" metrics forged-0 >/dev/null || fail "the registry stopped answering"
pass "the registry keeps serving"
