#!/usr/bin/env bash
# An ABI-1 plugin (built against the old header) and an ABI-2 plugin side
# by side in one agent, each serving its runtime: both workloads run; the
# ABI-2 plugin gets the spec and its oci: section as JSON, exited() before
# a restart, adopt() with the plugin_state it left after an agent restart,
# and its typed, labelled metrics reach `ferry metrics`; the ABI-1 plugin's
# untyped values arrive as gauges. One claiming ABI 2 with a short table
# is refused with one line. (Needs the agent.c hooks listed in
# docs/plugins.md: workload_attach_json, localdb_run_state_put,
# pluginhost_exited, pluginhost_adopt, metrics_start/metrics_fill_body.)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ociimage.sh"

ABI="$FERRY_BIN/test-plugins-abi"
for so in abi1 abi2 abi2short; do [ -f "$ABI/$so.so" ] || fail "no test plugin $ABI/$so.so"; done
P="$T/plugins"
mkdir -p "$P"
chmod 755 "$T" "$P"
for so in abi1 abi2 abi2short; do install -m 755 "$ABI/$so.so" "$P/$so.so"; done
install -m 755 "$FERRY_PLUGINS/exec.so" "$P/exec.so"
JOURNAL="$T/abi2.journal"
: > "$JOURNAL"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
FERRY_TEST_ABI2_LOG="$JOURNAL" FERRY_PLUGINS="$P" \
  start_agent h1 "$T/h1" --label env=test --trust "$T/ops.pub" --metrics-interval 1s
LOG="$T/agent-h1.log"

grep -q "plugin abi1 loaded from $P/abi1.so (runtimes: abi1 notebook), abi 1" "$LOG" || fail "abi1.so did not load: $(grep plugin "$LOG")"
grep -q "plugin abi2 loaded from $P/abi2.so (runtimes: abi2 oci), abi 2" "$LOG" || fail "abi2.so did not load"
grep -q "plugin exec loaded from $P/exec.so" "$LOG" || fail "exec.so did not load"
[ "$(grep -c "abi2short.so" "$LOG")" -eq 1 ] || fail "not exactly one line about abi2short.so"
grep -q "plugin $P/abi2short.so refused: abi 2 but struct_size [0-9]* is smaller than ABI 2's table" "$LOG" \
  || fail "no refusal of abi2short.so: $(grep abi2short "$LOG")"
pass "ABI-1 and ABI-2 plugins load side by side; ABI 2 with a short table is refused with one line"

# old: runtime notebook, served by the ABI-1 plugin. new: runtime oci, with
# an oci: section only the ABI-2 plugin reads.
mkdir -p "$T/old" "$T/new"
cat > "$T/old/ferry.yaml" <<'YAML'
name: old
version: "1.0"
kind: app
runtime: notebook
run:
  command: ["./run.sh"]
YAML
cat > "$T/new/ferry.yaml" <<'YAML'
name: new
version: "1.0"
kind: app
runtime: oci
run:
  command: ["./run.sh"]
oci:
  image: img
  readonly_rootfs: true
YAML
oci_busybox_layout "$T/new/img"
for d in old new; do
  printf '#!/bin/sh\nexec sleep 600\n' > "$T/$d/run.sh"
  chmod 755 "$T/$d/run.sh"
  "$FERRY" publish "$T/$d" >/dev/null
  "$FERRY" deploy "$d@1.0" --to env=test >/dev/null
done
"$FERRY" status --wait old@1.0 --timeout 30 >/dev/null || fail "old@1.0 (ABI-1 plugin) is not running"
"$FERRY" status --wait new@1.0 --timeout 30 >/dev/null || fail "new@1.0 (ABI-2 plugin) is not running"
pass "an ABI-1 and an ABI-2 plugin each run a workload in one agent"

grep -q 'start new kind={"image":"img","readonly_rootfs":true,"layers":\[{"file":"oci/blobs/sha256/[0-9a-f]*","digest":"sha256:[0-9a-f]*",.*"config_file":"oci/blobs/sha256/[0-9a-f]*","config_digest":"sha256:[0-9a-f]*"} spec_has_name=1' "$JOURNAL" \
  || fail "the ABI-2 plugin did not get the oci: section as JSON: $(cat "$JOURNAL")"
pass "the ABI-2 plugin gets the spec and its oci: section as JSON"

# metrics: typed and labelled from ABI 2, gauges from ABI 1
metric_of() { # NAME METRIC FIELD -> the field of the first matching sample
  "$FERRY" metrics "$1" --json | python3 -c "
import json, sys
for e in json.load(sys.stdin)['metrics']:
    for m in e['metrics']:
        if m['name'] == sys.argv[1]:
            print(json.dumps(m[sys.argv[2]], sort_keys=True)); sys.exit(0)
sys.exit(1)" "$2" "$3"
}
wait_until 20 metric_of new abi2_collections_total value || fail "no ABI-2 metrics for new: $("$FERRY" metrics new 2>&1)"
[ "$(metric_of new abi2_collections_total type)" = '"counter"' ] || fail "abi2_collections_total is not a counter"
[ "$(metric_of new abi2_collections_total labels)" = '{"plugin": "abi2", "workload": "new"}' ] \
  || fail "labels: $(metric_of new abi2_collections_total labels)"
[ "$(metric_of new abi2_request_seconds buckets)" = '[{"count": 1, "le": 0.1}, {"count": 2, "le": 0.5}, {"count": 3, "le": 1.0}]' ] \
  || fail "histogram buckets: $(metric_of new abi2_request_seconds buckets)"
[ "$(metric_of new abi2_request_seconds count)" = 4 ] || fail "histogram count"
port_old=$(workload_field h1 old 1.0 port)
wait_until 20 metric_of old abi1_port value || fail "no ABI-1 metrics for old"
[ "$(metric_of old abi1_port type)" = '"gauge"' ] || fail "an ABI-1 value is not a gauge"
[ "$(metric_of old abi1_port value)" = "$port_old.0" ] || fail "abi1_port $(metric_of old abi1_port value), port $port_old"
"$FERRY" metrics new | grep -Eq '^h1 +1\.0 +abi2_collections_total +counter +[0-9]+ +plugin=abi2,workload=new$' \
  || fail "text output: $("$FERRY" metrics new)"
pass "ABI-2 metrics arrive typed and labelled (with a histogram); ABI-1 values as gauges"

# exited(): before the restart, with the plugin's state
pid=$(workload_field h1 new 1.0 pid)
kill -9 "$pid"
wait_until 20 grep -q '^exited 137 state=name=new$' "$JOURNAL" || fail "no exited() call: $(cat "$JOURNAL")"
restarted() { [ "$(workload_field h1 new 1.0 restarts)" -ge 1 ] && workload_state_is h1 new 1.0 running; }
wait_until 30 restarted || fail "new@1.0 was not restarted"
[ "$(grep -c '^start new ' "$JOURNAL")" -eq 2 ] || fail "expected two starts: $(cat "$JOURNAL")"
# the exited line comes before the second start
awk '/^exited/{e=NR} /^start new/{s=NR} END{exit !(e < s)}' "$JOURNAL" || fail "exited() came after the restart"
pass "exited() is called with the status before the restart"

# adopt(): an agent restart hands back the persisted plugin_state
pid=$(workload_field h1 new 1.0 pid)
old_pid=$(workload_field h1 old 1.0 pid)
stop_and_wait "$AGENT_PID" 30 "agent h1" || fail "the agent did not stop cleanly"
FERRY_TEST_ABI2_LOG="$JOURNAL" FERRY_PLUGINS="$P" \
  start_agent h1 "$T/h1" --label env=test --trust "$T/ops.pub" --metrics-interval 1s
wait_until 20 grep -q "^adopt pid=$pid state=name=new$" "$JOURNAL" || fail "no adopt() with the state: $(cat "$JOURNAL")"
wait_until 20 workload_state_is h1 new 1.0 running || fail "new@1.0 not running after the agent restart"
[ "$(workload_field h1 new 1.0 pid)" = "$pid" ] || fail "new@1.0 was restarted instead of adopted"
[ "$(workload_field h1 old 1.0 pid)" = "$old_pid" ] || fail "old@1.0 was restarted instead of adopted"
[ "$(grep -c '^start new ' "$JOURNAL")" -eq 2 ] || fail "adopting started it again"
pass "after an agent restart, adopt() gets the plugin_state it left; both runs are kept"

# action(): a verb for a running workload reaches its plugin, off the loop,
# and the plugin's JSON answer comes back through the registry.
pid=$(workload_field h1 new 1.0 pid)
out=$("$FERRY" action new echo '{"x": 1}') || fail "ferry action new echo failed: $out"
[ "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["verb"], d["pid"], d["request"]["x"])' "$out")" = "echo $pid 1" ] \
  || fail "the echo answer: $out"
pass "ferry action: the ABI-2 plugin answers a verb for its run with its JSON"
expect_fail "plugin abi2 does not know the action 'nosuch'" "$FERRY" action new nosuch
expect_fail "plugin abi1 of old answers no actions" "$FERRY" action old echo
expect_fail "the request is not a JSON object" "$FERRY" action new echo 'not json'
expect_fail "unknown workload ghost: no host reports it" "$FERRY" action ghost echo
expect_fail "host h9 is not known to the registry" "$FERRY" action new echo --host h9
# the agent keeps serving after the refusals
out=$("$FERRY" action new echo @<(printf '{"y": "z"}')) || fail "echo after refusals: $out"
grep -q '"y": *"z"' <<<"$out" || fail "the request from a file: $out"
pass "an unknown verb, an ABI-1 plugin, a bad request, an unknown workload or host: one line, exit 1"
