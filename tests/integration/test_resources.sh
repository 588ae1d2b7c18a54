#!/usr/bin/env bash
# resources: and run.user: enforced for real, through the host's cgroups
# (v2, or v1's memory, pids and cpu controllers) and the ferry-spawn helper.
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || fail "this test needs root (cgroups and run.user); it runs as $(id -u)"

AGENT="res-$$"
# The run's cgroup folder in one hierarchy, as the agent computes it: below
# the agent's own cgroup (the agent is this script's child, so it is ours).
cg_dir() { # cg_dir CTRL NAME@VERSION
  local ctrl=$1 leaf=$2 own
  if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
    own=$(sed -n 's/^0:://p' /proc/self/cgroup)
    echo "/sys/fs/cgroup${own%/}/ferry/$AGENT/$leaf"
  else
    own=$(awk -F: -v c="$ctrl" '{ n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3 }' /proc/self/cgroup)
    echo "/sys/fs/cgroup/$ctrl${own%/}/ferry/$AGENT/$leaf"
  fi
}
cg_file() { echo "$(cg_dir "$1" "$2")/$3"; }
V2=0; [ -e /sys/fs/cgroup/cgroup.controllers ] && V2=1

# Whatever this test leaves in cgroups goes with it: processes are killed by
# lib.sh's cleanup first, then the folders (which may take a moment to empty).
cg_cleanup() {
  local ctrl d
  for ctrl in memory pids cpu; do
    d=$(dirname "$(cg_dir "$ctrl" x@1)")
    for sub in "$d"/*@*; do
      [ -d "$sub" ] || continue
      for p in $(cat "$sub/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
      wait_until 5 rmdir "$sub" || echo "could not remove $sub" >&2
    done
    rmdir "$d" 2>/dev/null || true
    rmdir "$(dirname "$d")" 2>/dev/null || true # "ferry", unless another agent uses it
  done
}
trap 'rc=$?; set +e; (exit $rc); cleanup; cg_cleanup; exit $rc' EXIT

# The workloads' folders must be reachable by other users (mktemp made $T
# private); keys and state inside keep their own modes.
chmod 755 "$T"
make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent "$AGENT" "$T/h1" --label role=main --trust "$T/ops.pub"
MAIN_PID=$AGENT_PID
FERRY_CGROUP_ROOT="$T/no-cgroups" start_agent nocg "$T/h2" --label role=nocg --trust "$T/ops.pub"

# app DIR NAME EXTRA_YAML SCRIPT [RUN_USER]: an app whose command is run.sh
app() {
  local dir=$1 name=$2 extra=$3 script=$4 user=${5:-}
  mkdir -p "$dir"
  printf 'name: %s\nversion: "1"\nkind: app\nruntime: exec\nrun:\n  command: ["./run.sh"]\n%s%s\n' \
    "$name" "${user:+  user: $user
}" "$extra" > "$dir/ferry.yaml"
  printf '#!/bin/sh\n%s\n' "$script" > "$dir/run.sh"
  chmod 755 "$dir/run.sh"
  "$FERRY" publish "$dir" >/dev/null
}
reason_has() { workload_field "$1" "$2" 1 reason 2>/dev/null | grep -q -- "$3"; }

# --- bad values are refused at publish, one line with file, line and key
mkdir -p "$T/bad"
printf 'name: bad\nversion: "1"\nkind: app\nruntime: exec\nrun:\n  command: [./x]\nresources:\n  memory: 256MB\n' > "$T/bad/ferry.yaml"
expect_fail "bad/ferry.yaml:8: key 'resources.memory': expected a size like 256Mi, 1Gi, 500M or a number of bytes" \
  "$FERRY" publish "$T/bad"
printf 'name: bad\nversion: "1"\nkind: app\nruntime: exec\nrun:\n  command: [./x]\n  user: "-r"\n' > "$T/bad/ferry.yaml"
expect_fail "bad/ferry.yaml:7: key 'run.user': must be a user name" "$FERRY" publish "$T/bad"
printf 'name: bad\nversion: "1"\nkind: app\nruntime: exec\nrun:\n  command: [./x]\nresources: {cpu: 0}\n' > "$T/bad/ferry.yaml"
expect_fail "bad/ferry.yaml:7: key 'resources.cpu': must be greater than zero" "$FERRY" publish "$T/bad"
pass "bad resources and run.user values are refused at publish with one line"

# --- memory: over its limit, the workload is killed and the reason says so
app "$T/hog" hog 'resources: {memory: 32Mi}
health: {settle: 10s}' 'exec python3 -c "
import time
hoard = []
for _ in range(400):
    hoard.append(bytearray(1 << 20))
    time.sleep(0.002)
time.sleep(60)"'
"$FERRY" deploy hog@1 --to role=main >/dev/null
hog_oom() { reason=$(workload_field "$AGENT" hog 1 reason) && echo "$reason" | grep -q 'killed: out of memory (limit 32Mi)'; }
reason=
wait_until 60 hog_oom || fail "hog's reason: $reason"
pass "a workload over memory: 32Mi is killed: $reason"
"$FERRY" undeploy hog --to role=main >/dev/null
hog_gone() { ! workload_field "$AGENT" hog 1 state >/dev/null 2>&1; }
wait_until 30 hog_gone || fail "hog still listed after undeploy"
wait_until 10 test ! -e "$(cg_dir memory hog@1)" || fail "hog's cgroup $(cg_dir memory hog@1) is left after undeploy"
pass "an undeployed hog's cgroup is removed"

# --- pids caps a fork bomb; cpu is written to the cgroup; the agent is fine
app "$T/bomb" bomb 'resources: {pids: 16, cpu: 0.5}
health: {settle: 1s}' 'exec python3 -c "
import os, sys, time
forked = refused = 0
for _ in range(200):
    try:
        if os.fork() == 0:
            time.sleep(120)
            os._exit(0)
        forked += 1
    except OSError:
        refused += 1
print(\"forked\", forked, \"refused\", refused, file=sys.stderr, flush=True)
time.sleep(120)"'
"$FERRY" deploy bomb@1 --to role=main >/dev/null
"$FERRY" status --wait bomb@1 --to role=main --timeout 30 >/dev/null 2>&1 \
  || wait_until 30 workload_state_is "$AGENT" bomb 1 running || fail "bomb is $(workload_field "$AGENT" bomb 1 state): $(workload_field "$AGENT" bomb 1 reason)"
pid=$(workload_field "$AGENT" bomb 1 pid)
grep -q "ferry/$AGENT/bomb@1" "/proc/$pid/cgroup" || fail "bomb's pid $pid is not in its cgroup: $(cat /proc/$pid/cgroup)"
grep -qx "$pid" "$(cg_file pids bomb@1 cgroup.procs)" || fail "pid $pid not in $(cg_file pids bomb@1 cgroup.procs)"
wait_until 20 grep -q forked "$T/h1/workloads/bomb/1/.ferry/stderr.log" || fail "the bomb never finished forking"
[ "$(cat "$(cg_file pids bomb@1 pids.max)")" = 16 ] || fail "pids.max is $(cat "$(cg_file pids bomb@1 pids.max)")"
current=$(cat "$(cg_file pids bomb@1 pids.current)")
[ "$current" -le 16 ] || fail "pids.current is $current, over 16"
refused=$(awk '$1 == "max" { print $2 }' "$(cg_file pids bomb@1 pids.events)")
[ "${refused:-0}" -gt 0 ] || fail "no fork was refused (pids.events: $(cat "$(cg_file pids bomb@1 pids.events)"))"
members=$(wc -l < "$(cg_file pids bomb@1 cgroup.procs)")
[ "$members" -le 16 ] || fail "$members processes in the bomb's cgroup"
grep -q 'refused [1-9]' "$T/h1/workloads/bomb/1/.ferry/stderr.log" || fail "the bomb says: $(cat "$T/h1/workloads/bomb/1/.ferry/stderr.log")"
kill -0 "$MAIN_PID" || fail "the agent died"
"$FERRY" status --json >/dev/null || fail "the registry stopped answering"
wait_until 10 workload_state_is "$AGENT" bomb 1 running || fail "bomb is not running"
pass "pids: 16 caps a fork bomb at $current processes ($refused forks refused); the agent is fine"
if [ $V2 = 1 ]; then
  [ "$(cat "$(cg_file cpu bomb@1 cpu.max)")" = "50000 100000" ] || fail "cpu.max: $(cat "$(cg_file cpu bomb@1 cpu.max)")"
else
  [ "$(cat "$(cg_file cpu bomb@1 cpu.cfs_quota_us)")" = 50000 ] || fail "cfs_quota_us: $(cat "$(cg_file cpu bomb@1 cpu.cfs_quota_us)")"
  [ "$(cat "$(cg_file cpu bomb@1 cpu.cfs_period_us)")" = 100000 ] || fail "cfs_period_us: $(cat "$(cg_file cpu bomb@1 cpu.cfs_period_us)")"
fi
pass "cpu: 0.5 is a quota of 50 ms per 100 ms in the cgroup"

"$FERRY" undeploy bomb --to role=main >/dev/null
wait_until 20 test ! -e "$(cg_dir pids bomb@1)" || fail "bomb's cgroup is left after undeploy"
wait_until 10 test ! -e "$(cg_dir cpu bomb@1)" || fail "bomb's cpu cgroup is left after undeploy"
! pgrep -f "$T/h1/workloads/bomb" >/dev/null || fail "the bomb's children outlived its cgroup"
pass "undeploy removes the cgroup and whatever was still in it"

# --- after an agent restart: an adopted run's exit still cleans its cgroup,
# and the restart gets a fresh one with the new process in it
app "$T/keep" keep 'resources: {memory: 64Mi}
health: {settle: 1s}' 'exec sleep 120'
"$FERRY" deploy keep@1 --to role=main >/dev/null
wait_until 30 workload_state_is "$AGENT" keep 1 running || fail "keep is $(workload_field "$AGENT" keep 1 state)"
pid=$(workload_field "$AGENT" keep 1 pid)
grep -qx "$pid" "$(cg_file memory keep@1 cgroup.procs)" || fail "keep's pid $pid is not in its memory cgroup"
kill -9 "$MAIN_PID"; wait "$MAIN_PID" 2>/dev/null || true
start_agent "$AGENT" "$T/h1" --label role=main --trust "$T/ops.pub"
MAIN_PID=$AGENT_PID
wait_until 10 grep -q "keep@1: re-adopted pid $pid" "$T/agent-$AGENT.log" || fail "keep was not re-adopted"
kill -9 "$pid"
respawned() { p=$(workload_field "$AGENT" keep 1 pid) && [ "$p" != "$pid" ] && grep -qx "$p" "$(cg_file memory keep@1 cgroup.procs)"; }
wait_until 30 respawned || fail "keep was not restarted into a fresh cgroup: $(workload_field "$AGENT" keep 1 reason)"
limit_file=memory.limit_in_bytes; [ $V2 = 1 ] && limit_file=memory.max
[ "$(cat "$(cg_file memory keep@1 $limit_file)")" = 67108864 ] || fail "keep's restart lost its limit"
"$FERRY" undeploy keep --to role=main >/dev/null
wait_until 20 test ! -e "$(cg_dir memory keep@1)" || fail "keep's cgroup is left after undeploy"
pass "an adopted run's cgroup is cleaned at its exit and made afresh for the restart"

# --- run.user: nobody runs as that uid, groups included, and cannot write its tree
mkdir -p "$T/out" && chmod 777 "$T/out"
who_script="id -u > $T/out/uid
id -G > $T/out/groups
touch ./written 2>/dev/null && echo yes > $T/out/tree-writable
exec sleep 120"
app "$T/who" who 'health: {settle: 1s}' "$who_script" nobody
# The agent's state folder is private (0700): nobody cannot reach its tree.
"$FERRY" deploy who@1 --to role=main >/dev/null
unreachable() { reason=$(workload_field "$AGENT" who 1 reason) && echo "$reason" | grep -qF "run.user 'nobody' cannot reach the workload's files: $T/h1 is not searchable by uid $(id -u nobody)"; }
reason=
wait_until 30 unreachable || fail "who@1's reason: $reason"
[ ! -e "$T/out/uid" ] || fail "who@1 ran"
pass "run.user whose user cannot reach the tree is refused: $reason"

# who@1 keeps retrying; undeploy it first so it cannot start once the
# folder is searchable.
"$FERRY" undeploy who --to role=main >/dev/null
who1_gone() { ! workload_field "$AGENT" who 1 state >/dev/null 2>&1; }
wait_until 30 who1_gone || fail "who@1 still listed after undeploy"
chmod 711 "$T/h1"
sed -i 's/^version: "1"/version: "2"/' "$T/who/ferry.yaml"
"$FERRY" publish "$T/who" >/dev/null
"$FERRY" deploy who@2 --to role=main >/dev/null
wait_until 30 workload_state_is "$AGENT" who 2 running || fail "who@2 is $(workload_field "$AGENT" who 2 state): $(workload_field "$AGENT" who 2 reason)"
nobody=$(id -u nobody)
wait_until 10 test -s "$T/out/uid" || fail "who wrote no uid"
[ "$(cat "$T/out/uid")" = "$nobody" ] || fail "who ran as uid $(cat "$T/out/uid"), not $nobody"
[ "$(cat "$T/out/groups")" = "$(id -G nobody)" ] || fail "who's groups are $(cat "$T/out/groups"), not $(id -G nobody)"
pid=$(workload_field "$AGENT" who 2 pid)
awk '/^Uid:/ { exit !($2 == u && $3 == u && $4 == u) }' u="$nobody" "/proc/$pid/status" \
  || fail "/proc/$pid/status: $(grep Uid "/proc/$pid/status")"
[ ! -e "$T/out/tree-writable" ] || fail "nobody could write into the workload's tree"
pass "run.user: nobody runs as uid $nobody with its groups and cannot write its tree"

# --- a command named without a path (sh, python3) is found on PATH through
# the spawn helper too, as it is for a workload spawned directly
mkdir -p "$T/bare"
printf 'name: bare\nversion: "1"\nkind: app\nruntime: exec\nrun:\n  command: [sh, -c, "id -u > %s/out/bare-uid; exec sleep 120"]\n  user: nobody\nresources: {memory: 64Mi}\nhealth: {settle: 1s}\n' \
  "$T" > "$T/bare/ferry.yaml"
"$FERRY" publish "$T/bare" >/dev/null
"$FERRY" deploy bare@1 --to role=main >/dev/null
wait_until 30 workload_state_is "$AGENT" bare 1 running \
  || fail "bare@1 is $(workload_field "$AGENT" bare 1 state): $(workload_field "$AGENT" bare 1 reason); $(tail -1 "$T/h1/workloads/bare/1/.ferry/stderr.log" 2>/dev/null)"
wait_until 10 test -s "$T/out/bare-uid" || fail "bare@1 wrote no uid"
[ "$(cat "$T/out/bare-uid")" = "$nobody" ] || fail "bare@1 ran as uid $(cat "$T/out/bare-uid")"
"$FERRY" undeploy bare --to role=main >/dev/null
wait_until 20 test ! -e "$(cg_dir memory bare@1)" || fail "bare's cgroup is left after undeploy"
pass "command: [sh, -c, ...] with resources and run.user runs (sh found on PATH) as uid $nobody"

# --- refusals: a missing user, and resources without cgroups
app "$T/ghost" ghost 'health: {settle: 1s}' 'exec sleep 60' no-such-user-ferry
"$FERRY" deploy ghost@1 --to role=main >/dev/null
ghost_refused() { reason=$(workload_field "$AGENT" ghost 1 reason) && echo "$reason" | grep -q "run.user 'no-such-user-ferry': no such user on this host"; }
wait_until 30 ghost_refused || fail "ghost's reason: $reason"
! pgrep -f "$T/h1/workloads/ghost" >/dev/null || fail "ghost runs"
pass "run.user of a missing user is refused: $reason"

app "$T/capped" capped 'resources: {memory: 64Mi}
health: {settle: 1s}' 'exec sleep 60'
"$FERRY" deploy capped@1 --to role=nocg >/dev/null
nocg_refused() { reason=$(workload_field nocg capped 1 reason) && echo "$reason" | grep -q "resources.memory: this host has no cgroup v2 hierarchy at $T/no-cgroups and no cgroup v1 memory controller"; }
wait_until 30 nocg_refused || fail "capped's reason on nocg: $reason"
! pgrep -f "$T/h2/workloads/capped" >/dev/null || fail "capped runs without its limit"
pass "resources on a host without cgroups is refused, never run unlimited: $reason"
