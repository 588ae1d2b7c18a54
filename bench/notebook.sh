#!/usr/bin/env bash
# Notebook benchmarks (docs/benchmarks.md, "Notebooks"). Called by
# bench/run.sh; also runs alone: bash bench/notebook.sh BUILD_DIR
# 1. Kernel start to first execute_reply: `ferry kernel start` through a
#    real registry and agent, then a jupyter_client client from the
#    connection file until the reply to 1+1, median of N; against a local
#    kernel started by jupyter_client's KernelManager on the same machine,
#    interleaved in the same run (bench/notebook/kernels.py).
# 2. A scheduled run's wall time: the same notebook run by the agent on
#    `@every` (the job from start to exit, from the agent's state changes,
#    and the runner's own duration_ms) against nbclient executing it
#    directly as a process (bench/notebook/direct.py), interleaved.
# Prints figures and ratios, asserts nothing.
# Knobs: FERRY_BENCH_NB_KERNELS (10), FERRY_BENCH_NB_RUNS (5),
# FERRY_PYTHON (/usr/bin/python3).
set -euo pipefail
BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NK=${FERRY_BENCH_NB_KERNELS:-10}
NR=${FERRY_BENCH_NB_RUNS:-5}
PY=${FERRY_PYTHON:-/usr/bin/python3}
FERRY="$BUILD/cli/ferry"
"$PY" -c 'import jupyter_client, nbclient, ipykernel' 2>/dev/null \
  || { echo "bench/notebook.sh: $PY lacks jupyter_client, nbclient or ipykernel (scripts/install-deps.sh)" >&2; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-nb.XXXXXX")
PIDS=()
cleanup() {
  local p d
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # Workloads and kernels outlive the agent by design: end what runs in $W.
  for d in /proc/[0-9]*; do
    case "$(readlink "$d/cwd" 2>/dev/null)" in "$W"/*) kill -9 "${d#/proc/}" 2>/dev/null || true ;; esac
  done
  rm -rf "$W"
}
trap cleanup EXIT
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
wait_for() { # wait_for SECONDS CMD...
  local end=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || { echo "bench/notebook.sh: timed out waiting for: $*" >&2; return 1; }
    sleep 0.1
  done
}

"$FERRY" keygen bench --dir "$W" >/dev/null
"$FERRY" keygen enroll --dir "$W" >/dev/null
"$BUILD/registry/ferry-registry" --data "$W/reg" --listen tcp://127.0.0.1:0 --trust "$W/bench.pub" \
  --trust "$W/enroll.pub" 2>"$W/reg.log" &
PIDS+=($!)
wait_for 10 grep -q 'listening on' "$W/reg.log"
export FERRY_REGISTRY=$(grep -o 'tcp://[0-9.]*:[0-9]*' "$W/reg.log" | head -n 1) FERRY_KEY="$W/bench.key"
"$FERRY" hosts token --key "$W/enroll.key" --ttl 1d -o "$W/join.token" 2>/dev/null
"$BUILD/agent/ferry-agent" --registry "$FERRY_REGISTRY" --state "$W/h1" --name nb1 --label env=nbbench \
  --plugins "$BUILD/plugins" --trust "$W/bench.pub" --join-token "$W/join.token" 2>"$W/agent.log" &
PIDS+=($!)
wait_for 10 grep -q 'host nb1 ' "$W/agent.log"

mkdir -p "$W/lab"
printf 'name: lab\nversion: "1"\nkind: notebook\nruntime: notebook\nnotebook:\n  kernel: python3\n' > "$W/lab/ferry.yaml"
"$FERRY" publish "$W/lab" >/dev/null
"$FERRY" deploy lab@1 --to env=nbbench >/dev/null
"$FERRY" status --wait lab@1 --timeout 60 >/dev/null

# --- 1. kernel start to first execute_reply
mkdir -p "$W/local"
"$PY" "$HERE/notebook/kernels.py" "$FERRY" lab@1 env=nbbench "$NK" "$W/local" > "$W/kernels.txt" 2>>"$W/py.err" \
  || { echo "bench/notebook.sh: the kernel benchmark failed: $(tail -3 "$W/py.err")" >&2; exit 1; }
remote=$(awk '$1 == "remote" {print $2}' "$W/kernels.txt" | median)
local_ms=$(awk '$1 == "local" {print $2}' "$W/kernels.txt" | median)
cli_ms=$(awk '$1 == "cli" {print $2}' "$W/kernels.txt" | median)
rmin=$(awk '$1 == "remote" {print $2}' "$W/kernels.txt" | sort -g | head -1)
rmax=$(awk '$1 == "remote" {print $2}' "$W/kernels.txt" | sort -g | tail -1)
lmin=$(awk '$1 == "local" {print $2}' "$W/kernels.txt" | sort -g | head -1)
lmax=$(awk '$1 == "local" {print $2}' "$W/kernels.txt" | sort -g | tail -1)

# --- 2. a scheduled run against nbclient directly
mkdir -p "$W/run"
"$PY" - "$W/run/nb.ipynb" <<'PY'
import sys, nbformat as f
nb = f.v4.new_notebook()
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
p = f.v4.new_code_cell("n = 200000")
p.metadata["tags"] = ["parameters"]
nb.cells = [p,
            f.v4.new_code_cell("import statistics, random\nrandom.seed(1)\nxs = [random.random() for _ in range(n)]"),
            f.v4.new_code_cell("print(round(statistics.mean(xs), 3), round(statistics.pstdev(xs), 3))"),
            f.v4.new_code_cell("sorted(xs)[:3]")]
f.write(nb, sys.argv[1])
PY
printf 'name: sched\nversion: "1"\nkind: notebook\nruntime: notebook\nnotebook:\n  notebook: nb.ipynb\n  schedule: "@every 10s"\n' > "$W/run/ferry.yaml"
"$FERRY" publish "$W/run" >/dev/null
runs_done() { [ "$(ls "$W/h1/workloads/sched/1/.ferry/runs/"*.json 2>/dev/null | wc -l)" -ge "$1" ]; }
: > "$W/direct.wall"; : > "$W/direct.exec"
# The direct baseline first (once to warm the page cache), then the
# scheduled runs; each direct run is timed between two scheduled ones.
"$PY" "$HERE/notebook/direct.py" "$W/run/nb.ipynb" "$W/run" >/dev/null 2>>"$W/py.err"
"$FERRY" deploy sched@1 --to env=nbbench >/dev/null
for i in $(seq "$NR"); do
  wait_for 120 runs_done "$i"
  t0=$(now_ms)
  ms=$("$PY" "$HERE/notebook/direct.py" "$W/run/nb.ipynb" "$W/run" 2>>"$W/py.err")
  t1=$(now_ms)
  echo $((t1 - t0)) >> "$W/direct.wall"
  echo "$ms" >> "$W/direct.exec"
done
# The job's wall time, spawn to exit: its running -> scheduled changes.
"$FERRY" events --host nb1 --limit 1000 --json | "$PY" -c '
import json, sys
ev = [e for e in json.load(sys.stdin)["events"] if e["name"] == "sched"]
start = None
for e in ev:
    if e["state"] == "running":
        start = e["time_ms"]
    elif e["state"] in ("scheduled", "succeeded") and start is not None:
        print(e["time_ms"] - start)
        start = None
' | head -n "$NR" > "$W/ferry.wall"
cat "$W/h1/workloads/sched/1/.ferry/runs/"*.json | "$PY" -c '
import json, sys
dec = json.JSONDecoder(); s = sys.stdin.read().strip(); i = 0
while i < len(s):
    o, j = dec.raw_decode(s, i); i = j
    while i < len(s) and s[i].isspace(): i += 1
    print(o["duration_ms"])
' | head -n "$NR" > "$W/ferry.exec"
"$FERRY" undeploy sched --to env=nbbench >/dev/null
fw=$(median < "$W/ferry.wall"); dw=$(median < "$W/direct.wall")
fe=$(median < "$W/ferry.exec"); de=$(median < "$W/direct.exec")
nfw=$(wc -l < "$W/ferry.wall")

echo
echo "notebooks: kernel start to first execute_reply (median of $NK, interleaved)"
printf '%-58s %10s %16s %8s\n' "measurement" "median ms" "min-max ms" "ratio"
printf '%-58s %10.0f %16s %8s\n' "local kernel (jupyter_client KernelManager, baseline)" "$local_ms" "$(printf '%.0f-%.0f' "$lmin" "$lmax")" "1.00"
printf '%-58s %10.0f %16s %8.2f\n' "ferry kernel start + client from conn.json" "$remote" "$(printf '%.0f-%.0f' "$rmin" "$rmax")" "$(echo "$remote / $local_ms" | bc -l)"
printf '%-58s %10.0f %16s %8s\n' "  of which ferry kernel start until it returned" "$cli_ms" "" ""
printf '%-58s %10.0f %16s %8s\n' "  overhead (remote - local)" "$(echo "$remote - $local_ms" | bc -l)" "" ""
echo
echo "notebooks: a scheduled run against nbclient directly (median of $NR; ferry wall from $nfw runs)"
printf '%-58s %10s %8s\n' "measurement" "median ms" "ratio"
printf '%-58s %10.0f %8s\n' "nbclient directly, whole process (baseline)" "$dw" "1.00"
printf '%-58s %10.0f %8.2f\n' "ferry scheduled run, job spawn to exit (agent's changes)" "$fw" "$(echo "$fw / $dw" | bc -l)"
printf '%-58s %10.0f %8s\n' "nbclient directly, NotebookClient.execute (baseline)" "$de" "1.00"
printf '%-58s %10.0f %8.2f\n' "ferry runner's own duration_ms (nbrun.py)" "$fe" "$(echo "$fe / $de" | bc -l)"
