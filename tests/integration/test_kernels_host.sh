#!/usr/bin/env bash
# Kernels as part of the host's picture: they appear in ferry status (the
# workload's kind notebook, each kernel's id, host, state and owner); an
# operator key (the agent's --operator, no policy here) may stop a kernel
# another key started while any other key still may not; kernels survive an
# agent restart (adopted: the same process behind the same conn.json, and
# one that died while the agent was away comes back); notebook.env reaches
# the kernels and notebook runs, and is checked at publish.
source "$(dirname "$0")/lib.sh"

PY=${FERRY_PYTHON:-/usr/bin/python3}
"$PY" -c 'import jupyter_client, ipykernel, nbclient' 2>/dev/null \
  || fail "$PY has no jupyter_client, ipykernel or nbclient (scripts/install-deps installs them)"

make_key ops
make_key ds
make_key other
start_registry reg "$T/reg" --trust "$T/ops.pub" --trust "$T/ds.pub" --trust "$T/other.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
AGENT_ARGS=(--label env=test --trust "$T/ops.pub" --trust "$T/ds.pub" --trust "$T/other.pub"
            --operator "$T/ops.pub" --metrics-interval 1s)
start_agent h1 "$T/h1" "${AGENT_ARGS[@]}"

# --- notebook.env: checked at publish like run.env
mkdir -p "$T/bad"
printf 'name: bad\nversion: "1"\nkind: notebook\nruntime: notebook\nnotebook:\n  env: {HOME: /root}\n' > "$T/bad/ferry.yaml"
expect_fail "ferry.yaml:6: key 'notebook.env.HOME': PATH, HOME and JUPYTER_RUNTIME_DIR are set by the notebook plugin" "$FERRY" publish "$T/bad"
printf 'name: bad\nversion: "1"\nkind: notebook\nruntime: notebook\nnotebook:\n  env: {1X: a}\n' > "$T/bad/ferry.yaml"
expect_fail "ferry.yaml:6: key 'notebook.env.1X': variable names must match" "$FERRY" publish "$T/bad"
printf 'name: bad\nversion: "1"\nkind: notebook\nruntime: notebook\nnotebook:\n  env: [a, b]\n' > "$T/bad/ferry.yaml"
expect_fail "ferry.yaml:6: key 'notebook.env'" "$FERRY" publish "$T/bad"
"$FERRY" versions bad 2>/dev/null | grep -q . && fail "a refused artifact was stored"
pass "notebook.env: a name the plugin sets, a bad name, a non-mapping: one line each at publish"

mkdir -p "$T/nb"
cat > "$T/nb/ferry.yaml" <<'YAML'
name: lab
version: "1.0"
kind: notebook
runtime: notebook
run:
  command: ["python3"]
  env: {FROM_RUN: "run value", BOTH: "from run"}
notebook:
  kernel: python3
  env: {GREETING: "hello from notebook.env", BOTH: "from notebook", NUMBER: 42}
YAML
"$FERRY" publish "$T/nb" >/dev/null
"$FERRY" deploy lab@1.0 --to env=test >/dev/null
"$FERRY" status --wait lab@1.0 --timeout 60 >/dev/null || fail "lab@1.0 is not running: $(tail -5 "$T/agent-h1.log")"

cat > "$T/value.py" <<'PY'
import sys, time
from jupyter_client import BlockingKernelClient
# A client's heartbeat may call a kernel dead while it (re)starts: a fresh
# client, again, within a deadline.
end = time.monotonic() + 60
while True:
    kc = BlockingKernelClient()
    kc.load_connection_file(sys.argv[1])
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=10)
        break
    except Exception:
        kc.stop_channels()
        if time.monotonic() > end:
            raise
        time.sleep(0.2)
out = []
r = kc.execute_interactive(sys.argv[2], timeout=30, output_hook=out.append)
res = [m["content"]["data"]["text/plain"] for m in out if m["msg_type"] == "execute_result"]
print(res[0] if res else r["content"].get("ename", "none"))
kc.stop_channels()
PY
value() { timeout 90 "$PY" "$T/value.py" "$@"; }

# --- a kernel started by the data scientist's key
kid=$("$FERRY" kernel start lab@1.0 --to env=test --key "$T/ds.key" -o "$T/conn.json") || fail "kernel start"
env_seen=$(value "$T/conn.json" 'import os; (os.environ["GREETING"], os.environ["BOTH"], os.environ["FROM_RUN"], os.environ["NUMBER"], os.environ["HOME"].startswith("/tmp/ferry-kernel-"))')
[ "$env_seen" = "('hello from notebook.env', 'from notebook', 'run value', '42', True)" ] \
  || fail "the kernel's environment: $env_seen"
pass "notebook.env and run.env reach the kernel (notebook.env wins a name in both); HOME stays the kernel's own"

# --- ferry status shows the kernel under its notebook workload
dskey=$(grep -o "kernel $kid started (pid [0-9]*) for key [0-9a-f]*" "$T/agent-h1.log" | awk '{print $NF}')
[ -n "$dskey" ] || fail "no start line for $kid"
status_has_kernel() {
  "$FERRY" status --json | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
w = [w for h in d["hosts"] if h["name"] == "h1" for w in h["workloads"] if w["name"] == "lab"][0]
assert w["kind"] == "notebook", w
assert w["state"] == "running" and "address" in w and "rss_bytes" in w, w
k = [k for k in w["kernels"] if k["id"] == sys.argv[1]]
assert k, w
k = k[0]
assert k["host"] == "h1" and k["name"] == "lab" and k["version"] == "1.0", k
assert k["state"] == sys.argv[3] and k["owner"] == sys.argv[2], k
assert k["started"] > 0 and k["last_activity"] >= k["started"] and k["restarts"] == int(sys.argv[4]), k
' "$kid" "$dskey" "$1" "$2" 2>/dev/null
}
wait_until 20 status_has_kernel idle 0 || fail "ferry status --json: $("$FERRY" status --json)"
"$FERRY" status | grep -Eq "^ +kernel $kid +idle +key $dskey +restarts 0" || fail "status table: $("$FERRY" status)"
"$FERRY" status | grep -Eq "^h1 +lab +1.0 +running" || fail "status table's workload line: $("$FERRY" status)"
pass "ferry status [--json] shows the kernel (id, host, state idle, owner) under the notebook workload (kind notebook)"

# busy while a cell runs
( value "$T/conn.json" 'import time; time.sleep(6); 1' >/dev/null ) &
busy_pid=$!
wait_until 20 status_has_kernel busy 0 || fail "the kernel never showed busy: $("$FERRY" status --json)"
wait "$busy_pid" || true
wait_until 20 status_has_kernel idle 0 || fail "the kernel is not idle again"
pass "a kernel running a cell shows busy in ferry status, idle after"

# --- operator: another key may not stop it, the operator may
expect_fail "kernel $kid: only the key that started it or an operator may stop it" \
  "$FERRY" kernel stop "$kid" --key "$T/other.key"
[ "$(value "$T/conn.json" '6*7')" = 42 ] || fail "the kernel did not survive the refused stop"
expect_fail "kernel $kid: only the key that started it or an operator may interrupt it" \
  "$FERRY" kernel interrupt "$kid" --key "$T/other.key"
"$FERRY" kernel stop "$kid" --key "$T/ops.key" >/dev/null || fail "the operator could not stop the kernel"
grep -q "kernel $kid (started by key $dskey): stop by operator key" "$T/agent-h1.log" || fail "no operator line in the agent's log"
gone() { ! "$FERRY" kernel list --json | grep -q "$1"; }
wait_until 10 gone "$kid" || fail "the kernel is still listed"
no_kernel_in_status() { ! "$FERRY" status --json | grep -q "$1"; }
wait_until 20 no_kernel_in_status "$kid" || fail "ferry status still shows $kid"
pass "a non-operator key may neither stop nor interrupt another key's kernel; the operator key (--operator) stops it"

# --- adopted after an agent restart: the same process, the same conn.json
kid=$("$FERRY" kernel start lab@1.0 --to env=test --key "$T/ds.key" -o "$T/conn.json") || fail "kernel start (2)"
kid2=$("$FERRY" kernel start lab@1.0 --to env=test --key "$T/ds.key" -o "$T/conn2.json") || fail "kernel start (3)"
pid=$(value "$T/conn.json" 'import os; kept = "state before the restart"; os.getpid()')
pid2=$(value "$T/conn2.json" 'import os; os.getpid()')
[[ "$pid" =~ ^[0-9]+$ && "$pid2" =~ ^[0-9]+$ ]] || fail "kernel pids: $pid $pid2"
stop_and_wait "$AGENT_PID" 30 "the agent" || fail "agent exit status $? on SIGTERM"
kill -0 "$pid" 2>/dev/null || fail "the kernel ended with the agent"
[ "$(value "$T/conn.json" '1+1')" = 2 ] || fail "the kernel does not answer while the agent is down"
# One of the two dies while no agent watches.
kill -9 "$pid2"
wait_until 10 bash -c "! kill -0 $pid2 2>/dev/null" || fail "kernel $pid2 did not die"
start_agent h1 "$T/h1" "${AGENT_ARGS[@]}"
wait_until 30 grep -q "kernel $kid adopted (pid $pid)" "$T/agent-h1.log" \
  || fail "kernel $kid was not adopted: $(grep kernel "$T/agent-h1.log" | tail -5)"
[ "$(value "$T/conn.json" 'kept')" = "'state before the restart'" ] || fail "the adopted kernel lost its state"
[ "$(value "$T/conn.json" 'import os; os.getpid()')" = "$pid" ] || fail "the adopted kernel is another process"
pass "after an agent restart the kernel is adopted: same pid, same conn.json, its variables kept"
wait_until 30 grep -q "kernel $kid2 ended while the agent was away; restarted with the same connection info" "$T/agent-h1.log" \
  || fail "kernel $kid2 was not restarted: $(grep kernel "$T/agent-h1.log" | tail -5)"
p2=$(value "$T/conn2.json" 'import os; os.getpid()')
[[ "$p2" =~ ^[0-9]+$ ]] && [ "$p2" != "$pid2" ] || fail "kernel $kid2 after the restart: $p2"
pass "a kernel that died while the agent was away comes back with the same conn.json"
wait_until 20 status_has_kernel idle 0 || fail "the adopted kernel is not in ferry status"
"$FERRY" kernel list --json | "$PY" -c 'import json,sys; d=json.load(sys.stdin); ids={k["id"]:k for k in d["kernels"]}; assert set(ids)=={sys.argv[1],sys.argv[2]} and all(k["alive"] for k in ids.values()) and ids[sys.argv[2]]["restarts"]==1, d' "$kid" "$kid2" \
  || fail "kernel list after the restart: $("$FERRY" kernel list --json)"
# The watcher looks after adopted kernels too: kill -9 brings it back.
kill -9 "$pid"
wait_until 20 grep -q "kernel $kid ended (status unknown); restarted with the same connection info" "$T/agent-h1.log" \
  || fail "the adopted kernel was not restarted after kill -9: $(grep kernel "$T/agent-h1.log" | tail -3)"
[ "$(value "$T/conn.json" '3*3')" = 9 ] || fail "the restarted kernel does not answer"
pass "an adopted kernel killed with kill -9 is restarted with the same connection info"
# Stop, then an interrupt on what is gone: the adopted kernel's own key.
p1=$(value "$T/conn.json" 'import os; os.getpid()')
"$FERRY" kernel stop "$kid" --key "$T/ds.key" >/dev/null || fail "stop of the adopted kernel"
"$FERRY" kernel stop "$kid2" --key "$T/ds.key" >/dev/null || fail "stop of the second kernel"
wait_until 10 bash -c "! kill -0 $p1 2>/dev/null && ! kill -0 $p2 2>/dev/null" || fail "a stopped kernel lives on"
[ ! -s "$T/h1/workloads/lab/1.0/.ferry/kernels.json" ] || "$PY" -c 'import json,sys; assert json.load(open(sys.argv[1]))["kernels"]==[]' "$T/h1/workloads/lab/1.0/.ferry/kernels.json" \
  || fail "the index still names kernels: $(cat "$T/h1/workloads/lab/1.0/.ferry/kernels.json")"
pass "the kernels' own key stops them after the restart; the processes end"

# A stale index (the holder ended while the agent was down) is cleaned up.
kid=$("$FERRY" kernel start lab@1.0 --to env=test --key "$T/ds.key" -o "$T/conn.json") || fail "kernel start (4)"
pid=$(value "$T/conn.json" 'import os; os.getpid()')
holder=$(workload_field h1 lab 1.0 pid)
stop_and_wait "$AGENT_PID" 30 "the agent" || fail "agent exit status $? on SIGTERM"
kill -9 "$holder"
start_agent h1 "$T/h1" "${AGENT_ARGS[@]}"
wait_until 30 grep -q "kernel $kid of an earlier run ended" "$T/agent-h1.log" \
  || fail "the orphaned kernel was not ended: $(grep kernel "$T/agent-h1.log" | tail -3)"
wait_until 10 bash -c "! kill -0 $pid 2>/dev/null" || fail "the orphaned kernel lives on"
pass "kernels of a holder that ended while the agent was down are ended when the workload starts again"
"$FERRY" status --wait lab@1.0 --timeout 60 >/dev/null || fail "lab@1.0 did not come back"

# --- notebook.env reaches notebook runs
mkdir -p "$T/run"
"$PY" - "$T/run/nb.ipynb" <<'PY'
import sys, nbformat as f
nb = f.v4.new_notebook()
nb.cells = [f.v4.new_code_cell('import os\nprint(os.environ["GREETING"], os.environ["BOTH"])')]
f.write(nb, sys.argv[1])
PY
cat > "$T/run/ferry.yaml" <<'YAML'
name: envrun
version: "1"
kind: notebook
runtime: notebook
run:
  command: ["python3"]
  env: {BOTH: "from run"}
notebook:
  notebook: nb.ipynb
  env: {GREETING: "hi from notebook.env", BOTH: "from notebook"}
YAML
"$FERRY" publish "$T/run" >/dev/null
"$FERRY" deploy envrun@1 --to env=test >/dev/null
"$FERRY" status --wait envrun@1 --timeout 90 >/dev/null || fail "the run failed: $(workload_field h1 envrun 1 reason)"
out=$(ls "$T/h1/workloads/envrun/1/.ferry/runs/"*.ipynb | head -1)
"$PY" - "$out" <<'PY' || fail "the run's notebook does not show notebook.env"
import sys, nbformat
nb = nbformat.read(sys.argv[1], as_version=4)
text = "".join(o.get("text", "") for o in nb.cells[0].outputs)
assert text == "hi from notebook.env from notebook\n", repr(text)
PY
pass "notebook.env reaches a notebook run"
