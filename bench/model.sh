#!/usr/bin/env bash
# Model serving benchmarks (issue "Benchmarks"; docs/benchmarks.md, "Model
# server"). Called by bench/run.sh; also runs alone:
#   bash bench/model.sh BUILD_DIR
# 1. The same scikit-learn iris classifier served by ferry-model-server
#    (without batching, and with batching) and by gunicorn + Flask (bench/model/flask_app.py), the same number of
#    worker processes, each loading the model once, both driven by wrk in
#    this run at 1 and 32 connections: single-row V2 infer for ferry, a
#    one-row JSON body for Flask. Runs are interleaved and repeated; the
#    median is shown with ratios.
# 2. Server overhead: a format: python model whose predict returns its
#    input, p50/p99 at 1 connection, next to the HTTP front end alone
#    (bench/http's server answering from another thread) as a floor.
# 3. Start to ready: ferry-model-server spawned until /v2/health/ready
#    answers 200, scikit-learn model, median of N (what the model plugin
#    waits for after a deploy), next to one python3 loading the same model
#    (the import floor every worker pays).
# 4. Deploy to ready through a real registry and agent (bench/model_deploy.sh):
#    ferry deploy until ferry status --wait says ready, median of 10.
# 1-3 start the server binary directly (as the model plugin would start
# it), not through an agent. Prints figures, asserts nothing.
# Knobs: FERRY_BENCH_MODEL_SECONDS (5) per run, FERRY_BENCH_MODEL_ROUNDS (3),
# FERRY_BENCH_MODEL_WORKERS (2), FERRY_BENCH_MODEL_STARTS (10),
# FERRY_BENCH_MODEL_BATCHING (the batching of the second ferry server,
# '{"max_batch": 32, "max_delay": "2ms"}'; empty: no second server),
# FERRY_PYTHON (/usr/bin/python3).
set -euo pipefail
BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SECS=${FERRY_BENCH_MODEL_SECONDS:-5}
ROUNDS=${FERRY_BENCH_MODEL_ROUNDS:-3}
WORKERS=${FERRY_BENCH_MODEL_WORKERS:-2}
STARTS=${FERRY_BENCH_MODEL_STARTS:-10}
BATCHING=${FERRY_BENCH_MODEL_BATCHING-'{"max_batch": 32, "max_delay": "2ms"}'}
PY=${FERRY_PYTHON:-/usr/bin/python3}
SERVER="$BUILD/plugins/model/ferry-model-server"
HTTPBENCH="$BUILD/bench/ferry-httpbench-mhd"
GUNICORN=$(command -v gunicorn || echo /usr/bin/gunicorn)
for t in wrk curl; do
  command -v "$t" >/dev/null || { echo "bench/model.sh: $t is not installed (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -x "$GUNICORN" ] || { echo "bench/model.sh: gunicorn is not installed (scripts/install-deps.sh)" >&2; exit 1; }
[ -x "$SERVER" ] || { echo "bench/model.sh: $SERVER is not built" >&2; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-model.XXXXXX")
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  local deadline=$(( $(date +%s) + 5 ))
  for p in "${PIDS[@]:-}"; do
    while [ -n "$p" ] && kill -0 "$p" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.05; done
    [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

now_ns() { date +%s%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
to_us() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") f = 1; else if (u == "ms") f = 1000; else if (u == "s") f = 1000000; else f = 0
    printf "%.0f", n * f }'
}
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# wait_http SECONDS URL [CURL ARGS...]: until URL answers 2xx
wait_http() {
  local secs=$1 url=$2; shift 2
  local end=$(( $(date +%s) + secs ))
  while [ "$(date +%s)" -lt "$end" ]; do
    curl -sf -o /dev/null "$@" "$url" && return 0
    sleep 0.01
  done
  return 1
}
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  local end=$(( $(date +%s) + 5 ))
  while kill -0 "$1" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 0.02; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

"$PY" "$HERE/model/train.py" "$W"

FEATURES='[{"name": "sepal_length", "datatype": "FP64", "shape": [-1]}, {"name": "sepal_width", "datatype": "FP64", "shape": [-1]}, {"name": "petal_length", "datatype": "FP64", "shape": [-1]}, {"name": "petal_width", "datatype": "FP64", "shape": [-1]}]'
iris_spec() { # [BATCHING JSON]
  local b=
  [ -n "${1:-}" ] && b=", \"batching\": $1"
  echo "{\"name\": \"iris\", \"version\": \"1.0.0\", \"kind\": \"model\", \"runtime\": \"model\", \"model\": {\"format\": \"sklearn\", \"file\": \"model.joblib\", \"inputs\": $FEATURES, \"outputs\": [{\"name\": \"species\", \"datatype\": \"INT64\", \"shape\": [-1]}], \"workers\": $WORKERS$b}}"
}
IRIS_SPEC=$(iris_spec)
ID_SPEC='{"name": "echo", "version": "1", "kind": "model", "runtime": "model", "model": {"format": "python", "entry": "serve.py:Model", "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1]}], "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1]}], "workers": 1}}'

cat > "$W/ferry.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"inputs": [{"name": "sepal_length", "shape": [1], "datatype": "FP64", "data": [5.1]}, {"name": "sepal_width", "shape": [1], "datatype": "FP64", "data": [3.5]}, {"name": "petal_length", "shape": [1], "datatype": "FP64", "data": [1.4]}, {"name": "petal_width", "shape": [1], "datatype": "FP64", "data": [0.2]}]}'
LUA
cat > "$W/flask.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"inputs": [[5.1, 3.5, 1.4, 0.2]]}'
LUA
cat > "$W/echo.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.5]}]}'
LUA

# start_ferry DIR SPEC: sets FERRY_PID, FERRY_PORT; waits until ready
start_ferry() {
  FERRY_PORT=$(free_port)
  "$SERVER" --dir "$1" --port "$FERRY_PORT" --addr 127.0.0.1 --spec-json "$2" --python "$PY" \
    2>>"$W/ferry.log" &
  FERRY_PID=$!
  PIDS+=("$FERRY_PID")
  wait_http 60 "http://127.0.0.1:$FERRY_PORT/v2/health/ready" ||
    { echo "bench/model.sh: ferry-model-server did not get ready:" >&2; tail -n 5 "$W/ferry.log" >&2; exit 1; }
}
start_flask() {
  FLASK_PORT=$(free_port)
  FERRY_BENCH_MODEL="$W/iris/model.joblib" OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
    "$GUNICORN" -w "$WORKERS" -b "127.0.0.1:$FLASK_PORT" --chdir "$HERE/model" \
    --log-level warning flask_app:app 2>>"$W/flask.log" &
  FLASK_PID=$!
  PIDS+=("$FLASK_PID")
  wait_http 60 "http://127.0.0.1:$FLASK_PORT/predict" -X POST -H 'Content-Type: application/json' \
    -d '{"inputs": [[5.1, 3.5, 1.4, 0.2]]}' ||
    { echo "bench/model.sh: gunicorn did not start:" >&2; tail -n 5 "$W/flask.log" >&2; exit 1; }
}

# drive NAME URL LUA CONNS: appends "NAME CONNS rps p50 p99 errors" to $W/results
drive() {
  local name=$1 url=$2 lua=$3 c=$4 t=1
  [ "$c" -gt 1 ] && t=2
  wrk -t1 -c"$c" -d1s -s "$lua" "$url" >/dev/null # warm-up
  wrk -t"$t" -c"$c" -d"${SECS}s" --latency -s "$lua" "$url" > "$W/wrk.out"
  local rps p50 p99 bad
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$W/wrk.out")
  p50=$(to_us "$(awk '$1 == "50%" {print $2}' "$W/wrk.out")")
  p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$W/wrk.out")")
  bad=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$W/wrk.out")
  echo "$name $c $rps $p50 $p99 ${bad:-0}" >> "$W/results"
}

echo
echo "model serving: scikit-learn iris (LogisticRegression), $WORKERS workers each, wrk ${SECS}s per run, median of $ROUNDS"
NAMES="ferry flask"
start_ferry "$W/iris" "$IRIS_SPEC"
FERRY_URL="http://127.0.0.1:$FERRY_PORT/v2/models/iris/infer"
F1_PID=$FERRY_PID
if [ -n "$BATCHING" ]; then
  echo "ferry+batch: batching $BATCHING"
  start_ferry "$W/iris" "$(iris_spec "$BATCHING")"
  BATCH_URL="http://127.0.0.1:$FERRY_PORT/v2/models/iris/infer"
  F2_PID=$FERRY_PID
  NAMES="ferry ferry+batch flask"
fi
start_flask
FLASK_URL="http://127.0.0.1:$FLASK_PORT/predict"
# Same answer from both before anything is timed.
a=$(curl -sf -X POST -H 'Content-Type: application/json' --data "$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$W/ferry.lua")" "$FERRY_URL")
b=$(curl -sf -X POST -H 'Content-Type: application/json' -d '{"inputs": [[5.1, 3.5, 1.4, 0.2]]}' "$FLASK_URL")
echo "ferry answers: $a"
echo "flask answers: $b"
for r in $(seq "$ROUNDS"); do
  for c in 1 32; do
    drive ferry "$FERRY_URL" "$W/ferry.lua" "$c"
    [ -n "$BATCHING" ] && drive ferry+batch "$BATCH_URL" "$W/ferry.lua" "$c"
    drive flask "$FLASK_URL" "$W/flask.lua" "$c"
  done
done
rss_sum() { # PID: VmRSS of it and its children, KiB
  local total=0 p
  for p in $1 $(pgrep -P "$1" || true); do
    total=$(( total + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0) ))
  done
  echo "$total"
}
ferry_rss=$(rss_sum "$F1_PID"); flask_rss=$(rss_sum "$FLASK_PID")
stop_pid "$F1_PID"; stop_pid "$FLASK_PID"
[ -n "$BATCHING" ] && stop_pid "$F2_PID"

med() { awk -v n="$1" -v c="$2" -v k="$3" '$1 == n && $2 == c {print $k}' "$W/results" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
label() { case $1 in ferry) echo "ferry (V2 infer)" ;; ferry+batch) echo "ferry+batch (V2 infer)" ;; *) echo "gunicorn+Flask (JSON)" ;; esac; }
printf '\n%-24s %5s %10s %9s %9s %8s\n' server conns "req/s" "p50 us" "p99 us" "non-2xx"
for c in 1 32; do
  for n in $NAMES; do
    printf '%-24s %5s %10s %9s %9s %8s\n' "$(label $n)" "$c" "$(med $n $c 3)" "$(med $n $c 4)" "$(med $n $c 5)" \
      "$(awk -v n=$n -v c=$c '$1 == n && $2 == c {s += $6} END {print s + 0}' "$W/results")"
  done
  for n in $NAMES; do
    [ "$n" = flask ] && continue
    printf '%-24s %5s %10s %9s %9s\n' "  $n / flask" "$c" "$(ratio "$(med $n $c 3)" "$(med flask $c 3)")" \
      "$(ratio "$(med $n $c 4)" "$(med flask $c 4)")" "$(ratio "$(med $n $c 5)" "$(med flask $c 5)")"
  done
done
echo "resident memory with $WORKERS workers (server + workers): ferry ${ferry_rss} KiB, gunicorn+Flask ${flask_rss} KiB"
echo "targets: at 32 connections ferry req/s >= 5 x Flask with a lower p99; at 1 connection a lower p50"

# 2. Server overhead: the identity model, and the HTTP front end alone.
: > "$W/results"
start_ferry "$W/identity" "$ID_SPEC"
ECHO_URL="http://127.0.0.1:$FERRY_PORT/v2/models/echo/infer"
curl -sf -X POST -H 'Content-Type: application/json' --data "$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$W/echo.lua")" "$ECHO_URL" >/dev/null
if [ -x "$HTTPBENCH" ]; then
  : > "$W/hb.out"
  "$HTTPBENCH" --mode thread >> "$W/hb.out" 2>&1 &
  HB_PID=$!; PIDS+=("$HB_PID")
  for _ in $(seq 500); do grep -q '^port ' "$W/hb.out" && break; sleep 0.01; done
  HB_URL="http://127.0.0.1:$(awk '/^port / {print $2}' "$W/hb.out")/v2/models/echo/infer"
fi
for r in $(seq "$ROUNDS"); do
  drive echo "$ECHO_URL" "$W/echo.lua" 1
  [ -n "${HB_PID:-}" ] && drive http "$HB_URL" "$W/echo.lua" 1
done
stop_pid "$FERRY_PID"
[ -n "${HB_PID:-}" ] && stop_pid "$HB_PID"
printf '\n%-44s %9s %9s %10s\n' "server overhead, 1 connection" "p50 us" "p99 us" "req/s"
printf '%-44s %9s %9s %10s\n' "ferry, format: python identity model" "$(med echo 1 4)" "$(med echo 1 5)" "$(med echo 1 3)"
[ -n "${HB_PID:-}" ] &&
  printf '%-44s %9s %9s %10s\n' "HTTP front end alone (answer from a thread)" "$(med http 1 4)" "$(med http 1 5)" "$(med http 1 3)"
echo "target: identity p50 under 200 us"

# 3. Start to ready, scikit-learn imported.
: > "$W/starts"; : > "$W/loads"
for i in $(seq "$STARTS"); do
  t0=$(now_ns)
  start_ferry "$W/iris" "$IRIS_SPEC"
  t1=$(now_ns)
  echo "($t1 - $t0) / 1000000" | bc >> "$W/starts"
  stop_pid "$FERRY_PID"
  # Baseline, interleaved: one python3 loading the same model (numpy,
  # scikit-learn and joblib imported), which every worker has to do.
  t0=$(now_ns)
  "$PY" -c 'import sys, joblib; joblib.load(sys.argv[1])' "$W/iris/model.joblib"
  t1=$(now_ns)
  echo "($t1 - $t0) / 1000000" | bc >> "$W/loads"
done
printf '\nstart to ready (%s workers, sklearn), median of %s: %s ms (min %s, max %s)\n' "$WORKERS" "$STARTS" \
  "$(median < "$W/starts")" "$(sort -g "$W/starts" | head -n 1)" "$(sort -g "$W/starts" | tail -n 1)"
printf 'baseline: python3 loading the model alone, median of %s: %s ms (min %s, max %s)\n' "$STARTS" \
  "$(median < "$W/loads")" "$(sort -g "$W/loads" | head -n 1)" "$(sort -g "$W/loads" | tail -n 1)"
echo "target: under 2000 ms"

# 4. Deploy to ready through a registry and an agent (bench/model_deploy.sh).
bash "$HERE/model_deploy.sh" "$BUILD"
