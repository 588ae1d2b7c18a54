#!/usr/bin/env bash
# Jupyter's own machinery starts a kernel on a ferry host: make install puts
# the ferry kernel provisioner (entry point ferry-provisioner in
# jupyter_client.kernel_provisioners) where /usr/bin/python3 finds it,
# `ferry kernelspec install` writes a kernel spec naming it and the target,
# and a jupyter_client.KernelManager using that spec starts the remote
# kernel through a real registry and agent, executes code in it,
# interrupts and restarts it, and its shutdown stops it on the host.
source "$(dirname "$0")/lib.sh"

PY=${FERRY_PYTHON:-/usr/bin/python3}
"$PY" -c 'import jupyter_client, ipykernel; assert int(jupyter_client.__version__.split(".")[0]) >= 7' 2>/dev/null \
  || fail "$PY has no jupyter_client >= 7 or no ipykernel (scripts/install-deps installs them)"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent h1 "$T/h1" --label env=test --trust "$T/ops.pub" --metrics-interval 1s

mkdir -p "$T/nb"
cat > "$T/nb/ferry.yaml" <<'YAML'
name: lab
version: "1.0"
kind: notebook
runtime: notebook
notebook:
  kernel: python3
  env: {WHERE: "on the ferry host"}
YAML
"$FERRY" publish "$T/nb" >/dev/null
"$FERRY" deploy lab@1.0 --to env=test >/dev/null
"$FERRY" status --wait lab@1.0 --timeout 60 >/dev/null || fail "lab@1.0 is not running"

# --- make install: the package, its provisioner and the entry point
site=$(sed -n 's/^FERRY_PYTHON_SITEDIR:[A-Z]*=//p' "$FERRY_BIN/CMakeCache.txt")
case "$site" in ""|/*) fail "FERRY_PYTHON_SITEDIR '$site' cannot be installed under a test prefix" ;; esac
cmake --install "$FERRY_BIN" --prefix "$T/inst" >/dev/null || fail "cmake --install"
[ -f "$T/inst/$site/ferry/provisioner.py" ] || fail "no ferry/provisioner.py under $T/inst/$site"
grep -q '^ferry-provisioner = ferry.provisioner:FerryProvisioner$' "$T/inst/$site"/ferry-*.dist-info/entry_points.txt \
  || fail "no entry point in $(ls -d "$T/inst/$site"/*.dist-info 2>/dev/null)"
# Jupyter's paths inside this test's scratch; no PATH to a ferry CLI.
export JUPYTER_DATA_DIR="$T/jupyter" JUPYTER_PATH="$T/jupyter" JUPYTER_CONFIG_DIR="$T/jcfg" \
       JUPYTER_RUNTIME_DIR="$T/jrt"
jpy() { (cd "$T" && timeout 240 env -u PYTHONPATH PYTHONPATH="$T/inst/$site" PATH=/usr/bin:/bin "$PY" "$@"); }
jpy -c '
from jupyter_client.provisioning.factory import KernelProvisionerFactory as F
import importlib.metadata as md
assert "ferry-provisioner" in F.instance().provisioners, F.instance().provisioners
assert any(e.name == "ferry-provisioner" for e in md.entry_points(group="jupyter_client.kernel_provisioners"))
' || fail "jupyter_client does not find the ferry provisioner"
pass "make install puts ferry/provisioner.py and the jupyter_client.kernel_provisioners entry point in $PY's site directory"

# --- ferry kernelspec install
INST_FERRY="$T/inst/bin/ferry"
expect_fail "expected NAME@VERSION" "$INST_FERRY" kernelspec install lab --to env=test
expect_fail "install needs --to SELECTOR" "$INST_FERRY" kernelspec install lab@1.0
expect_fail "--name 'Bad Name': a kernel name is 1 to 64 of" "$INST_FERRY" kernelspec install lab@1.0 --to env=test --name 'Bad Name'
expect_fail "key $T/nokey.key" "$INST_FERRY" kernelspec install lab@1.0 --to env=test --key "$T/nokey.key"
[ ! -e "$T/jupyter/kernels" ] || fail "a refused kernelspec install left $(ls -R "$T/jupyter")"
out=$("$INST_FERRY" kernelspec install lab@1.0 --to env=test --display-name "Lab on the test hosts") || fail "kernelspec install"
[ "$out" = "installed kernel spec ferry-lab-1.0 in $T/jupyter/kernels/ferry-lab-1.0 (lab@1.0 on env=test)" ] || fail "kernelspec install said: $out"
"$PY" - "$T/jupyter/kernels/ferry-lab-1.0/kernel.json" "$INST_FERRY" "$REG_URL" "$T/ops.key" <<'PY' || fail "kernel.json: $(cat "$T/jupyter/kernels/ferry-lab-1.0/kernel.json")"
import json, sys
k = json.load(open(sys.argv[1]))
assert k["display_name"] == "Lab on the test hosts" and k["language"] == "python", k
assert k["interrupt_mode"] == "signal", k
p = k["metadata"]["kernel_provisioner"]
assert p["provisioner_name"] == "ferry-provisioner", p
c = p["config"]
assert c["ref"] == "lab@1.0" and c["to"] == "env=test", c
assert c["cli"] == sys.argv[2] and c["registry"] == sys.argv[3] and c["key"] == sys.argv[4], c
PY
jpy -c '
from jupyter_client.kernelspec import KernelSpecManager
s = KernelSpecManager().get_all_specs()
assert s["ferry-lab-1.0"]["spec"]["display_name"] == "Lab on the test hosts", s
' || fail "jupyter_client does not list the kernel spec"
pass "ferry kernelspec install writes kernel.json naming ferry-provisioner and the target; bad input is one line, nothing written"

# --- a KernelManager with that spec: the kernel runs on h1
cat > "$T/km.py" <<'PY'
import json, os, subprocess, sys, time
from jupyter_client import KernelManager
ferry, workdir = sys.argv[1], sys.argv[2]
def listed():
    out = subprocess.run([ferry, "kernel", "list", "--json"], check=True, capture_output=True, text=True).stdout
    return {k["id"]: k for k in json.loads(out)["kernels"]}
km = KernelManager(kernel_name="ferry-lab-1.0")
km.start_kernel()
kid = km.provisioner.kid
assert type(km.provisioner).__name__ == "FerryProvisioner", km.provisioner
k = listed()
assert kid in k and k[kid]["host"] == "h1" and k[kid]["alive"], k
assert km.is_alive()
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=60)
def run(code, timeout=30):
    out = []
    r = kc.execute_interactive(code, timeout=timeout, output_hook=out.append)
    res = [m["content"]["data"]["text/plain"] for m in out if m["msg_type"] == "execute_result"]
    return res[0] if res else r["content"].get("ename", r["content"]["status"])
assert run("1+1") == "2"
assert run("import os; os.getcwd()") == repr(workdir), run("import os; os.getcwd()")
assert run("os.environ['WHERE']") == repr("on the ferry host")
print("executed", flush=True)
# interrupt: the kernel spec's signal mode, through ferry kernel interrupt
# stop_on_error=False: the interrupted cell must not make the kernel abort
# the requests that follow it.
mid = kc.execute("while True: pass", stop_on_error=False)
while True:
    m = kc.get_iopub_msg(timeout=30)
    if m["parent_header"].get("msg_id") == mid and m["msg_type"] == "status" and m["content"]["execution_state"] == "busy":
        break
km.interrupt_kernel()
while True:
    r = kc.get_shell_msg(timeout=30)
    if r["parent_header"].get("msg_id") == mid:
        break
assert r["content"]["status"] == "error" and r["content"]["ename"] == "KeyboardInterrupt", r["content"]
print("interrupted", flush=True)
# restart: the same kernel id and connection, a fresh interpreter
v = run("x = 7; x")
assert v == "7", v
pid = run("os.getpid()")
km.restart_kernel()
assert km.provisioner.kid == kid
kc.stop_channels()
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=60)
assert run("x") == "NameError"
assert run("import os; os.getpid()") != pid
assert kid in listed()
print("restarted", flush=True)
kc.stop_channels()
km.shutdown_kernel()
assert kid not in listed(), listed()
assert not km.is_alive()
print("stopped " + kid, flush=True)
PY
kernel_pids() {
  local p
  for p in $(pgrep -f "ipykernel_launcher -f /tmp/ferry-kernel-" || true); do
    case "$(readlink "/proc/$p/cwd" 2>/dev/null)" in "$T"/*) echo "$p" ;; esac
  done
}
out=$(jpy "$T/km.py" "$INST_FERRY" "$T/h1/workloads/lab/1.0" 2>"$T/km.err") \
  || fail "the KernelManager: $out $(tail -5 "$T/km.err")"
grep -q '^executed$' <<<"$out" || fail "km: $out"
pass "a jupyter_client.KernelManager with the ferry kernel spec starts the kernel on h1 and executes code there"
grep -q '^interrupted$' <<<"$out" || fail "km: $out"
pass "KernelManager.interrupt_kernel breaks a running cell through ferry kernel interrupt"
grep -q '^restarted$' <<<"$out" || fail "km: $out"
pass "KernelManager.restart_kernel: the same ferry kernel, a fresh interpreter"
kid=$(sed -n 's/^stopped //p' <<<"$out")
[[ "$kid" =~ ^[0-9a-f]{16}$ ]] || fail "km: $out"
grep -q "kernel $kid stopped" "$T/agent-h1.log" || fail "the agent did not stop $kid"
none() { [ -z "$(kernel_pids)" ]; }
wait_until 10 none || fail "a kernel process outlived the shutdown: $(kernel_pids)"
pass "KernelManager.shutdown_kernel stops the kernel on the host (ferry kernel stop)"
