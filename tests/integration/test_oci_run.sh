#!/usr/bin/env bash
# Running OCI images (runtime oci, plugins/oci) under runc, for real: a
# busybox image built offline answers on PORT through `busybox httpd`, its
# output is in `ferry logs`; killing the container's process restarts it;
# restarting the agent keeps the same container (same pids); undeploy
# leaves nothing in `runc list`; a memory limit kills an allocating
# container and the reason says so; hostile layers are refused or
# neutralised with nothing written outside the rootfs. runc keeps its state
# in this test's own folder (--oci-root), so no other container on the
# machine is ever touched, and every container left is deleted at the end.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ociimage.sh"

[ "$(id -u)" = 0 ] || fail "this test needs root (runc); it runs as $(id -u)"
command -v runc >/dev/null || fail "runc is not installed (scripts/install-deps.sh)"

RUNC_ROOT="$T/runc"
AGENT=oci-$$
runc_ids() { runc --root "$RUNC_ROOT" list -q 2>/dev/null; }
runc_cleanup() {
  local id
  for id in $(runc_ids); do runc --root "$RUNC_ROOT" delete --force "$id" >/dev/null 2>&1 || true; done
}
# Containers go first (their processes are not in lib.sh's sweep of this
# tree's working directories once runc has moved them), then lib.sh's.
trap 'rc=$?; set +e; runc_cleanup; (exit $rc); cleanup; exit $rc' EXIT

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent "$AGENT" "$T/h1" --label role=main --trust "$T/ops.pub" --oci-root "$RUNC_ROOT"

# --- images, offline: busybox + a page; busybox + an allocator
oci_busybox_layout "$T/bb" /bin/sh -c 'echo "container says hello on port $PORT"; exec httpd -f -vv -p "$PORT" -h /www' \
  || fail "could not build the busybox image"
# raw_layer_image SRC DST PY: the layout SRC plus one uncompressed layer
# whose members PY (python, with t = the open tarfile) writes.
raw_layer_image() {
  cp -a "$1" "$2"
  python3 - "$2" "$3" "$T" <<'PY'
import hashlib, io, json, os, sys, tarfile
d, body, T = sys.argv[1], sys.argv[2], sys.argv[3]
def blob(dg): return os.path.join(d, "blobs", "sha256", dg.split(":", 1)[1])
def put(data):
    h = "sha256:" + hashlib.sha256(data).hexdigest()
    open(blob(h), "wb").write(data)
    return h
def member(t, name, kind="file", data=b"", link="", mode=0o644):
    i = tarfile.TarInfo(name)
    i.mode = mode
    if kind == "file": i.size = len(data)
    elif kind == "dir": i.type = tarfile.DIRTYPE
    elif kind == "sym": i.type = tarfile.SYMTYPE; i.linkname = link
    elif kind == "hard": i.type = tarfile.LNKTYPE; i.linkname = link
    elif kind == "chr": i.type = tarfile.CHRTYPE; i.devmajor, i.devminor = 1, 1
    t.addfile(i, io.BytesIO(data) if kind == "file" else None)
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
    exec(body)
layer = buf.getvalue()
ld = put(layer)
idx = json.load(open(os.path.join(d, "index.json")))
m = json.load(open(blob(idx["manifests"][0]["digest"])))
cfg = json.load(open(blob(m["config"]["digest"])))
cfg["rootfs"]["diff_ids"].append(ld)
cd = put(json.dumps(cfg).encode())
m["config"] = {"mediaType": m["config"]["mediaType"], "digest": cd, "size": os.path.getsize(blob(cd))}
m["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": len(layer)})
md = put(json.dumps(m).encode())
idx["manifests"][0]["digest"] = md
idx["manifests"][0]["size"] = os.path.getsize(blob(md))
json.dump(idx, open(os.path.join(d, "index.json"), "w"))
PY
}
# The page is a second layer (written here: umoci 0.4.7's insert of a small
# folder leaves a truncated layer, which the unpacker rightly refuses).
raw_layer_image "$T/bb" "$T/web-img" 'member(t, "www", "dir", mode=0o755)
member(t, "www/index.html", data=b"hello from busybox httpd\n")'

oci_app() { # oci_app DIR NAME IMAGE EXTRA_YAML
  mkdir -p "$1"
  printf 'name: %s\nversion: "1"\nkind: app\nruntime: oci\noci:\n  image: %s\n%s\n' "$2" "$3" "$4" > "$1/ferry.yaml"
  "$FERRY" publish "$1" >/dev/null 2>"$T/publish.err" || fail "publish $2: $(cat "$T/publish.err")"
}
container_of() { # the id the plugin keeps for NAME (one container per run)
  runc_ids | grep "^ferry-$1-1-" || true
}
ctr_pid() { runc --root "$RUNC_ROOT" state "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])'; }

oci_app "$T/web" web "$T/web-img" 'health:
  http: {path: /index.html, status: 200}
  deadline: 20s
  interval: 200ms'
"$FERRY" deploy web@1 --to role=main >/dev/null
wait_until 60 workload_state_is "$AGENT" web 1 running \
  || fail "web is $(workload_field "$AGENT" web 1 state): $(workload_field "$AGENT" web 1 reason)"
port=$(workload_field "$AGENT" web 1 port)
[ "$(answer "$port")" = "hello from busybox httpd" ] || fail "busybox httpd on $port says: $(answer "$port")"
pass "a busybox image deployed with runtime oci answers through busybox httpd on PORT $port"

id1=$(container_of web)
[ -n "$id1" ] || fail "no container in runc list: $(runc_ids)"
[ "$(runc --root "$RUNC_ROOT" state "$id1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')" = running ] \
  || fail "container $id1 is not running"
has_hello() { "$FERRY" logs web --host "$AGENT" | grep -q "container says hello on port $port"; }
wait_until 10 has_hello || fail "ferry logs web: $("$FERRY" logs web --host "$AGENT" 2>&1)"
has_request() { "$FERRY" logs web --host "$AGENT" --stderr | grep -q "index.html"; }
wait_until 10 has_request || fail "httpd's request log is not in ferry logs --stderr: $("$FERRY" logs web --host "$AGENT" --stderr 2>&1)"
pass "the container's stdout and stderr are in ferry logs"

# The container is confined as the runtime spec says.
cpid=$(ctr_pid "$id1")
[ "$(readlink "/proc/$cpid/ns/pid")" != "$(readlink /proc/self/ns/pid)" ] || fail "the container shares our pid namespace"
[ "$(readlink "/proc/$cpid/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] || fail "the container shares our mount namespace"
[ "$(readlink "/proc/$cpid/ns/net")" = "$(readlink /proc/self/ns/net)" ] || fail "network: host is not the host's network"
grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$cpid/status" || fail "no_new_privs is not set"
capeff=$(awk '/^CapEff/ {print $2}' "/proc/$cpid/status")
python3 -c "import sys; sys.exit(0 if int('$capeff', 16) & (1 << 21) == 0 else 1)" || fail "the container has CAP_SYS_ADMIN ($capeff)"
pass "the container has its own pid and mount namespaces, no new privileges and no CAP_SYS_ADMIN"

# --- kill the container's process: the run is restarted with a new container
kill -9 "$cpid"
restarted() { [ "$(workload_field "$AGENT" web 1 restarts)" -ge 1 ] && workload_state_is "$AGENT" web 1 running; }
wait_until 30 restarted || fail "web after its container was killed: $(workload_field "$AGENT" web 1 state): $(workload_field "$AGENT" web 1 reason)"
wait_until 10 bash -c "[ \"\$(curl -fsS --max-time 2 http://127.0.0.1:$(workload_field "$AGENT" web 1 port)/)\" = 'hello from busybox httpd' ]" \
  || fail "web does not answer after the restart"
id2=$(container_of web)
[ -n "$id2" ] && [ "$id2" != "$id1" ] || fail "after the restart the container is '$id2' (was $id1)"
! runc_ids | grep -qx "$id1" || fail "the killed container $id1 is still in runc list"
pass "killing the container's process restarts the run in a new container ($id2); the old one is deleted"

# --- restart the agent: the same container keeps running
runc_pid=$(workload_field "$AGENT" web 1 pid)
cpid2=$(ctr_pid "$id2")
restarts=$(workload_field "$AGENT" web 1 restarts)
stop_and_wait "$AGENT_PID" 30 "the agent" || true
kill -0 "$cpid2" || fail "the container died with the agent"
start_agent "$AGENT" "$T/h1" --label role=main --trust "$T/ops.pub" --oci-root "$RUNC_ROOT"
wait_until 20 grep -q "container $id2 (pid $cpid2) adopted" "$T/agent-$AGENT.log" \
  || fail "the agent did not adopt $id2: $(tail -5 "$T/agent-$AGENT.log")"
wait_until 20 workload_state_is "$AGENT" web 1 running || fail "web is $(workload_field "$AGENT" web 1 state) after the agent restart"
[ "$(workload_field "$AGENT" web 1 pid)" = "$runc_pid" ] || fail "pid $(workload_field "$AGENT" web 1 pid), was $runc_pid"
[ "$(ctr_pid "$id2")" = "$cpid2" ] || fail "the container's pid is $(ctr_pid "$id2"), was $cpid2"
[ "$(workload_field "$AGENT" web 1 restarts)" = "$restarts" ] || fail "the agent restart restarted web"
[ "$(answer "$(workload_field "$AGENT" web 1 port)")" = "hello from busybox httpd" ] || fail "web stopped answering"
pass "after an agent restart the same container runs on (pid $cpid2, runc pid $runc_pid), adopted through runc state"

# --- undeploy: runc list no longer shows it
"$FERRY" undeploy web --to role=main >/dev/null
gone() { ! workload_field "$AGENT" web 1 state >/dev/null 2>&1 && [ -z "$(container_of web)" ]; }
wait_until 30 gone || fail "after undeploy: state $(workload_field "$AGENT" web 1 state 2>&1), runc list: $(runc_ids)"
proc_gone() { ! kill -0 "$1" 2>/dev/null || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
wait_until 10 proc_gone "$cpid2" || fail "the container's process $cpid2 outlived the undeploy"
pass "undeploy stops the container and runc list no longer shows it"

# --- a memory limit kills a container that allocates past it
oci_busybox_layout "$T/hog-img" /bin/sh -c 'echo allocating; exec dd if=/dev/zero of=/dev/null bs=96M count=1' \
  || fail "could not build the hog image"
oci_app "$T/hog" hog "$T/hog-img" 'resources: {memory: 48Mi}
health: {settle: 20s}'
"$FERRY" deploy hog@1 --to role=main >/dev/null
hog_oom() { reason=$(workload_field "$AGENT" hog 1 reason) && echo "$reason" | grep -q 'killed: out of memory (limit 48Mi)'; }
reason=
wait_until 60 hog_oom || fail "hog's reason: $reason; logs: $("$FERRY" logs hog --host "$AGENT" 2>&1 | tail -3)"
! "$FERRY" logs hog --host "$AGENT" --stderr | grep -q "records in" || fail "the hog survived its allocation"
pass "a container over resources.memory is killed and the reason says so: $reason"
"$FERRY" undeploy hog --to role=main >/dev/null
wait_until 30 bash -c "[ -z \"\$(runc --root '$RUNC_ROOT' list -q | grep '^ferry-hog-')\" ]" || fail "hog's container is left: $(runc_ids)"

# --- hostile layers: refused, or neutralised inside the rootfs
mkdir -p "$T/canary"
echo "host secret" > "$T/canary/secret"
canary_intact() {
  [ "$(ls -A "$T/canary")" = secret ] && [ "$(cat "$T/canary/secret")" = "host secret" ]
}
oci_busybox_layout "$T/sleeper" /bin/sleep 300 || fail "could not build the sleeper image"

# Refused: a '..' entry; a hard link to a host file. The run does not
# start, the reason names the layer and the entry, nothing is outside.
raw_layer_image "$T/sleeper" "$T/dotdot-img" 'member(t, "../../../canary/escaped", data=b"pwned")'
raw_layer_image "$T/sleeper" "$T/hard-img" 'member(t, "stolen", "hard", link=T + "/canary/secret")'
raw_layer_image "$T/sleeper" "$T/abs-img" 'member(t, "esc", "sym", link=T + "/canary")
member(t, "esc/evil", data=b"pwned")'
for n in dotdot hard abs; do
  oci_app "$T/$n" $n "$T/$n-img" 'health: {settle: 1s}'
  "$FERRY" deploy $n@1 --to role=main >/dev/null
done
refused_with() { workload_field "$AGENT" "$1" 1 reason 2>/dev/null | grep -q -- "$2"; }
wait_until 30 refused_with dotdot "layer 2 (sha256:[0-9a-f]*): entry '../../../canary/escaped': '.' or '..' component" \
  || fail "dotdot: $(workload_field "$AGENT" dotdot 1 state): $(workload_field "$AGENT" dotdot 1 reason)"
wait_until 30 refused_with hard "entry 'stolen': hard link to a file not in the image" \
  || fail "hard: $(workload_field "$AGENT" hard 1 state): $(workload_field "$AGENT" hard 1 reason)"
wait_until 30 refused_with abs "entry 'esc/evil': its folder is not in the rootfs" \
  || fail "abs: $(workload_field "$AGENT" abs 1 state): $(workload_field "$AGENT" abs 1 reason)"
[ -z "$(container_of dotdot)$(container_of hard)$(container_of abs)" ] || fail "a refused image got a container: $(runc_ids)"
for n in dotdot hard abs; do
  # Each retry unpacks again: look once the crash loop has given up.
  wait_until 60 workload_state_is "$AGENT" $n 1 failed || fail "$n is $(workload_field "$AGENT" $n 1 state)"
  [ ! -e "$T/h1/workloads/$n/1/.ferry/oci/rootfs" ] && [ ! -e "$T/h1/workloads/$n/1/.ferry/oci/rootfs.partial" ] \
    || fail "$n left a partial rootfs"
done
canary_intact || fail "the canary changed: $(ls -la "$T/canary")"
pass "a '..' entry, a hard link to a host file and a file through an absolute symlink to a host folder are refused, the layer and the entry named; no rootfs is left"

# Neutralised: an absolute symlink (to /bin: the image's) and a file
# through it, a symlink
# climbing out and a file and a whiteout through it, a device node.
raw_layer_image "$T/sleeper" "$T/neutral-img" '
member(t, "esc", "sym", link="/bin")
member(t, "esc/planted", data=b"inside")
member(t, "up", "sym", link="../../../../../../../../..")
member(t, "up" + T + "/canary/evil2", data=b"pwned")
member(t, "up" + T + "/canary/.wh.secret")
member(t, "dev/mem", "chr")
member(t, "bin/suid", data=b"#!/bin/sh\n", mode=0o4755)'
# Its health command runs inside the container (runc exec): the file it
# looks for exists only in the rootfs.
oci_app "$T/neutral" neutral "$T/neutral-img" 'health:
  command: [/bin/sh, -c, "test -e /bin/planted && test \"$FERRY_WORKLOAD\" = neutral"]
  interval: 300ms
  deadline: 20s'
"$FERRY" deploy neutral@1 --to role=main >/dev/null
wait_until 60 workload_state_is "$AGENT" neutral 1 running \
  || fail "neutral is $(workload_field "$AGENT" neutral 1 state): $(workload_field "$AGENT" neutral 1 reason)"
canary_intact || fail "the canary changed: $(ls -la "$T/canary")"
R="$T/h1/workloads/neutral/1/.ferry/oci/rootfs"
[ "$(cat "$R/bin/planted")" = inside ] || fail "the file through the absolute symlink is not inside the rootfs"
[ "$(cat "$R$T/canary/evil2")" = pwned ] || fail "the file through the climbing symlink is not inside the rootfs"
[ ! -e "$R/dev/mem" ] || fail "the device node was created"
[ "$(stat -c %a "$R/bin/suid")" = 755 ] || fail "the setuid bit was kept: $(stat -c %a "$R/bin/suid")"
grep -q "1 device node skipped, 1 setuid/setgid bit dropped" "$T/agent-$AGENT.log" || fail "the unpack summary: $(grep unpacked "$T/agent-$AGENT.log")"
pass "symlinks out of the rootfs are followed inside it, a whiteout through one removes nothing outside, device nodes are skipped, setuid bits dropped; the health command ran inside the container"

# --- bad configuration: one line at start, or the reason of the run
expect_fail "ferry-agent: --oci-root 'relative/dir': must be an absolute path" \
  "$FERRY_AGENT_BIN" --registry "$REG_URL" --state "$T/h3" --oci-root relative/dir
start_agent norunc "$T/h2" --label role=norunc --trust "$T/ops.pub" --oci-root "$T/runc2" \
  --oci-runtime "$T/no-such-runc"
grep -q "oci: runtime '$T/no-such-runc' not found (--oci-runtime)" "$T/agent-norunc.log" \
  || fail "no warning for a missing runtime: $(cat "$T/agent-norunc.log")"
"$FERRY" deploy neutral@1 --to role=norunc >/dev/null
no_runtime() { workload_field norunc neutral 1 reason 2>/dev/null | grep -q "could not start: the OCI runtime $T/no-such-runc: No such file or directory (ferry-agent --oci-runtime)"; }
wait_until 30 no_runtime || fail "norunc: $(workload_field norunc neutral 1 reason)"
[ ! -e "$T/h2/workloads/neutral/1/.ferry/oci/rootfs" ] || fail "a rootfs was unpacked for a host without a runtime"
pass "a relative --oci-root stops the agent with one line; a missing runtime is the run's reason"

canary_intact || fail "the canary changed"
runc_cleanup
[ -z "$(runc_ids)" ] || fail "containers left: $(runc_ids)"
