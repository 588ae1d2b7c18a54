#!/usr/bin/env bash
# make demo: a local registry (SQLite + blob folder) and one agent, both with
# their data under demo-data/; every example is published and verified back
# out; hello and churn-model (trained here first by its train.py when its
# model.joblib is missing) are deployed to the agent and queried
# along with hello-container (an OCI image built offline from busybox-static,
# run under runc) and churn-notebook (a daily scheduled notebook, also run
# once on demand); then status, the dashboard's address, and everything stops
# on Ctrl-C.
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$ROOT" && cd "$BUILD" && pwd)
FERRY="$BUILD/cli/ferry"
REGISTRY="$BUILD/registry/ferry-registry"
AGENT="$BUILD/agent/ferry-agent"
DATA="$ROOT/demo-data"
PORT=${FERRY_DEMO_PORT:-7400}
URL="tcp://127.0.0.1:$PORT"
HTTP=${FERRY_DEMO_HTTP:-127.0.0.1:7480}

mkdir -p "$DATA/keys" "$DATA/pulled"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
PIDS=()
stop_all() {
  say "stopping the agent, its workloads and the registry"
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # The agent leaves workloads running on purpose; the demo cleans them up:
  # containers through runc (their processes live in the image's root), the
  # rest by their working folder.
  if [ -d "$DATA/agent/oci" ] && command -v runc >/dev/null; then
    for id in $(runc --root "$DATA/agent/oci" list -q 2>/dev/null); do
      runc --root "$DATA/agent/oci" delete --force "$id" >/dev/null 2>&1 || true
    done
  fi
  for d in /proc/[0-9]*; do
    case "$(readlink "$d/cwd" 2>/dev/null)" in
      "$DATA"/agent/*) kill -TERM "${d#/proc/}" 2>/dev/null || true ;;
    esac
  done
}
trap stop_all EXIT
trap 'exit 0' INT TERM

wait_for_line() { # FILE PATTERN
  for _ in $(seq 1000); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.01
  done
  echo "timed out waiting for '$2' in $1" >&2
  cat "$1" >&2
  return 1
}

if [ ! -f "$DATA/keys/demo.key" ]; then
  say "creating a signing key (demo-data/keys)"
  "$FERRY" keygen demo --dir "$DATA/keys"
fi

say "starting ferry-registry on $URL (data in demo-data/registry)"
"$REGISTRY" --data "$DATA/registry" --listen "$URL" --trust "$DATA/keys/demo.pub" \
  --http "$HTTP" 2>"$DATA/registry.log" &
PIDS+=($!)
wait_for_line "$DATA/registry.log" 'listening on'

say "making a join token (signed by demo.key, for hosts labelled env=demo, valid 10 minutes)"
"$FERRY" hosts token --key "$DATA/keys/demo.key" --label env=demo --ttl 10m \
  -o "$DATA/keys/join.token"

say "starting ferry-agent 'demo-host' (state in demo-data/agent, labels env=demo), enrolled by the token"
"$AGENT" --registry "$URL" --state "$DATA/agent" --name demo-host --label env=demo \
  --trust "$DATA/keys/demo.pub" --plugins "$BUILD/plugins" \
  --join-token "$DATA/keys/join.token" 2>"$DATA/agent.log" &
PIDS+=($!)
wait_for_line "$DATA/agent.log" 'registered with'

# The model's Python: Debian's, with scikit-learn (docs/models.md).
PY=${FERRY_PYTHON:-/usr/bin/python3}
CHURN="$ROOT/examples/churn-model"
if [ ! -f "$CHURN/model.joblib" ] || [ ! -f "$CHURN/reference.csv" ]; then
  say "training examples/churn-model (scikit-learn, synthetic data, fixed seed)"
  "$PY" "$CHURN/train.py"
fi

# The container example's image: an OCI layout built offline (no registry,
# no network) from Debian's busybox-static, as the tests build theirs.
IMAGE="$ROOT/examples/hello-container/image"
if [ ! -f "$IMAGE/index.json" ]; then
  say "building examples/hello-container/image (OCI layout: busybox-static, umoci)"
  rm -rf "$IMAGE"
  # shellcheck source=../tests/integration/ociimage.sh
  source "$ROOT/tests/integration/ociimage.sh"
  oci_busybox_layout "$IMAGE" /bin/sh
fi

export FERRY_REGISTRY="$URL" FERRY_KEY="$DATA/keys/demo.key" FERRY_TRUST="$DATA/keys/demo.pub"
for ex in "$ROOT"/examples/*/; do
  name=$(basename "$ex")
  say "publishing examples/$name"
  ref=$("$FERRY" publish "$ex" -v)
  echo "$ref"
  art=${ref%% *}
  say "pulling $art back, verified against demo.pub"
  rm -rf "$DATA/pulled/$name"
  "$FERRY" pull "$art" --out "$DATA/pulled/$name"
  ls -l "$DATA/pulled/$name"
done

say "deploying hello@1.0.0 to env=demo and waiting until it runs"
"$FERRY" deploy hello@1.0.0 --to env=demo --wait --timeout 60
port=$("$FERRY" status --json | python3 -c "
import json, sys
for h in json.load(sys.stdin)['hosts']:
    for w in h['workloads']:
        if w['name'] == 'hello' and w['state'] == 'running':
            print(w['port'])")

churn_ref=$(sed -n 's/^version: *//p' "$CHURN/ferry.yaml")
say "deploying churn-model@$churn_ref to env=demo (the model server, 2 workers) and waiting until it is ready"
"$FERRY" deploy "churn-model@$churn_ref" --to env=demo --wait --timeout 120
cat > "$DATA/churn-request.json" <<'JSON'
{"inputs": [
  {"name": "tenure_months",   "shape": [2], "datatype": "FP64", "data": [3, 60]},
  {"name": "monthly_spend",   "shape": [2], "datatype": "FP64", "data": [120.5, 35.0]},
  {"name": "support_tickets", "shape": [2], "datatype": "FP64", "data": [4, 0]}]}
JSON
say "ferry predict churn-model --json demo-data/churn-request.json (V2 infer)"
"$FERRY" predict churn-model --json "$DATA/churn-request.json"
say "the same through MLflow's scoring protocol: ferry predict churn-model --mlflow"
echo '{"dataframe_split": {"columns": ["tenure_months", "monthly_spend", "support_tickets"], "data": [[3, 120.5, 4]]}}' |
  "$FERRY" predict churn-model --mlflow --json -

say "deploying hello-container@1.0.0 (an OCI image, run under runc) and waiting until it answers"
"$FERRY" deploy hello-container@1.0.0 --to env=demo --wait --timeout 120
cport=$("$FERRY" status --json | python3 -c "
import json, sys
for h in json.load(sys.stdin)['hosts']:
    for w in h['workloads']:
        if w['name'] == 'hello-container' and w['state'] == 'running':
            print(w['port'])")
curl -fsS "http://127.0.0.1:$cport/index.html"

say "deploying churn-notebook@0.1.0 (scheduled daily) and running it once now"
"$FERRY" deploy churn-notebook@0.1.0 --to env=demo --wait --timeout 60
"$FERRY" run churn-notebook@0.1.0 --to env=demo --wait --timeout 120
"$FERRY" runs churn-notebook

say "status"
"$FERRY" hosts
"$FERRY" status
"$FERRY" history hello
say "hello answers on http://127.0.0.1:$port/"
curl -fsS "http://127.0.0.1:$port/" || true
echo
echo "Dashboard: http://$HTTP/ (apps, models and notebooks on one page; JSON under /api/v1/, Prometheus at /metrics)"
echo "Try:  FERRY_REGISTRY=$URL $FERRY status --json"
echo "Logs: demo-data/registry.log, demo-data/agent.log"
if [ -t 0 ] && [ "${CI:-}" != true ]; then
  echo "Press Ctrl-C to stop everything."
  while kill -0 "${PIDS[0]}" 2>/dev/null; do sleep 1; done
fi
