#!/usr/bin/env bash
# The registry's HTTP side under a fleet (called by bench/run.sh; also runs
# alone):   bash bench/dashboard.sh BUILD_DIR
# 100 real agents with 10 exec workloads each (1000 runs reporting process
# metrics), then wrk against /metrics and /api/v1/workloads next to a
# baseline answered by the same HTTP server and route table in the same
# run (/api/v1, a small constant JSON document): latency median and p99,
# requests per second, and their ratios to the baseline. /metrics is also
# timed uncached (one request after the one-second cache has run out, as a
# Prometheus scrape every 15 s sees it), and the registry's memory is shown
# before the fleet, with it, and after the load.
# Knobs: FERRY_BENCH_AGENTS (100), FERRY_BENCH_WORKLOADS (10),
# FERRY_BENCH_WRK_SECONDS (10), FERRY_BENCH_WRK_CONNS (8).
# Figures only: nothing here asserts a timing; "target" lines say met or not.
set -euo pipefail
BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
N_AGENTS=${FERRY_BENCH_AGENTS:-100}
N_WORKLOADS=${FERRY_BENCH_WORKLOADS:-10}
WRK_S=${FERRY_BENCH_WRK_SECONDS:-10}
WRK_C=${FERRY_BENCH_WRK_CONNS:-8}
FERRY="$BUILD/cli/ferry"
REGISTRY="$BUILD/registry/ferry-registry"
AGENT="$BUILD/agent/ferry-agent"
PLUGINS="$BUILD/plugins"
unset FERRY_REGISTRY FERRY_KEY FERRY_TRUST FERRY_AGENT_HEARTBEAT_MS
command -v wrk >/dev/null || { echo "bench/dashboard.sh: wrk missing (Debian wrk)" >&2; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-dash.XXXXXX")
PIDS=()
cleanup() {
  local p d
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
  done
  local deadline=$(( $(date +%s) + 15 ))
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

die() { echo "bench/dashboard.sh: $*" >&2; exit 1; }
now_ns() { date +%s%N; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
mib() { echo "scale=1; $1 / 1024" | bc -l | sed 's/^\./0./'; }
wait_until() { # wait_until SECONDS CMD...: poll CMD every 100 ms until it succeeds
  local limit=$1; shift
  local deadline=$(( $(now_ns) + limit * 1000000000 ))
  until "$@" >/dev/null 2>&1; do
    [ "$(now_ns)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

"$FERRY" keygen ops --dir "$W" >/dev/null
"$FERRY" hosts token --key "$W/ops.key" --ttl 1d -o "$W/join.token" 2>/dev/null
mkdir -p "$W/agents"
# Every agent here connects from 127.0.0.1: the per-address cap (256) is
# raised so a fleet on one machine is not taken for a flood from one peer.
"$REGISTRY" --data "$W/reg" --listen tcp://127.0.0.1:0 --http 127.0.0.1:0 --trust "$W/ops.pub" \
  --max-conns 4000 --max-conns-per-peer 4000 2>"$W/reg.log" &
REG_PID=$!
PIDS+=("$REG_PID")
wait_until 10 grep -q 'http listening on' "$W/reg.log" || die "registry did not start: $(cat "$W/reg.log")"
URL=$(grep -o 'tcp://[0-9.]*:[0-9]*' "$W/reg.log" | head -n 1)
HTTP=$(grep -o 'http listening on http://[^ ]*' "$W/reg.log" | tail -n 1 | sed 's/http listening on //')
echo
echo "== dashboard benchmarks: $N_AGENTS agents x $N_WORKLOADS workloads ($(nproc) cores; scratch $W)"

for i in $(seq -w 1 "$N_WORKLOADS"); do
  mkdir -p "$W/apps/w$i"
  printf 'name: w%s\nversion: "1"\nkind: app\nruntime: exec\nrun:\n  command: ["/bin/sleep", "100000"]\n' \
    "$i" > "$W/apps/w$i/ferry.yaml"
  "$FERRY" publish "$W/apps/w$i" --registry "$URL" --key "$W/ops.key" >/dev/null
done
sleep 0.3
reg_empty_kb=$(rss_kb "$REG_PID")

for i in $(seq -f '%03g' 1 "$N_AGENTS"); do
  "$AGENT" --registry "$URL" --state "$W/agents/h$i" --name "h$i" --label fleet=bench \
      --trust "$W/ops.pub" --plugins "$PLUGINS" --join-token "$W/join.token" \
      2>>"$W/agents/h$i.log" &
  PIDS+=("$!")
done
# Counters for the waits below: 0 when the registry did not answer in time.
running() {
  { "$FERRY" status --registry "$URL" --json 2>/dev/null | python3 -c "
import json, sys
print(sum(1 for h in json.load(sys.stdin)['hosts'] for w in h['workloads'] if w['state'] == 'running'))" 2>/dev/null; } ||
    echo 0
}
online() {
  { "$FERRY" hosts --registry "$URL" --json 2>/dev/null |
    python3 -c "import json,sys; print(sum(1 for h in json.load(sys.stdin)['hosts'] if h['online']))" 2>/dev/null; } ||
    echo 0
}
online_is() { [ "$(online)" = "$1" ]; }
running_is() { [ "$(running)" = "$1" ]; }
wait_until 300 online_is "$N_AGENTS" || die "only $(online) of $N_AGENTS agents online"
deploy() { "$FERRY" deploy "$1" --to fleet=bench --registry "$URL" --key "$W/ops.key"; }
for i in $(seq -w 1 "$N_WORKLOADS"); do
  wait_until 120 deploy "w$i@1" || die "deploy w$i@1: $(deploy "w$i@1" 2>&1)"
done
total=$((N_AGENTS * N_WORKLOADS))
# On a loaded machine the last of 1000 starts can take minutes: past the
# deadline the figures are taken with what runs, and the table says so.
wait_until 600 running_is "$total" || true
n_running=$(running)
# Every run's metrics reached the registry (one line per run in /metrics).
runs_with_metrics() {
  { curl -sf "$HTTP/metrics" | grep -c '^ferry_workload_metrics_received_timestamp_seconds{'; } || echo 0
}
metrics_all() { [ "$(runs_with_metrics)" -ge "$1" ]; }
wait_until 120 metrics_all "$n_running" || true
n_metrics=$(runs_with_metrics)
sleep 2
reg_fleet_kb=$(rss_kb "$REG_PID")
curl -sf -o "$W/metrics.txt" "$HTTP/metrics"
metrics_bytes=$(wc -c < "$W/metrics.txt")
metrics_lines=$(grep -vc '^#' "$W/metrics.txt")
promtool_ok="not run"
if command -v promtool >/dev/null; then
  if promtool check metrics < "$W/metrics.txt" >/dev/null 2>&1; then promtool_ok=clean; else promtool_ok=FAILED; fi
fi
workloads_code=$(curl -s -o "$W/workloads.json" -w '%{http_code}' "$HTTP/api/v1/workloads")
workloads_bytes=$(wc -c < "$W/workloads.json")

# wrk_run PATH -> "median_ms p99_ms max_ms req_per_s" (wrk --latency)
wrk_run() {
  wrk -t2 -c"$WRK_C" -d"${WRK_S}s" --latency "$HTTP$1" > "$W/wrk.out" 2>&1 || die "wrk $1: $(cat "$W/wrk.out")"
  grep -q 'Non-2xx' "$W/wrk.out" && die "wrk $1: non-2xx answers: $(cat "$W/wrk.out")"
  python3 - "$W/wrk.out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(s):
    v, u = re.match(r"([\d.]+)(us|ms|s|m)", s).groups()
    return float(v) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[u]
lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", t, re.M))
mx = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", t, re.M).group(1)
rps = re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)
print("%.3f %.3f %.3f %s" % (ms(lat["50"]), ms(lat["99"]), ms(mx), rps))
PY
}
measure() { # the wrk runs, the uncached requests and the registry's own account
read -r b_med b_p99 b_max b_rps < <(wrk_run /api/v1)
read -r m_med m_p99 m_max m_rps < <(wrk_run /metrics)
if [ "$workloads_code" = 200 ]; then
  read -r w_med w_p99 w_max w_rps < <(wrk_run /api/v1/workloads)
fi

# Uncached: each request after the cache ran out, one at a time.
: > "$W/t.cold"
for _ in $(seq 15); do
  sleep 1.1
  curl -sf -o /dev/null -w '%{time_total}\n' "$HTTP/metrics" >> "$W/t.cold"
done
read -r c_med c_p99 c_max < <(sort -g "$W/t.cold" | awk '{a[NR]=$1*1000} END {
  p = int(NR * 0.99); if (p < NR * 0.99) p++; printf "%.3f %.3f %.3f\n", a[int((NR+1)/2)], a[p], a[NR]}')
# The registry's own account of its last rendering: wall and CPU time.
curl -sf -o "$W/m2.txt" "$HTTP/metrics"
ms_of() { awk -v f="$1" '$1 == f {printf "%.3f", $2 * 1000}' "$W/m2.txt"; }
render_ms=$(ms_of ferry_registry_metrics_render_seconds)
render_cpu_ms=$(ms_of ferry_registry_metrics_render_cpu_seconds)
}
measure
reg_after_kb=$(rss_kb "$REG_PID")
reg_hwm_kb=$(hwm_kb "$REG_PID")

ratio() { echo "scale=2; $1 / $2" | bc -l | sed 's/^\./0./'; }
yn() { if [ "$(echo "$1" | bc -l)" = 1 ]; then echo "met"; else echo "NOT met"; fi; }
echo
table() { # table TITLE
printf '%-52s %9s %9s %9s %10s %8s\n' "$1, wrk -t2 -c$WRK_C ${WRK_S}s (ms)" "median" "p99" "max" "req/s" "p99/base"
printf '%-52s %9s %9s %9s %10s %8s\n' "  GET /api/v1 (baseline: same server, constant JSON)" "$b_med" "$b_p99" "$b_max" "$b_rps" "1.00"
printf '%-52s %9s %9s %9s %10s %8s\n' "  GET /metrics (1 s cache)" "$m_med" "$m_p99" "$m_max" "$m_rps" "$(ratio "$m_p99" "$b_p99")"
if [ "$workloads_code" = 200 ]; then
  printf '%-52s %9s %9s %9s %10s %8s\n' "  GET /api/v1/workloads" "$w_med" "$w_p99" "$w_max" "$w_rps" "$(ratio "$w_p99" "$b_p99")"
else
  printf '%-52s %s\n' "  GET /api/v1/workloads" "not measured: HTTP $workloads_code ($(head -c 100 "$W/workloads.json"))"
fi
printf '%-52s %9s %9s %9s %10s %8s\n' "  GET /metrics uncached, 15 single requests" "$c_med" "$c_p99" "$c_max" "" "$(ratio "$c_med" "$b_med")"
printf '%-52s %9s\n' "  registry's last rendering, wall time (ms)" "$render_ms"
printf '%-52s %9s\n' "  registry's last rendering, CPU time (ms)" "$render_cpu_ms"
printf '  /metrics: %s bytes, %s series, promtool check metrics: %s; /api/v1/workloads: %s bytes\n' \
  "$metrics_bytes" "$metrics_lines" "$promtool_ok" "$workloads_bytes"
}
table "fleet running"
echo
printf '%-52s %9s\n' "registry memory (VmRSS, MiB)" ""
printf '%-52s %9s\n' "  $N_WORKLOADS artifacts, no hosts" "$(mib "$reg_empty_kb")"
printf '%-52s %9s\n' "  $N_AGENTS hosts, $total workloads with metrics" "$(mib "$reg_fleet_kb")"
printf '%-52s %9s\n' "  after the wrk runs" "$(mib "$reg_after_kb")"
printf '%-52s %9s\n' "  peak (VmHWM)" "$(mib "$reg_hwm_kb")"
echo "  ($n_running of $total workloads running, metrics from $n_metrics runs, when measured)"
echo "  target: /metrics under 50 ms at $N_AGENTS x $N_WORKLOADS, uncached median $(yn "$c_med < 50"), cached p99 $(yn "$m_p99 < 50")"

# The same measurements with the co-located agents stopped (SIGSTOP): on a
# real fleet they run on other machines, while here 100 agents share the
# registry's 2 cores. The registry keeps every host, run and metric; the
# agents resume (SIGCONT) before the cleanup.
for p in "${PIDS[@]}"; do [ "$p" = "$REG_PID" ] || kill -STOP "$p" 2>/dev/null || true; done
sleep 2
measure
for p in "${PIDS[@]}"; do [ "$p" = "$REG_PID" ] || kill -CONT "$p" 2>/dev/null || true; done
echo
table "agents paused"
echo "  target: /metrics under 50 ms at $N_AGENTS x $N_WORKLOADS with the agents paused, uncached median $(yn "$c_med < 50"), cached p99 $(yn "$m_p99 < 50")"
