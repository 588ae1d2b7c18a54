#!/usr/bin/env bash
# Agent benchmarks (called by bench/run.sh; also runs alone):
#   bash bench/agent.sh BUILD_DIR
# 1. agent resident memory, idle and with 10 exec workloads, next to a
#    `sleep` process and an idle ferry-registry for scale;
# 2. deploy-to-running latency of a tiny app on loopback (N deploys, median
#    and p95), next to a bare `ferry status` round trip;
# 3. a fleet of 100 agents as real processes: one deploy to all of them,
#    time until every one reports running, and the registry's memory.
# Everything runs on 127.0.0.1 with real processes, printed as figures;
# nothing here asserts a timing. Every process started is stopped at exit.
# Knobs: FERRY_BENCH_AGENTS (100), FERRY_BENCH_DEPLOYS (20),
# FERRY_BENCH_WORKLOADS (10). Agents run with the default heartbeat (5 s).
set -euo pipefail
BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
N_AGENTS=${FERRY_BENCH_AGENTS:-100}
N_DEPLOYS=${FERRY_BENCH_DEPLOYS:-20}
N_WORKLOADS=${FERRY_BENCH_WORKLOADS:-10}
FERRY="$BUILD/cli/ferry"
REGISTRY="$BUILD/registry/ferry-registry"
AGENT="$BUILD/agent/ferry-agent"
PLUGINS="$BUILD/plugins"
unset FERRY_REGISTRY FERRY_KEY FERRY_TRUST FERRY_AGENT_HEARTBEAT_MS

W=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-agent.XXXXXX")
PIDS=()
cleanup() {
  local p d
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
  done
  local deadline=$(( $(date +%s) + 5 ))
  for p in "${PIDS[@]:-}"; do # bounded: whatever ignores TERM gets KILL
    while [ -n "$p" ] && kill -0 "$p" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do
      sleep 0.05
    done
    [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  # Workloads run in their own sessions and outlive their agent by design:
  # stop every process whose working directory is inside the scratch dir.
  for d in /proc/[0-9]*; do
    case "$(readlink "$d/cwd" 2>/dev/null)" in
      "$W" | "$W"/*) kill -9 "${d#/proc/}" 2>/dev/null || true ;;
    esac
  done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "bench/agent.sh: $*" >&2; exit 1; }
now_ns() { date +%s%N; }
ms_since() { echo $(( ($(now_ns) - $1) / 1000000 )); }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# mem3 PID -> "VmRSS RssAnon RssFile Pss" in KiB (Pss: shared pages split
# among the processes that map them, from smaps_rollup)
mem3() {
  local pss
  pss=$(awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0)
  awk -v pss="${pss:-0}" '/^VmRSS:/ {r=$2} /^RssAnon:/ {a=$2} /^RssFile:/ {f=$2} END {print r, a, f, pss}' "/proc/$1/status"
}
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
threads() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime
mib() { echo "scale=1; $1 / 1024" | bc -l | sed 's/^\./0./'; }
# stats FILE -> "median p95 min max" (nearest rank) of the numbers in FILE
stats() {
  sort -g "$1" | awk '{a[NR]=$1} END {
    p = int(NR * 0.95); if (p < NR * 0.95) p++;
    print a[int((NR+1)/2)], a[p], a[1], a[NR]}'
}
# wait_until SECONDS CMD...: poll CMD (every 20 ms) until it succeeds.
wait_until() {
  local limit=$1; shift
  local deadline=$(( $(now_ns) + limit * 1000000000 ))
  until "$@" >/dev/null 2>&1; do
    [ "$(now_ns)" -lt "$deadline" ] || return 1
    sleep 0.02
  done
}

# start_registry NAME: sets URL and REG_PID
start_registry() {
  local log="$W/$1.log"
  "$REGISTRY" --data "$W/$1" --listen tcp://127.0.0.1:0 --http 127.0.0.1:0 --trust "$W/ops.pub" 2>"$log" &
  REG_PID=$!
  PIDS+=("$REG_PID")
  wait_until 10 grep -q 'listening on' "$log" || die "registry did not start: $(cat "$log")"
  URL=$(grep -o 'tcp://[0-9.]*:[0-9]*' "$log" | head -n 1)
}
stop_pid() { # TERM, and KILL after 5 s
  kill -TERM "$1" 2>/dev/null || true
  local i
  for i in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# start_agent NAME LABEL: sets AGENT_PID (does not wait for registration)
start_agent() {
  "$AGENT" --registry "$URL" --state "$W/agents/$1" --name "$1" --label "$2" \
      --trust "$W/ops.pub" --plugins "$PLUGINS" --join-token "$W/join.token" \
      2>>"$W/agents/$1.log" &
  AGENT_PID=$!
  PIDS+=("$AGENT_PID")
}

hosts_online() { # hosts_online -> number of hosts the registry lists as online
  "$FERRY" hosts --registry "$URL" --json |
    python3 -c "import json,sys; print(sum(1 for h in json.load(sys.stdin)['hosts'] if h['online']))"
}
online_is() { [ "$(hosts_online)" = "$1" ]; }

# make_sleep_app DIR NAME VERSION [HEALTH_YAML]: a tiny exec app that sleeps
make_sleep_app() {
  mkdir -p "$1"
  {
    printf 'name: %s\nversion: "%s"\nkind: app\nruntime: exec\n' "$2" "$3"
    printf 'run:\n  command: ["/bin/sleep", "100000"]\n'
    [ -z "${4:-}" ] || printf '%s\n' "$4"
  } > "$1/ferry.yaml"
  printf '%s %s\n' "$2" "$3" > "$1/VERSION"
}

"$FERRY" keygen ops --dir "$W" >/dev/null
# Agents enroll themselves with a join token signed by the operator key.
"$FERRY" hosts token --key "$W/ops.key" --ttl 1d -o "$W/join.token" 2>/dev/null
mkdir -p "$W/agents"
echo
echo "== agent benchmarks ($(nproc) cores, $(uname -r); scratch $W)"

# ---------------------------------------------------------------------------
# 1. memory
# ---------------------------------------------------------------------------
(cd "$W" && exec sleep 100000) &
SLEEP_PID=$!
PIDS+=("$SLEEP_PID")
start_registry reg1
sleep 0.5
reg_idle=$(mem3 "$REG_PID")
sleep_m=$(mem3 "$SLEEP_PID")

start_agent a1 role=bench
A1=$AGENT_PID
wait_until 15 online_is 1 || die "agent a1 did not register: $(cat "$W/agents/a1.log")"
sleep 2 # let it settle: first report sent, long poll parked
agent_idle=$(mem3 "$A1")
agent_idle_thr=$(threads "$A1")

for i in $(seq -w 1 "$N_WORKLOADS"); do
  make_sleep_app "$W/apps/mem$i" "mem$i" 1
  "$FERRY" publish "$W/apps/mem$i" --registry "$URL" --key "$W/ops.key" >/dev/null
done
t0=$(now_ns)
for i in $(seq -w 1 "$N_WORKLOADS"); do
  "$FERRY" deploy "mem$i@1" --to role=bench --registry "$URL" --key "$W/ops.key" >/dev/null
  "$FERRY" status --wait "mem$i@1" --timeout 60 --registry "$URL" >/dev/null ||
    die "mem$i@1 did not reach running"
done
mem_deploy_ms=$(ms_since "$t0")
sleep 2
agent_busy=$(mem3 "$A1")
agent_busy_kb=${agent_busy%% *}
agent_busy_hwm=$(hwm_kb "$A1")
agent_busy_thr=$(threads "$A1")
reg_busy=$(mem3 "$REG_PID")
n_running=$("$FERRY" status --registry "$URL" --json | python3 -c "
import json, sys
print(sum(1 for h in json.load(sys.stdin)['hosts'] for w in h['workloads'] if w['state'] == 'running'))")
# one workload process, to show that workloads are not counted in the agent
wl_pid=$("$FERRY" status --registry "$URL" --json | python3 -c "
import json, sys
print(json.load(sys.stdin)['hosts'][0]['workloads'][0]['pid'])")
wl_m=$(mem3 "$wl_pid" 2>/dev/null || echo "0 0 0 0")

# ---------------------------------------------------------------------------
# 2. deploy-to-running latency (same registry and agent; the 10 sleepers stay)
# ---------------------------------------------------------------------------
# baseline: a bare `ferry status` (one CLI process, one round trip)
for _ in $(seq "$N_DEPLOYS"); do
  t0=$(now_ns)
  "$FERRY" status --registry "$URL" >/dev/null
  ms_since "$t0" >> "$W/t.status"
done
# running_seen NAME VERSION: one `ferry status` says NAME@VERSION runs on a1
running_seen() {
  "$FERRY" status --registry "$URL" | grep -Eq "^a1 +$1 +$2 +running "
}
# lat_run NAME MODE HEALTH_YAML: publish N versions, then deploy them one
# after the other; each is timed from just before `ferry deploy` until
# `ferry status --wait NAME@V` returns 0 (MODE wait: the CLI polls every
# 100 ms), or until a `ferry status` run back to back says running (MODE
# poll: ~10 ms resolution). Each deploy replaces the previous version.
lat_run() {
  local name=$1 mode=$2 health=$3 v t0 t1
  for v in $(seq "$N_DEPLOYS"); do
    make_sleep_app "$W/apps/$name-$v" "$name" "$v" "$health"
    "$FERRY" publish "$W/apps/$name-$v" --registry "$URL" --key "$W/ops.key" >/dev/null
  done
  for v in $(seq "$N_DEPLOYS"); do
    t0=$(now_ns)
    "$FERRY" deploy "$name@$v" --to role=bench --registry "$URL" --key "$W/ops.key" >/dev/null
    t1=$(now_ns)
    if [ "$mode" = wait ]; then
      "$FERRY" status --wait "$name@$v" --timeout 60 --registry "$URL" >/dev/null ||
        die "$name@$v did not reach running"
    else
      wait_until 60 running_seen "$name" "$v" || die "$name@$v did not reach running"
    fi
    ms_since "$t0" >> "$W/t.$name"
    echo $(( (t1 - t0) / 1000000 )) >> "$W/t.$name.deploy"
  done
}
QUICK="health:
  settle: 1ms
  deadline: 10s"                 # healthy as soon as the agent sees it alive
lat_run lat wait ""              # as specified: no health section, status --wait
lat_run latq wait "$QUICK"
lat_run latp poll "$QUICK"
agent_after_lat=$(mem3 "$A1")
stop_pid "$A1"
stop_pid "$REG_PID"

# ---------------------------------------------------------------------------
# 3. a fleet of N_AGENTS agents on this machine, default heartbeat
# ---------------------------------------------------------------------------
start_registry reg2
make_sleep_app "$W/apps/fleet" fleet 1
"$FERRY" publish "$W/apps/fleet" --registry "$URL" --key "$W/ops.key" >/dev/null
sleep 0.3
reg_fleet0_kb=$(rss_kb "$REG_PID")
AGENT_PIDS=()
t0=$(now_ns)
for i in $(seq -f '%03g' 1 "$N_AGENTS"); do
  start_agent "h$i" fleet=bench
  AGENT_PIDS+=("$AGENT_PID")
done
spawn_ms=$(ms_since "$t0")
wait_until 120 online_is "$N_AGENTS" ||
  die "only $(hosts_online) of $N_AGENTS agents registered within 120 s"
register_ms=$(ms_since "$t0")
# idle load of the fleet: one heartbeat period (5 s) with nothing to do
sum_agent_ticks() { local p n=0; for p in "${AGENT_PIDS[@]}"; do n=$(( n + $(cpu_ticks "$p") )); done; echo $n; }
idle_r0=$(cpu_ticks "$REG_PID"); idle_a0=$(sum_agent_ticks)
sleep 5
idle_r1=$(cpu_ticks "$REG_PID"); idle_a1=$(sum_agent_ticks)
tck=$(getconf CLK_TCK)
idle_reg_pct=$(echo "scale=1; 100 * ($idle_r1 - $idle_r0) / $tck / 5" | bc -l | sed 's/^\./0./')
idle_agents_pct=$(echo "scale=1; 100 * ($idle_a1 - $idle_a0) / $tck / 5" | bc -l | sed 's/^\./0./')
reg_fleet_idle_kb=$(rss_kb "$REG_PID")
reg_ticks0=$(cpu_ticks "$REG_PID")
agents_kb=0 agents_pss=0
for p in "${AGENT_PIDS[@]}"; do
  agents_kb=$(( agents_kb + $(rss_kb "$p") ))
  agents_pss=$(( agents_pss + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup") ))
done

t0=$(now_ns)
"$FERRY" deploy fleet@1 --to fleet=bench --registry "$URL" --key "$W/ops.key" >/dev/null
fleet_rc=0
"$FERRY" status --wait fleet@1 --timeout 120 --registry "$URL" >/dev/null 2>"$W/fleet.err" || fleet_rc=$?
fleet_ms=$(ms_since "$t0")
reg_ticks1=$(cpu_ticks "$REG_PID")
fleet_running=$("$FERRY" status --registry "$URL" --json | python3 -c "
import json, sys
print(sum(1 for h in json.load(sys.stdin)['hosts'] for w in h['workloads']
          if w['name'] == 'fleet' and w['state'] == 'running'))")
sleep 1
reg_fleet_after_kb=$(rss_kb "$REG_PID")
reg_fleet_hwm=$(hwm_kb "$REG_PID")
reg_cpu_s=$(echo "scale=2; ($reg_ticks1 - $reg_ticks0) / $(getconf CLK_TCK)" | bc -l | sed 's/^\./0./')
t_status0=$(now_ns)
"$FERRY" status --registry "$URL" --json >/dev/null
status100_ms=$(ms_since "$t_status0")

# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
read -r st_med st_p95 st_min st_max < <(stats "$W/t.status")
read -r l_med l_p95 l_min l_max < <(stats "$W/t.lat")
read -r ld_med _ _ _ < <(stats "$W/t.lat.deploy")
read -r q_med q_p95 q_min q_max < <(stats "$W/t.latq")
read -r qd_med _ _ _ < <(stats "$W/t.latq.deploy")
read -r p_med p_p95 p_min p_max < <(stats "$W/t.latp")
yn() { if [ "$(echo "$1" | bc -l)" = 1 ]; then echo "met"; else echo "NOT met"; fi; }

echo
mrow() { # mrow LABEL "VmRSS RssAnon RssFile Pss"
  local r a f p
  read -r r a f p <<< "$2"
  printf '%-58s %8s %8s %8s %8s\n' "$1" "$(mib "$r")" "$(mib "$a")" "$(mib "$f")" "$(mib "${p:-0}")"
}
printf '%-58s %8s %8s %8s %8s\n' "1. resident memory (MiB)" "VmRSS" "RssAnon" "RssFile" "Pss"
mrow "  sleep 100000 (baseline: a minimal libc process)" "$sleep_m"
mrow "  ferry-registry, idle, no hosts (scale)" "$reg_idle"
mrow "  ferry-agent, idle, no workloads ($agent_idle_thr threads)" "$agent_idle"
mrow "  ferry-agent, $n_running exec workloads running ($agent_busy_thr threads)" "$agent_busy"
printf '%-58s %8s\n' "  ferry-agent, peak so far (VmHWM)" "$(mib "$agent_busy_hwm")"
mrow "  ferry-agent, after $((2 * N_DEPLOYS)) more deploys" "$agent_after_lat"
mrow "  one workload (/bin/sleep, not counted above)" "$wl_m"
mrow "  ferry-registry, 1 host, $N_WORKLOADS workloads" "$reg_busy"
echo "  (RssAnon: the process's own heap and stacks; RssFile: mapped shared-library pages)"
printf '  (%s deploy + status --wait of the %s workloads, one after the other: %s ms)\n' \
  "$N_WORKLOADS" "$N_WORKLOADS" "$mem_deploy_ms"
echo "  target: agent under 5 MiB with $N_WORKLOADS workloads: $(yn "$agent_busy_kb < 5120")"

echo
printf '%-58s %8s %8s %8s %8s\n' "2. deploy -> running, $N_DEPLOYS deploys (ms)" "median" "p95" "min" "max"
printf '%-58s %8s %8s %8s %8s\n' "  ferry status, bare (baseline: CLI round trip)" "$st_med" "$st_p95" "$st_min" "$st_max"
printf '%-58s %8s %8s %8s %8s\n' "  no health section (agent settles 1 s by design)" "$l_med" "$l_p95" "$l_min" "$l_max"
printf '%-58s %8s %8s %8s %8s\n' "    of which the ferry deploy command" "$ld_med" "" "" ""
printf '%-58s %8s %8s %8s %8s\n' "  health: settle 1ms (running once seen alive)" "$q_med" "$q_p95" "$q_min" "$q_max"
printf '%-58s %8s %8s %8s %8s\n' "    of which the ferry deploy command" "$qd_med" "" "" ""
printf '%-58s %8s %8s %8s %8s\n' "  settle 1ms, seen by back-to-back ferry status" "$p_med" "$p_p95" "$p_min" "$p_max"
echo "  (status --wait polls every 100 ms: its figures include up to 100 ms of polling;"
echo "   the last row polls with ferry status every ~20 ms instead)"
echo "  target: median under 300 ms: no health section $(yn "$l_med < 300"); settle 1ms $(yn "$q_med < 300")"

echo
printf '%-58s %12s\n' "3. fleet of $N_AGENTS agents on this machine (heartbeat 5 s)" ""
printf '%-58s %12s\n' "  start $N_AGENTS agent processes (ms)" "$spawn_ms"
printf '%-58s %12s\n' "  ... until the registry lists all online (ms)" "$register_ms"
printf '%-58s %12s\n' "  deploy -> all report running (ms)" "$fleet_ms"
printf '%-58s %12s\n' "  hosts with fleet@1 running afterwards" "$fleet_running / $N_AGENTS"
printf '%-58s %12s\n' "  ferry status --json of $N_AGENTS hosts (ms)" "$status100_ms"
printf '%-58s %12s\n' "  registry CPU during the deploy (s)" "$reg_cpu_s"
printf '%-58s %12s\n' "  idle, 5 s: registry CPU (% of one core)" "$idle_reg_pct"
printf '%-58s %12s\n' "  idle, 5 s: all $N_AGENTS agents' CPU (% of one core)" "$idle_agents_pct"
printf '%-58s %12s\n' "  registry VmRSS, no hosts (MiB)" "$(mib "$reg_fleet0_kb")"
printf '%-58s %12s\n' "  registry VmRSS, $N_AGENTS hosts registered (MiB)" "$(mib "$reg_fleet_idle_kb")"
printf '%-58s %12s\n' "  registry VmRSS after the deploy (MiB)" "$(mib "$reg_fleet_after_kb")"
printf '%-58s %12s\n' "  registry peak (VmHWM, MiB)" "$(mib "$reg_fleet_hwm")"
printf '%-58s %12s\n' "  all $N_AGENTS agents, idle: sum of VmRSS (MiB)" "$(mib "$agents_kb")"
printf '%-58s %12s\n' "  all $N_AGENTS agents, idle: sum of Pss (MiB, shared pages split)" "$(mib "$agents_pss")"
if [ "$fleet_rc" -ne 0 ]; then
  echo "  status --wait fleet@1 failed (exit $fleet_rc): $(cat "$W/fleet.err")"
fi
