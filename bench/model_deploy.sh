#!/usr/bin/env bash
# Model endpoint start through ferry (called by bench/model.sh; also runs
# alone):  bash bench/model_deploy.sh BUILD_DIR
# A real registry and agent on 127.0.0.1; the scikit-learn iris classifier
# (bench/model/train.py, 2 workers) is published, then deployed N times:
# each round is timed from just before `ferry deploy` until `ferry status
# --wait iris@V` returns (the CLI polls every 100 ms), i.e. until the agent
# reports the model plugin's readiness (GET /v2/health/ready answered 200);
# then it is checked to answer an infer and undeployed, and the next round
# starts once its server is gone. Median, min and max, next to one python3
# loading the same model with joblib (numpy and scikit-learn imported).
# Nothing here asserts a timing. Knob: FERRY_BENCH_MODEL_DEPLOYS (10).
set -euo pipefail
BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N=${FERRY_BENCH_MODEL_DEPLOYS:-10}
PY=${FERRY_PYTHON:-/usr/bin/python3}
FERRY="$BUILD/cli/ferry"
REGISTRY="$BUILD/registry/ferry-registry"
AGENT="$BUILD/agent/ferry-agent"
unset FERRY_REGISTRY FERRY_KEY FERRY_TRUST

W=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-mdeploy.XXXXXX")
PIDS=()
cleanup() {
  local p d
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  local deadline=$(( $(date +%s) + 5 ))
  for p in "${PIDS[@]:-}"; do
    while [ -n "$p" ] && kill -0 "$p" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.05; done
    [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  # Workloads outlive their agent by design: stop what runs in the scratch dir.
  for d in /proc/[0-9]*; do
    case "$(readlink "$d/cwd" 2>/dev/null)" in
      "$W" | "$W"/*) kill -9 "${d#/proc/}" 2>/dev/null || true ;;
    esac
  done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "bench/model_deploy.sh: $*" >&2; exit 1; }
now_ns() { date +%s%N; }
ms_since() { echo $(( ($(now_ns) - $1) / 1000000 )); }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
wait_until() {
  local limit=$1; shift
  local deadline=$(( $(now_ns) + limit * 1000000000 ))
  until "$@" >/dev/null 2>&1; do
    [ "$(now_ns)" -lt "$deadline" ] || return 1
    sleep 0.02
  done
}

"$FERRY" keygen ops --dir "$W" >/dev/null
"$FERRY" hosts token --key "$W/ops.key" --ttl 1d -o "$W/join.token" 2>/dev/null
"$REGISTRY" --data "$W/reg" --listen tcp://127.0.0.1:0 --http 127.0.0.1:0 --trust "$W/ops.pub" 2>"$W/reg.log" &
PIDS+=($!)
wait_until 10 grep -q 'listening on' "$W/reg.log" || die "registry did not start: $(cat "$W/reg.log")"
URL=$(grep -o 'tcp://[0-9.]*:[0-9]*' "$W/reg.log" | head -n 1)
export FERRY_REGISTRY="$URL" FERRY_KEY="$W/ops.key"
"$AGENT" --registry "$URL" --state "$W/agent" --name m1 --label role=bench --trust "$W/ops.pub" \
  --plugins "$BUILD/plugins" --join-token "$W/join.token" 2>"$W/agent.log" &
PIDS+=($!)
online() { "$FERRY" hosts --json | "$PY" -c "import json,sys; sys.exit(not any(h['online'] for h in json.load(sys.stdin)['hosts']))"; }
wait_until 15 online || die "agent did not register: $(cat "$W/agent.log")"

"$PY" "$HERE/model/train.py" "$W"
mkdir -p "$W/art"
cp "$W/iris/model.joblib" "$W/art/"
cat > "$W/req.json" <<'JSON'
{"inputs": [{"name": "sepal_length", "shape": [1], "datatype": "FP64", "data": [5.1]},
            {"name": "sepal_width", "shape": [1], "datatype": "FP64", "data": [3.5]},
            {"name": "petal_length", "shape": [1], "datatype": "FP64", "data": [1.4]},
            {"name": "petal_width", "shape": [1], "datatype": "FP64", "data": [0.2]}]}
JSON
for v in $(seq "$N"); do
  cat > "$W/art/ferry.yaml" <<YAML
name: iris
version: "1.0.$v"
kind: model
runtime: model
model:
  format: sklearn
  file: model.joblib
  inputs:
    - {name: sepal_length, datatype: FP64, shape: [-1]}
    - {name: sepal_width,  datatype: FP64, shape: [-1]}
    - {name: petal_length, datatype: FP64, shape: [-1]}
    - {name: petal_width,  datatype: FP64, shape: [-1]}
  outputs:
    - {name: species, datatype: INT64, shape: [-1]}
  workers: 2
YAML
  "$FERRY" publish "$W/art" >/dev/null
done

echo
echo "== model endpoint: deploy to ready through ferry ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
: > "$W/deploys"; : > "$W/loads"
gone() { ! "$FERRY" status --json | "$PY" -c "import json,sys; sys.exit(not any(w['name'] == 'iris' for h in json.load(sys.stdin)['hosts'] for w in h['workloads']))"; }
for v in $(seq "$N"); do
  t0=$(now_ns)
  "$FERRY" deploy "iris@1.0.$v" --to role=bench >/dev/null
  "$FERRY" status --wait "iris@1.0.$v" --timeout 120 >/dev/null || die "iris@1.0.$v did not get ready: $(tail -n 5 "$W/agent.log")"
  ms_since "$t0" >> "$W/deploys"
  "$FERRY" predict iris --json "$W/req.json" | grep -q '"species"' || die "iris@1.0.$v does not answer"
  "$FERRY" undeploy iris --to role=bench >/dev/null
  wait_until 60 gone || die "iris@1.0.$v was not stopped"
  t0=$(now_ns)
  "$PY" -c 'import sys, joblib, numpy, sklearn; joblib.load(sys.argv[1])' "$W/art/model.joblib"
  ms_since "$t0" >> "$W/loads"
done
printf 'deploy to ready (sklearn, 2 workers), median of %s: %s ms (min %s, max %s)\n' "$N" \
  "$(median < "$W/deploys")" "$(sort -g "$W/deploys" | head -n 1)" "$(sort -g "$W/deploys" | tail -n 1)"
printf 'python3 loading the model alone, median of %s: %s ms (min %s, max %s)\n' "$N" \
  "$(median < "$W/loads")" "$(sort -g "$W/loads" | head -n 1)" "$(sort -g "$W/loads" | tail -n 1)"
