#!/usr/bin/env bash
# Jupyter kernels on a host: ferry kernel start through a real registry and
# agent starts ipykernel in a notebook workload's directory; a real
# jupyter_client.BlockingKernelClient loaded from the connection file the
# CLI opened executes 1+1 and gets 2. The connection info is sealed to the
# requester's key (another key cannot open it), and the HMAC key appears
# neither in the registry's database nor in its log.
source "$(dirname "$0")/lib.sh"

PY=${FERRY_PYTHON:-/usr/bin/python3}
"$PY" -c 'import jupyter_client, ipykernel' 2>/dev/null \
  || fail "$PY has no jupyter_client or ipykernel (scripts/install-deps installs them)"

make_key ops
make_key other
start_registry reg "$T/reg" --trust "$T/ops.pub" --trust "$T/other.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent h1 "$T/h1" --label env=test --trust "$T/ops.pub" --trust "$T/other.pub"

mkdir -p "$T/nb"
cat > "$T/nb/ferry.yaml" <<'YAML'
name: lab
version: "1.0"
kind: notebook
runtime: notebook
run:
  command: ["python3"]
notebook:
  kernel: python3
YAML
echo 'marker from the artifact' > "$T/nb/data.txt"
"$FERRY" publish "$T/nb" >/dev/null
"$FERRY" deploy lab@1.0 --to env=test >/dev/null
"$FERRY" status --wait lab@1.0 --timeout 60 >/dev/null || fail "lab@1.0 is not running: $(tail -5 "$T/agent-h1.log")"
pass "a notebook workload (runtime notebook) runs on h1"

# A kernel other than python3 is refused when the workload starts.
mkdir -p "$T/jl"
sed -e 's/^name: lab/name: jl/' -e 's/kernel: python3/kernel: julia/' "$T/nb/ferry.yaml" > "$T/jl/ferry.yaml"
"$FERRY" publish "$T/jl" >/dev/null
"$FERRY" deploy jl@1.0 --to env=test >/dev/null
wait_until 30 grep -q "notebook jl: kernel 'julia' is not available (only python3)" "$T/agent-h1.log" \
  || fail "no refusal of kernel julia: $(grep jl "$T/agent-h1.log" | tail -3)"
"$FERRY" undeploy jl --to env=test >/dev/null
pass "notebook.kernel other than python3: the start fails with the reason in the agent's log"

# Bad input: one line each, nothing started.
expect_fail "expected NAME@VERSION" "$FERRY" kernel start lab --to env=test
expect_fail "start needs --to SELECTOR" "$FERRY" kernel start lab@1.0
expect_fail "no online host matching env=prod runs lab@1.0" "$FERRY" kernel start lab@1.0 --to env=prod
expect_fail "no online host matching env=test runs lab@9.9" "$FERRY" kernel start lab@9.9 --to env=test
expect_fail "kernel 0123456789abcdef: no host runs such a kernel" "$FERRY" kernel stop 0123456789abcdef
pass "a bad reference, no selector, no matching host or version, an unknown kernel: one line, exit 1"

id=$("$FERRY" kernel start lab@1.0 --to env=test -o "$T/conn.json") || fail "kernel start failed"
[[ "$id" =~ ^[0-9a-f]{16}$ ]] || fail "kernel id: '$id'"
[ "$(stat -c %a "$T/conn.json")" = 600 ] || fail "conn.json mode $(stat -c %a "$T/conn.json")"
key=$("$PY" -c 'import json,sys; c=json.load(open(sys.argv[1])); assert c["signature_scheme"]=="hmac-sha256" and c["transport"]=="tcp" and c["ip"]=="127.0.0.1"; print(c["key"])' "$T/conn.json") \
  || fail "conn.json: $(cat "$T/conn.json")"
[[ "$key" =~ ^[0-9a-f]{64}$ ]] || fail "the HMAC key is not 32 random bytes in hex"
pass "kernel start prints the id and writes conn.json 0600 with an hmac-sha256 key"

# A client's heartbeat may call a kernel dead while it (re)starts: try
# again within a deadline.
cat > "$T/ready.py" <<'PY'
import sys, time
def ready(kc, deadline=60):
    """kc, or a fresh client on the same file (each script's first
    argument), once the kernel answers (a client's channels start only
    once, so a retry takes a new one)."""
    end = time.monotonic() + deadline
    while True:
        try:
            kc.wait_for_ready(timeout=10)
            return kc
        except Exception:  # dead heartbeat, or no answer yet
            if time.monotonic() > end:
                raise
            path = sys.argv[1]
            kc.stop_channels()
            time.sleep(0.2)
            kc = type(kc)()
            kc.load_connection_file(path)
            kc.start_channels()
PY
cat > "$T/exec.py" <<'PY'
import sys
from jupyter_client import BlockingKernelClient
exec(open(sys.argv[0].rsplit("/", 1)[0] + "/ready.py").read())
kc = BlockingKernelClient()
kc.load_connection_file(sys.argv[1])
kc.start_channels()
kc = ready(kc)
def run(code):
    reply = kc.execute_interactive(code, timeout=30, output_hook=lambda m: out.append(m))
    assert reply["content"]["status"] == "ok", reply["content"]
out = []
run("1+1")
res = [m["content"]["data"]["text/plain"] for m in out if m["msg_type"] == "execute_result"]
print(res[0] if res else "none")
out = []
run("print(open('data.txt').read().strip())")
print("".join(m["content"]["text"] for m in out if m["msg_type"] == "stream").strip())
kc.stop_channels()
PY
out=$(timeout 90 "$PY" "$T/exec.py" "$T/conn.json") || fail "the kernel client failed: $out"
[ "$(sed -n 1p <<<"$out")" = 2 ] || fail "1+1 gave: $out"
pass "a jupyter_client.BlockingKernelClient from conn.json executes 1+1 and gets 2"
[ "$(sed -n 2p <<<"$out")" = "marker from the artifact" ] || fail "the kernel's directory: $out"
pass "the kernel runs in the workload's directory"

# A client with a wrong HMAC key is not answered: the kernel checks signatures.
"$PY" -c 'import json,sys; c=json.load(open(sys.argv[1])); c["key"]="00"*32; json.dump(c,open(sys.argv[2],"w"))' "$T/conn.json" "$T/wrong.json"
cat > "$T/wrong.py" <<'PY'
import sys
from jupyter_client import BlockingKernelClient
exec(open(sys.argv[0].rsplit("/", 1)[0] + "/ready.py").read())
kc = BlockingKernelClient()
kc.load_connection_file(sys.argv[1])
kc.start_channels()
kc.execute("1+1")
try:
    kc.get_shell_msg(timeout=3)
    print("answered")
except Exception:
    print("silent")
kc.stop_channels()
PY
[ "$(timeout 30 "$PY" "$T/wrong.py" "$T/wrong.json" 2>/dev/null)" = silent ] || fail "the kernel answered a wrongly signed request"
pass "the kernel ignores requests signed with another HMAC key"

# The sealed answer, got through the raw action path, opens only with the
# key that asked.
"$FERRY" action lab kernel-start '{}' > "$T/raw.json" || fail "ferry action kernel-start failed"
id2=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$T/raw.json")
"$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["sealed"])' "$T/raw.json" > "$T/sealed.b64"
expect_fail "the connection info was not sealed to key" "$FERRY" kernel open "$T/sealed.b64" --key "$T/other.key" -o "$T/other-conn.json"
[ ! -e "$T/other-conn.json" ] || fail "a connection file was written for the other key"
"$FERRY" kernel open "$T/sealed.b64" -o "$T/conn2.json" || fail "the asking key cannot open its own sealed answer"
grep -q '"signature_scheme": "hmac-sha256"' "$T/conn2.json" || fail "conn2.json: $(cat "$T/conn2.json")"
key2=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["key"])' "$T/conn2.json")
[ "$key2" != "$key" ] || fail "two kernels share an HMAC key"
pass "the sealed connection info opens with the requester's key only; each kernel has its own HMAC key"

# interrupt breaks a busy loop; the kernel answers afterwards.
cat > "$T/interrupt.py" <<'PY'
import subprocess, sys
from jupyter_client import BlockingKernelClient
exec(open(sys.argv[0].rsplit("/", 1)[0] + "/ready.py").read())
kc = BlockingKernelClient()
kc.load_connection_file(sys.argv[1])
kc.start_channels()
kc = ready(kc)
mid = kc.execute("while True: pass", stop_on_error=False)
# busy once the kernel says so on iopub
while True:
    m = kc.get_iopub_msg(timeout=30)
    if m["parent_header"].get("msg_id") == mid and m["msg_type"] == "status" and m["content"]["execution_state"] == "busy":
        break
subprocess.run(sys.argv[2:], check=True, stdout=subprocess.DEVNULL)
while True:
    r = kc.get_shell_msg(timeout=30)
    if r["parent_header"].get("msg_id") == mid:
        break
print(r["content"]["status"], r["content"].get("ename"), flush=True)
mid = kc.execute("40+2")
while True:
    r = kc.get_shell_msg(timeout=30)
    if r["parent_header"].get("msg_id") == mid:
        break
print(r["content"]["status"])
kc.stop_channels()
PY
out=$(timeout 90 "$PY" "$T/interrupt.py" "$T/conn.json" "$FERRY" kernel interrupt "$id" 2>"$T/interrupt.err") || fail "interrupt: $out $(tail -3 "$T/interrupt.err")"
[ "$out" = "$(printf 'error KeyboardInterrupt\nok')" ] || fail "interrupt: $out $(tail -3 "$T/interrupt.err")"
pass "kernel interrupt breaks a running while True: pass; the kernel answers afterwards"
expect_fail "kernel $id: only the key that started it or an operator may interrupt it" "$FERRY" kernel interrupt "$id" --key "$T/other.key"

cat > "$T/value.py" <<'PY'
import sys
from jupyter_client import BlockingKernelClient
exec(open(sys.argv[0].rsplit("/", 1)[0] + "/ready.py").read())
kc = BlockingKernelClient()
kc.load_connection_file(sys.argv[1])
kc.start_channels()
kc = ready(kc)
out = []
r = kc.execute_interactive(sys.argv[2], timeout=30, output_hook=out.append)
res = [m["content"]["data"]["text/plain"] for m in out if m["msg_type"] == "execute_result"]
print(res[0] if res else r["content"].get("ename", "none"))
kc.stop_channels()
PY
# restart: a fresh interpreter behind the same connection file.
[ "$(timeout 90 "$PY" "$T/value.py" "$T/conn.json" 'x = 7; x')" = 7 ] || fail "x = 7"
"$FERRY" kernel restart "$id" >/dev/null || fail "kernel restart failed"
[ "$(timeout 90 "$PY" "$T/value.py" "$T/conn.json" 'x')" = NameError ] || fail "x survived the restart"
pass "kernel restart: the same conn.json reaches a fresh interpreter"

# A kernel killed with kill -9 comes back with the same connection info.
kp=$(timeout 90 "$PY" "$T/value.py" "$T/conn.json" 'import os; os.getpid()')
[[ "$kp" =~ ^[0-9]+$ ]] || fail "kernel pid: $kp"
kill -9 "$kp"
wait_until 20 grep -q "kernel $id ended (status 137); restarted with the same connection info" "$T/agent-h1.log" \
  || fail "no restart after kill -9: $(grep kernel "$T/agent-h1.log" | tail -3)"
kp2=$(timeout 90 "$PY" "$T/value.py" "$T/conn.json" 'import os; os.getpid()')
[[ "$kp2" =~ ^[0-9]+$ ]] && [ "$kp2" != "$kp" ] || fail "after kill -9: $kp2"
"$FERRY" kernel list --json | "$PY" -c 'import json,sys; d=json.load(sys.stdin); k=[k for k in d["kernels"] if k["id"]==sys.argv[1]][0]; assert k["restarts"]==2 and k["alive"], d' "$id" \
  || fail "restarts not counted: $("$FERRY" kernel list --json)"
pass "a kernel killed with kill -9 is restarted with the same connection info and reported"

# list, then stop: only the key that started a kernel may stop it.
list=$("$FERRY" kernel list --json) || fail "kernel list failed"
"$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); ids=sorted(k["id"] for k in d["kernels"]); assert ids==sorted(sys.argv[2:]), d; k=d["kernels"][0]; assert k["host"]=="h1" and k["name"]=="lab" and k["version"]=="1.0" and k["alive"] and k["started"]>0, d' "$list" "$id" "$id2" \
  || fail "kernel list: $list"
"$FERRY" kernel list | grep -q "^$id  *lab@1.0  *h1  *yes" || fail "kernel list table: $("$FERRY" kernel list)"
pass "kernel list [--json] shows both kernels with host, name, version"
# The kernels' processes: ipykernel with its working directory in this test's tree.
kernel_pids() {
  local p
  for p in $(pgrep -f "ipykernel_launcher -f /tmp/ferry-kernel-" || true); do
    case "$(readlink "/proc/$p/cwd" 2>/dev/null)" in "$T"/*) echo "$p" ;; esac
  done
}
[ "$(kernel_pids | wc -l)" -eq 2 ] || fail "expected 2 kernel processes: $(kernel_pids)"
expect_fail "kernel $id: only the key that started it or an operator may stop it" "$FERRY" kernel stop "$id" --key "$T/other.key"
"$FERRY" kernel stop "$id" >/dev/null || fail "kernel stop failed"
"$FERRY" kernel stop "$id2" >/dev/null || fail "kernel stop (second) failed"
[ "$("$FERRY" kernel list --json)" = '{"kernels": []}' ] || [ "$("$FERRY" kernel list --json)" = '{"kernels":[]}' ] \
  || fail "kernels left: $("$FERRY" kernel list --json)"
no_kernels() { [ -z "$(kernel_pids)" ]; }
wait_until 10 no_kernels || fail "a kernel process outlived kernel stop: $(kernel_pids)"
pass "another key may not stop a kernel; its own key stops it and the process ends"

# --idle: a kernel that runs no cell for that long is stopped.
expect_fail "--idle 'soon'" "$FERRY" kernel start lab@1.0 --to env=test --idle soon
id3=$("$FERRY" kernel start lab@1.0 --to env=test --idle 3s -o "$T/conn3.json") || fail "kernel start --idle 3s"
key3=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["key"])' "$T/conn3.json")
[ "$(timeout 90 "$PY" "$T/value.py" "$T/conn3.json" '1+1')" = 2 ] || fail "kernel $id3 does not answer"
gone() { ! "$FERRY" kernel list --json | grep -q "$id3"; }
wait_until 30 gone || fail "kernel $id3 was not culled: $("$FERRY" kernel list --json)"
grep -q "kernel $id3 culled after [0-9]* ms without execution" "$T/agent-h1.log" || fail "no cull line in the agent's log"
wait_until 10 no_kernels || fail "the culled kernel's process lives on: $(kernel_pids)"
pass "kernel start --idle 3s: the kernel is culled after 3 s without execution; a bad --idle is one line"

# The registry carried only ciphertext: neither HMAC key is in its
# database files or its log.
for k in "$key" "$key2" "$key3"; do
  ! grep -rqa "$k" "$T/reg" || fail "the HMAC key is in the registry's data directory"
  ! grep -qa "$k" "$T/reg.log" || fail "the HMAC key is in the registry's log"
  ! grep -qa "$k" "$T/agent-h1.log" || fail "the HMAC key is in the agent's log"
done
pass "the HMAC keys appear in neither the registry's database nor its log (nor the agent's log)"

# Undeploying the workload ends its kernels and removes their files.
id4=$("$FERRY" kernel start lab@1.0 --to env=test -o "$T/conn4.json") || fail "kernel start (4)"
kdir=$(tr '\0' ' ' < "/proc/$(kernel_pids | head -n 1)/cmdline" | grep -o '/tmp/ferry-kernel-[A-Za-z0-9]*')
[ -d "$kdir" ] || fail "kernel $id4 has no folder: '$kdir'"
"$FERRY" undeploy lab --to env=test >/dev/null || fail "undeploy lab"
wait_until 30 no_kernels || fail "kernel $id4 outlived its workload: $(kernel_pids)"
wait_until 10 test ! -e "$kdir" || fail "kernel $id4's folder $kdir is left"
pass "undeploying the workload ends its kernels and removes their connection files"
