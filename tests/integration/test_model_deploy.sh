#!/usr/bin/env bash
# A scikit-learn model end to end: trained here, published, deployed to a
# real agent through the model plugin, queried with ferry predict (V2 and
# MLflow) against the in-process predictions; drift from shifted inputs
# turns into a warning in ferry status and a gauge in ferry metrics.
source "$(dirname "$0")/lib.sh"

PY=${FERRY_PYTHON:-/usr/bin/python3}
"$PY" -c 'import sklearn, joblib, numpy' 2>/dev/null || fail "$PY lacks scikit-learn (scripts/install-deps.sh)"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent h1 "$T/h1" --label env=test --trust "$T/ops.pub" --metrics-interval 1s

# --- train iris, keep the in-process predictions of the rows we will send
mkdir -p "$T/iris"
"$PY" - "$T/iris" "$T" <<'PY'
import json, os, sys
import joblib, numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
out, scratch = sys.argv[1], sys.argv[2]
names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
x, y = load_iris(return_X_y=True)
model = LogisticRegression(max_iter=1000).fit(x, y)
joblib.dump(model, os.path.join(out, "model.joblib"))
with open(os.path.join(out, "reference.csv"), "w") as f:
    f.write(",".join(names) + "\n")
    for row in x:
        f.write(",".join(repr(float(v)) for v in row) + "\n")
rows = x[[0, 60, 120, 149]]
def v2(rows):
    return {"id": "q1", "inputs": [
        {"name": n, "shape": [len(rows)], "datatype": "FP64", "data": [float(v) for v in rows[:, i]]}
        for i, n in enumerate(names)]}
def dump(name, doc):
    with open(os.path.join(scratch, name), "w") as f:
        json.dump(doc, f)
dump("flat.json", v2(rows))
# The other sklearn form, one 2-D input of whole rows: data flat or nested.
def rows2d(nested):
    data = rows.tolist() if nested else [float(v) for v in rows.ravel()]
    return {"id": "q1", "inputs": [{"name": "rows", "shape": [len(rows), 4],
                                    "datatype": "FP64", "data": data}]}
dump("rows-flat.json", rows2d(False))
dump("rows-nested.json", rows2d(True))
dump("split.json", {"dataframe_split": {"columns": names, "data": rows.tolist()}})
dump("records.json", {"dataframe_records": [dict(zip(names, map(float, r))) for r in rows]})
dump("instances.json", {"instances": [dict(zip(names, map(float, r))) for r in rows]})
dump("instances-rows.json", {"instances": rows.tolist()})
dump("expected.json", [int(p) for p in model.predict(rows)])
# Drift: the reference itself (its PSI is ~0), then the same rows with
# petal_length moved far outside the training range.
dump("ref.json", v2(x))
shifted = x.copy()
shifted[:, 2] += 10.0
dump("shifted.json", v2(shifted))
PY
echo "# iris" > "$T/iris/CARD.md"
cat > "$T/iris/ferry.yaml" <<'YAML'
name: iris
version: 1.0.0
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
  card: CARD.md
  pii: false
  reference: reference.csv
  workers: 2
  batching: {max_batch: 32, max_delay: 2ms}
  drift: {window: 150, alert: 0.2}
YAML
# The same estimator taking whole rows as one 2-D input.
mkdir -p "$T/iris-rows"
cp "$T/iris/model.joblib" "$T/iris-rows/"
cat > "$T/iris-rows/ferry.yaml" <<'YAML'
name: iris-rows
version: 1.0.0
kind: model
runtime: model
model:
  format: sklearn
  file: model.joblib
  inputs: [{name: rows, datatype: FP64, shape: [-1, 4]}]
  outputs: [{name: species, datatype: INT64, shape: [-1]}]
  max_body: 1Mi
YAML
"$FERRY" publish "$T/iris" >/dev/null
"$FERRY" publish "$T/iris-rows" >/dev/null
"$FERRY" deploy iris@1.0.0 --to env=test >/dev/null
"$FERRY" deploy iris-rows@1.0.0 --to env=test >/dev/null
"$FERRY" status --wait iris@1.0.0 --timeout 60 >/dev/null ||
  fail "iris did not become ready: $(workload_field h1 iris 1.0.0 reason 2>&1)"
"$FERRY" status --wait iris-rows@1.0.0 --timeout 60 >/dev/null ||
  fail "iris-rows did not become ready: $(workload_field h1 iris-rows 1.0.0 reason 2>&1)"
addr=$(workload_field h1 iris 1.0.0 address)
[[ "$addr" =~ ^http://127\.0\.0\.1:[0-9]+$ ]] || fail "address '$addr'"
pass "a trained scikit-learn model deploys to runtime model and is ready at $addr"

# --- the endpoint gives the in-process predictions
same_species() { # BODY: the V2 response's species output equals expected.json
  python3 - "$T/expected.json" "$1" <<'PY'
import json, sys
want = json.load(open(sys.argv[1]))
got = json.loads(sys.argv[2])
out = {o["name"]: o for o in got["outputs"]}
assert got["model_name"] in ("iris", "iris-rows") and got["id"] == "q1", got
assert out["species"]["data"] == want, (out["species"], want)
PY
}
same_predictions() { # BODY: MLflow's {"predictions": [...]}
  python3 - "$T/expected.json" "$1" <<'PY'
import json, sys
want = json.load(open(sys.argv[1]))
got = json.loads(sys.argv[2])["predictions"]
flat = [p if not isinstance(p, dict) else list(p.values())[0] for p in got]
assert flat == want, (got, want)
PY
}
same_species "$("$FERRY" predict iris --json "$T/flat.json")" || fail "ferry predict (flat data)"
same_species "$("$FERRY" predict iris-rows --json "$T/rows-flat.json")" || fail "ferry predict (2-D, flat data)"
same_species "$("$FERRY" predict iris-rows --host h1 --json - < "$T/rows-nested.json")" || fail "ferry predict (2-D, nested data, stdin)"
same_predictions "$("$FERRY" predict iris --mlflow --json "$T/split.json")" || fail "ferry predict --mlflow (dataframe_split)"
same_predictions "$("$FERRY" predict iris --mlflow --json "$T/records.json")" || fail "ferry predict --mlflow (dataframe_records)"
same_predictions "$("$FERRY" predict iris --mlflow --json "$T/instances.json")" || fail "ferry predict --mlflow (instances of records)"
same_predictions "$("$FERRY" predict iris-rows --mlflow --json "$T/instances-rows.json")" || fail "ferry predict --mlflow (instances of rows)"
# Any HTTP client at the address ferry status shows: the same answers.
raddr=$(workload_field h1 iris-rows 1.0.0 address)
same_species "$(curl -fsS -H 'Content-Type: application/json' --data-binary "@$T/rows-nested.json" "$raddr/v2/models/iris-rows/versions/1.0.0/infer")" ||
  fail "curl V2 nested at $raddr"
same_predictions "$(curl -fsS -H 'Content-Type: application/json; charset=utf-8' --data-binary "@$T/split.json" "$addr/invocations")" ||
  fail "curl /invocations at $addr"
pass "ferry predict and curl at the status address give the in-process predictions (V2 1-D columns, 2-D flat and nested; MLflow dataframe_split, dataframe_records, instances)"

# --- max_body as ferry.yaml writes it (1Mi): one byte over is a 400, the cap is served
head -c $(( (1 << 20) + 1 )) /dev/zero | tr '\0' ' ' > "$T/over-1mi.json"
code=$(curl -sS -o "$T/over.out" -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary "@$T/over-1mi.json" "$raddr/v2/models/iris-rows/infer")
[ "$code" = 400 ] && grep -q '"error":"the request body is over the 1048576-byte cap (model.max_body)"' "$T/over.out" ||
  fail "a body over max_body 1Mi: $code $(cat "$T/over.out")"
same_species "$("$FERRY" predict iris-rows --json "$T/rows-flat.json")" || fail "iris-rows after an oversized body"
pass "model.max_body: 1Mi in ferry.yaml caps the endpoint's bodies at 1 MiB"

# --- the issue's ferry.yaml example exactly as written (file, entry and
# method side by side, with their comments): the format says what is read
mkdir -p "$T/iris-example"
cp "$T/iris/model.joblib" "$T/iris/reference.csv" "$T/iris/CARD.md" "$T/iris-example/"
cat > "$T/iris-example/ferry.yaml" <<'YAML'
name: iris
version: 1.0.0
kind: model
runtime: model
model:
  format: sklearn            # sklearn: a joblib/pickle file; python: your own class
  file: model.joblib         # sklearn: the estimator file
  entry: serve.py:Model      # python: FILE:CLASS with load(dir) and predict(inputs: dict of numpy arrays) -> dict
  method: predict            # sklearn: predict (default) or predict_proba
  inputs:                    # V2 tensors; for sklearn, 1-D inputs are the feature columns, in order
    - {name: sepal_length, datatype: FP64, shape: [-1]}
    - {name: sepal_width,  datatype: FP64, shape: [-1]}
    - {name: petal_length, datatype: FP64, shape: [-1]}
    - {name: petal_width,  datatype: FP64, shape: [-1]}
  outputs:
    - {name: species, datatype: INT64, shape: [-1]}
  card: CARD.md
  pii: false
  reference: reference.csv   # training inputs (a header row of input names) for drift
  workers: 2                 # worker processes
  batching: {max_batch: 32, max_delay: 2ms}
  drift: {window: 1000, alert: 0.2}
YAML
sed -i 's/^name: iris$/name: iris-example/' "$T/iris-example/ferry.yaml"
"$FERRY" publish "$T/iris-example" >/dev/null || fail "the issue's example does not publish"
"$FERRY" deploy iris-example@1.0.0 --to env=test >/dev/null
"$FERRY" status --wait iris-example@1.0.0 --timeout 60 >/dev/null ||
  fail "iris-example did not become ready: $(workload_field h1 iris-example 1.0.0 reason 2>&1)"
same_species "$("$FERRY" predict iris-example --json "$T/flat.json" | sed 's/"iris-example"/"iris"/')" ||
  fail "ferry predict iris-example"
"$FERRY" undeploy iris-example --to env=test >/dev/null
pass "the issue's ferry.yaml example, as written, publishes, deploys and serves"

# --- make demo's model: examples/churn-model as shipped, trained by its own
# train.py (into a copy, as the demo does in place), published, deployed and
# asked with the demo's own V2 and MLflow bodies (scripts/demo.sh)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$T/churn"
cp "$ROOT/examples/churn-model/ferry.yaml" "$ROOT/examples/churn-model/CARD.md" \
  "$ROOT/examples/churn-model/train.py" "$T/churn/"
"$PY" "$T/churn/train.py" "$T/churn" >/dev/null || fail "examples/churn-model/train.py failed"
churn_version=$(sed -n 's/^version: *//p' "$T/churn/ferry.yaml")
"$FERRY" publish "$T/churn" >/dev/null || fail "examples/churn-model does not publish"
"$FERRY" deploy "churn-model@$churn_version" --to env=test >/dev/null
"$FERRY" status --wait "churn-model@$churn_version" --timeout 60 >/dev/null ||
  fail "churn-model did not become ready: $(workload_field h1 churn-model "$churn_version" reason 2>&1)"
sed -n "/^cat > \"\$DATA\/churn-request.json\" <<'JSON'$/,/^JSON$/p" "$ROOT/scripts/demo.sh" |
  sed '1d;$d' > "$T/churn-request.json"
[ -s "$T/churn-request.json" ] || fail "no churn request body in scripts/demo.sh"
churn_mlflow=$(grep -o "'{\"dataframe_split\".*}'" "$ROOT/scripts/demo.sh" | tr -d "'")
[ -n "$churn_mlflow" ] || fail "no MLflow body in scripts/demo.sh"
v2_out=$("$FERRY" predict churn-model --json "$T/churn-request.json") || fail "ferry predict churn-model: $v2_out"
ml_out=$(echo "$churn_mlflow" | "$FERRY" predict churn-model --mlflow --json -) ||
  fail "ferry predict churn-model --mlflow: $ml_out"
"$PY" - "$T/churn" "$T/churn-request.json" "$churn_mlflow" "$v2_out" "$ml_out" <<'PY' || fail "churn-model answers differ from the in-process model"
import json, sys
import joblib, numpy as np
d, req, ml_req, v2_out, ml_out = sys.argv[1:]
model = joblib.load(d + "/model.joblib")
cols = ["tenure_months", "monthly_spend", "support_tickets"]
body = {i["name"]: i["data"] for i in json.load(open(req))["inputs"]}
want = model.predict_proba(np.column_stack([body[c] for c in cols]))
out = json.loads(v2_out)["outputs"][0]
assert out["name"] == "churn_probability" and out["shape"] == list(want.shape), out
assert np.allclose(out["data"], want.ravel(), rtol=0, atol=1e-12), (out, want)
split = json.loads(ml_req)["dataframe_split"]
assert split["columns"] == cols, split
want = model.predict_proba(np.array(split["data"], dtype=float))
got = json.loads(ml_out)["predictions"]
assert np.allclose(got, want, rtol=0, atol=1e-12), (got, want)
PY
"$FERRY" undeploy churn-model --to env=test >/dev/null
pass "examples/churn-model: its train.py, publish, deploy and the demo's V2 and MLflow requests give the in-process probabilities"

# --- refusals: one line, the right exit status
rc=0; "$FERRY" predict iris >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "predict without --json exited $rc, want 2"
rc=0; "$FERRY" predict --json "$T/flat.json" >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "predict without NAME exited $rc, want 2"
expect_fail "ferry: nosuch runs on no host \(see ferry status\)" \
  "$FERRY" predict nosuch --json "$T/flat.json"
expect_fail "ferry: no host named 'h9'" "$FERRY" predict iris --host h9 --json "$T/flat.json"
echo '{"inputs": [{"name": "colour", "shape": [1], "datatype": "FP64", "data": [1]}]}' > "$T/bad.json"
expect_fail "ferry: predict iris on h1: HTTP 400: .*colour" "$FERRY" predict iris --json "$T/bad.json"
echo '{"inputs": [' > "$T/broken.json"
expect_fail "ferry: predict iris on h1: HTTP 400: " "$FERRY" predict iris --json "$T/broken.json"
expect_fail "ferry: $T/missing.json: No such file or directory" "$FERRY" predict iris --json "$T/missing.json"
same_species "$("$FERRY" predict iris --json "$T/flat.json")" || fail "a good request after bad ones"
pass "ferry predict: usage errors exit 2, unknown names, hosts and bad requests exit 1 with one line"

# --- format: python, your own class: an exception is a 500 with its text
mkdir -p "$T/echo"
cat > "$T/echo/serve.py" <<'PY'
class Model:
    def load(self, dir):
        self.offset = 1.0

    def predict(self, inputs):
        x = inputs["x"]
        if (x == 13).any():
            raise ValueError("unlucky input 13")
        return {"y": x + self.offset}
PY
cat > "$T/echo/ferry.yaml" <<'YAML'
name: echo
version: "1"
kind: model
runtime: model
model:
  format: python
  entry: serve.py:Model
  inputs: [{name: x, datatype: FP64, shape: [-1]}]
  outputs: [{name: y, datatype: FP64, shape: [-1]}]
YAML
"$FERRY" publish "$T/echo" >/dev/null
"$FERRY" deploy echo@1 --to env=test >/dev/null
"$FERRY" status --wait echo@1 --timeout 60 >/dev/null || fail "echo did not become ready: $(workload_field h1 echo 1 reason 2>&1)"
echo '{"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1, 2.5]}]}' > "$T/echo-ok.json"
echo '{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [13]}]}' > "$T/echo-13.json"
"$FERRY" predict echo --json "$T/echo-ok.json" | python3 -c "
import json, sys
d = json.load(sys.stdin)
assert d['outputs'][0]['name'] == 'y' and d['outputs'][0]['data'] == [2.0, 3.5], d" ||
  fail "ferry predict echo"
expect_fail "ferry: predict echo on h1: HTTP 500: .*unlucky input 13" "$FERRY" predict echo --json "$T/echo-13.json"
"$FERRY" predict echo --json "$T/echo-ok.json" >/dev/null || fail "echo after the exception"
"$FERRY" undeploy echo --to env=test >/dev/null
pass "a format: python model serves through ferry predict; its exception is HTTP 500 with the text, exit 1"

# --- a model whose only worker dies and cannot come back: the failed probes
# say why in the run's reason (a model that loaded once is not "loading")
mkdir -p "$T/crashy"
cat > "$T/crashy/serve.py" <<PY
import os

class Model:
    def load(self, dir):
        if os.path.exists("$T/crash.mark"):
            os._exit(3)

    def predict(self, inputs):
        if (inputs["x"] == 13).any():
            os._exit(3)
        return {"y": inputs["x"]}
PY
sed 's/^name: echo$/name: crashy/' "$T/echo/ferry.yaml" > "$T/crashy/ferry.yaml"
"$FERRY" publish "$T/crashy" >/dev/null
"$FERRY" deploy crashy@1 --to env=test >/dev/null
"$FERRY" status --wait crashy@1 --timeout 60 >/dev/null || fail "crashy did not become ready: $(workload_field h1 crashy 1 reason 2>&1)"
touch "$T/crash.mark"
expect_fail "ferry: predict crashy on h1: HTTP 500: worker exited \(status 3\)" "$FERRY" predict crashy --json "$T/echo-13.json"
crash_reason() {
  "$FERRY" events --host h1 --limit 50 --json | python3 -c "
import json, sys
sys.exit(not any(e['name'] == 'crashy' and e['state'] == 'unhealthy' and
                 e['reason'].endswith('GET /v2/health/ready: 503, no model worker is ready (loading, or restarting after a crash)')
                 for e in json.load(sys.stdin)['events']))"
}
wait_until 30 crash_reason || fail "no unhealthy event naming the restarting worker: $("$FERRY" events --host h1 --limit 10 2>&1)"
rm -f "$T/crash.mark"
"$FERRY" undeploy crashy --to env=test >/dev/null
pass "a worker that dies and cannot load again: unhealthy, the probe's reason says no worker is ready (restarting after a crash)"

# --- drift: a window not yet full warns of nothing, the reference keeps
# the run healthy, shifted inputs warn
psi_of() { # INPUT: the newest ferry_model_drift_psi the registry has for it
  "$FERRY" metrics iris --json | python3 -c "
import json, sys
for e in json.load(sys.stdin)['metrics']:
    for m in e['metrics']:
        if m['name'] == 'ferry_model_drift_psi' and m['labels'].get('input') == sys.argv[1]:
            print(m['value']); sys.exit(0)
sys.exit(1)" "$1"
}
psi_below() { v=$(psi_of "$1") && python3 -c "import sys; sys.exit(not float(sys.argv[1]) < float(sys.argv[2]))" "$v" "$2"; }
psi_above() { v=$(psi_of "$1") && python3 -c "import sys; sys.exit(not float(sys.argv[1]) > float(sys.argv[2]))" "$v" "$2"; }
# The few rows served so far give a large PSI over a window of 150...
wait_until 20 psi_above petal_width 0.2 || fail "PSI of a few rows: $(psi_of petal_width 2>&1)"
# ...which is no warning: probes (every second) keep the reason plain.
not_warned() { [[ "$(workload_field h1 iris 1.0.0 reason)" != warning:* ]]; }
end=$(( $(date +%s) + 3 ))
while [ "$(date +%s)" -lt "$end" ]; do
  not_warned || fail "a warning before a window was served: $(workload_field h1 iris 1.0.0 reason)"
done
"$FERRY" predict iris --json "$T/ref.json" >/dev/null || fail "reference rows"
wait_until 20 psi_below petal_length 0.1 || fail "PSI of the reference rows: $(psi_of petal_length 2>&1)"
# The registry has metrics collected after those rows; the health probe
# reads the same gauge every second.
reason=$(workload_field h1 iris 1.0.0 reason)
[[ "$reason" != warning:* ]] || fail "a warning for inputs drawn from the reference: $reason"
"$FERRY" predict iris --json "$T/shifted.json" >/dev/null || fail "shifted rows"
warned() { workload_field h1 iris 1.0.0 reason | grep -q '^warning: drift: petal_length psi [0-9.]* > 0.2'; }
wait_until 20 warned || fail "no drift warning: $(workload_field h1 iris 1.0.0 reason)"
workload_state_is h1 iris 1.0.0 running || fail "a drifting model is not running"
"$FERRY" status | grep -E '^h1 +iris +1\.0\.0 +running .*warning: drift: petal_length' >/dev/null ||
  fail "ferry status does not show the warning: $("$FERRY" status)"
wait_until 20 psi_above petal_length 0.2 || fail "drift gauge $(psi_of petal_length 2>&1) is not above the alert"
"$FERRY" metrics iris | grep -E 'ferry_model_drift_psi +gauge .*input=petal_length' >/dev/null ||
  fail "ferry metrics does not show the drift gauge"
metrics_warn() { "$FERRY" metrics iris | grep -Eq '^h1 +1\.0\.0 +warning: drift: petal_length psi [0-9.]+ > 0\.2$'; }
wait_until 20 metrics_warn || fail "ferry metrics does not show the drift warning: $("$FERRY" metrics iris | grep -i drift)"
"$FERRY" metrics iris | grep -q 'process_resident_memory_bytes' || fail "no process metrics"
pass "no warning before a window is served; reference inputs keep PSI under 0.1; shifted ones warn in ferry status and in ferry metrics (the gauge and the warning line)"

# --- back to the reference: the warning clears
"$FERRY" predict iris --json "$T/ref.json" >/dev/null || fail "reference rows again"
cleared() { [ "$(workload_field h1 iris 1.0.0 reason)" = healthy ]; }
wait_until 20 cleared || fail "the warning stayed: $(workload_field h1 iris 1.0.0 reason)"
metrics_clear() { ! "$FERRY" metrics iris | grep -q 'warning: drift'; }
wait_until 20 metrics_clear || fail "ferry metrics still warns: $("$FERRY" metrics iris | grep warning)"
pass "the drift warning clears once the window is back to the reference"

# --- undeploy stops the server and its workers
"$FERRY" undeploy iris --to env=test >/dev/null
gone() { ! workload_field h1 iris 1.0.0 state >/dev/null 2>&1; }
wait_until 20 gone || fail "iris still reported after undeploy"
none_left() { ! runs_with_env "$T/h1" FERRY_WORKLOAD=iris; }
wait_until 20 none_left || fail "model server processes left after undeploy"
pass "undeploy stops the model server and its workers"

# --- the plugin refuses a server others could replace
cp -a "$FERRY_PLUGINS" "$T/plugins"
chmod g+w "$T/plugins/model/ferry-model-server"
start_agent h2 "$T/h2" --label env=loose --trust "$T/ops.pub" --plugins "$T/plugins"
"$FERRY" deploy iris@1.0.0 --to env=loose >/dev/null
refused() { workload_field h2 iris 1.0.0 reason | grep -q 'could not start'; }
wait_until 20 refused || fail "h2 ran a group-writable server: $(workload_field h2 iris 1.0.0 reason 2>&1)"
grep -q 'model: refusing .*ferry-model-server: writable by group or others' "$T/agent-h2.log" ||
  fail "no refusal in the agent's log"
pass "the model plugin refuses a group-writable ferry-model-server"

# --- FERRY_MODEL_ADDR must be an IP address
FERRY_MODEL_ADDR=model.example start_agent h3 "$T/h3" --label env=addr --trust "$T/ops.pub"
"$FERRY" deploy iris@1.0.0 --to env=addr >/dev/null
bad_addr() { workload_field h3 iris 1.0.0 reason | grep -q 'could not start'; }
wait_until 20 bad_addr || fail "h3 started with a bad FERRY_MODEL_ADDR: $(workload_field h3 iris 1.0.0 reason 2>&1)"
grep -q "FERRY_MODEL_ADDR 'model.example' is not an IP address" "$T/agent-h3.log" ||
  fail "no FERRY_MODEL_ADDR refusal in the agent's log"
pass "the model plugin refuses a FERRY_MODEL_ADDR that is not an IP address"
