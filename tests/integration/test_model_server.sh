#!/usr/bin/env bash
# ferry-model-server on its own (no agent): an iris classifier trained here
# with scikit-learn answers V2 infer (flat and nested data) and MLflow
# /invocations (dataframe_split, dataframe_records, instances) with the
# predictions the in-process model gives; every bad request gets its status
# and a message naming the problem, and the server still answers after; a
# wrong content type is 415, an unknown model or version 404; /metrics is
# clean Prometheus text; a bad configuration is one line and exit 2; SIGTERM
# stops it with its workers.
source "$(dirname "$0")/lib.sh"

SERVER="$FERRY_BIN/plugins/model/ferry-model-server"
PY=/usr/bin/python3
[ -x "$SERVER" ] || fail "no $SERVER"
[ -f "$FERRY_BIN/plugins/model/worker.py" ] || fail "no worker.py next to the server"
"$PY" -c 'import sklearn, joblib, numpy' || fail "$PY lacks scikit-learn/joblib/numpy"
command -v promtool >/dev/null || fail "promtool is missing (Debian package prometheus)"

# --- the model, trained here; the expected answers from the model itself
M="$T/model"
mkdir -p "$M"
"$PY" - "$M" <<'EOF'
import json, sys
import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
d = sys.argv[1]
X, y = load_iris(return_X_y=True)
model = LogisticRegression(max_iter=1000).fit(X, y)
joblib.dump(model, d + "/model.joblib")
rows = X[::7]                     # 22 rows of all three species
cols = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
n = len(rows)
flat = lambda j: [float(v) for v in rows[:, j]]
def v2(inputs): return json.dumps({"id": "req-7", "inputs": inputs})
bodies = {
    "v2_flat": v2([{"name": c, "shape": [n], "datatype": "FP64", "data": flat(j)}
                   for j, c in enumerate(cols)]),
    "v2_matrix_flat": v2([{"name": "features", "shape": [n, 4], "datatype": "FP64",
                           "data": [float(v) for v in rows.reshape(-1)]}]),
    "v2_matrix_nested": v2([{"name": "features", "shape": [n, 4], "datatype": "FP64",
                             "data": rows.tolist()}]),
    "ml_split": json.dumps({"dataframe_split": {"columns": cols, "data": rows.tolist()}}),
    "ml_records": json.dumps({"dataframe_records": [dict(zip(cols, r)) for r in rows.tolist()]}),
    "ml_instances": json.dumps({"instances": [dict(zip(cols, r)) for r in rows.tolist()]}),
    "ml_instances_rows": json.dumps({"instances": rows.tolist()}),
    "ml_inputs_cols": json.dumps({"inputs": {c: flat(j) for j, c in enumerate(cols)}}),
    "ml_inputs_records": json.dumps({"inputs": [dict(zip(cols, r)) for r in rows.tolist()]}),
    "ml_inputs_rows": json.dumps({"inputs": rows.tolist()}),
}
# Fitted on a DataFrame: the estimator knows its column names.
import pandas
df_model = LogisticRegression(max_iter=1000).fit(pandas.DataFrame(X, columns=cols), y)
joblib.dump(df_model, d + "/model_df.joblib")
bodies["v2_input0"] = v2([{"name": "input-0", "shape": [n, 4], "datatype": "FP64",
                           "data": rows.tolist()}])
for k, v in bodies.items():
    open(d + "/" + k + ".json", "w").write(v)
json.dump([int(p) for p in model.predict(rows)], open(d + "/expected.json", "w"))
EOF

IO='"inputs":[{"name":"sepal_length","datatype":"FP64","shape":[-1]},{"name":"sepal_width","datatype":"FP64","shape":[-1]},{"name":"petal_length","datatype":"FP64","shape":[-1]},{"name":"petal_width","datatype":"FP64","shape":[-1]}],"outputs":[{"name":"species","datatype":"INT64","shape":[-1]}]'
SPEC_COLS='{"name":"iris","version":"1.0.0","kind":"model","runtime":"model","model":{"format":"sklearn","file":"model.joblib",'"$IO"',"workers":2,"batching":{"max_batch":16,"max_delay":"500us"},"max_body":65536}}'
SPEC_MX='{"name":"irismx","version":"2","kind":"model","runtime":"model","model":{"format":"sklearn","file":"model.joblib","inputs":[{"name":"features","datatype":"FP64","shape":[-1,4]}],"outputs":[{"name":"species","datatype":"INT64","shape":[-1]}]}}'

# start_server NAME SPEC: sets PORT_<NAME> and PID_<NAME>; waits until ready.
start_server() {
  local name=$1 spec=$2 log="$T/$1.log"
  : > "$log"
  "$SERVER" --dir "$M" --port 0 --addr 127.0.0.1 --spec-json "$spec" --python "$PY" 2>>"$log" &
  local pid=$!
  PIDS+=("$pid")
  wait_until 10 grep -q 'listening on' "$log" || fail "$name did not listen: $(cat "$log")"
  local port
  port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log" | head -n 1 | sed 's/.*://')
  # Live answers while the workers load; ready once one has.
  curl -fsS --max-time 2 "http://127.0.0.1:$port/v2/health/live" >/dev/null ||
    fail "$name: /v2/health/live did not answer"
  wait_until 60 curl -fsS --max-time 2 "http://127.0.0.1:$port/v2/health/ready" ||
    fail "$name did not become ready: $(cat "$log")"
  printf -v "PORT_$name" '%s' "$port"
  printf -v "PID_$name" '%s' "$pid"
}

# call METHOD URL [CONTENT_TYPE BODYFILE]: sets STATUS; the body is in $T/resp.
call() {
  local method=$1 url=$2 ct=${3:-} file=${4:-}
  local args=(-sS --max-time 20 -o "$T/resp" -w '%{http_code}' -X "$method")
  [ -n "$ct" ] && args+=(-H "Content-Type: $ct")
  [ -n "$file" ] && args+=(--data-binary "@$file")
  STATUS=$(curl "${args[@]}" "$url") || fail "curl $method $url failed"
}

# json_check PYTHON-EXPR: evaluated with r (the response) and e (expected).
json_check() {
  "$PY" -c '
import json, sys
r = json.load(open(sys.argv[1])); e = json.load(open(sys.argv[2]))
ok = eval("(" + sys.argv[3] + ")")
sys.exit(0 if ok else 1)' "$T/resp" "$M/expected.json" "$1"
}

start_server cols "$SPEC_COLS"
start_server mx "$SPEC_MX"
C="http://127.0.0.1:$PORT_cols"
X="http://127.0.0.1:$PORT_mx"

# --- metadata and health
call GET "$C/v2"
[ "$STATUS" = 200 ] && json_check 'r["name"] == "ferry" and r["extensions"] == [] and r["version"]' ||
  fail "GET /v2: $STATUS $(cat "$T/resp")"
call GET "$C/v2/models/iris"
[ "$STATUS" = 200 ] && json_check 'r["name"] == "iris" and r["versions"] == ["1.0.0"] and r["platform"] == "sklearn_joblib" and
  [i["name"] for i in r["inputs"]] == ["sepal_length","sepal_width","petal_length","petal_width"]
  and r["inputs"][0]["datatype"] == "FP64" and r["inputs"][0]["shape"] == [-1]
  and r["outputs"] == [{"name": "species", "datatype": "INT64", "shape": [-1]}]' ||
  fail "GET /v2/models/iris: $STATUS $(cat "$T/resp")"
call GET "$C/v2/models/iris/versions/1.0.0"
[ "$STATUS" = 200 ] || fail "model metadata by version: $STATUS"
call GET "$C/v2/models/iris/ready"
[ "$STATUS" = 200 ] && json_check 'r == {"name": "iris", "ready": True}' || fail "model ready: $STATUS"
call GET "$C/v2/models/iris/versions/1.0.0/ready"
[ "$STATUS" = 200 ] || fail "model version ready: $STATUS"
call GET "$C/ping"
[ "$STATUS" = 200 ] || fail "/ping: $STATUS"
call GET "$C/health"
[ "$STATUS" = 200 ] || fail "/health: $STATUS"
pass "server and model metadata, live, ready, ping, health"

# --- the same predictions as the in-process model, every protocol and form
call POST "$C/v2/models/iris/infer" application/json "$M/v2_flat.json"
[ "$STATUS" = 200 ] && json_check 'r["model_name"] == "iris" and r["model_version"] == "1.0.0"
  and r["id"] == "req-7" and len(r["outputs"]) == 1 and r["outputs"][0]["name"] == "species"
  and r["outputs"][0]["datatype"] == "INT64" and r["outputs"][0]["shape"] == [len(e)]
  and r["outputs"][0]["data"] == e' || fail "V2 flat: $STATUS $(cat "$T/resp")"
call POST "$C/v2/models/iris/versions/1.0.0/infer" application/json "$M/v2_flat.json"
[ "$STATUS" = 200 ] && json_check 'r["outputs"][0]["data"] == e' || fail "V2 with version: $STATUS"
pass "V2 infer (1-D columns, flat data) gives the in-process predictions"
for body in v2_matrix_flat v2_matrix_nested; do
  call POST "$X/v2/models/irismx/infer" application/json "$M/$body.json"
  [ "$STATUS" = 200 ] && json_check 'r["model_name"] == "irismx" and r["outputs"][0]["data"] == e' ||
    fail "$body: $STATUS $(cat "$T/resp")"
done
pass "V2 infer (one 2-D input, flat and nested data) gives the in-process predictions"
for body in ml_split ml_records ml_instances ml_instances_rows ml_inputs_cols ml_inputs_records ml_inputs_rows; do
  call POST "$C/invocations" application/json "$M/$body.json"
  [ "$STATUS" = 200 ] && json_check 'r == {"predictions": e}' || fail "$body: $STATUS $(cat "$T/resp")"
done
call POST "$C/invocations" "application/json; charset=utf-8" "$M/ml_split.json"
[ "$STATUS" = 200 ] && json_check 'r == {"predictions": e}' || fail "charset=utf-8: $STATUS"
call POST "$X/invocations" application/json "$M/ml_split.json"
[ "$STATUS" = 200 ] && json_check 'r == {"predictions": e}' || fail "split on the 2-D model: $STATUS"
pass "/invocations (dataframe_split, dataframe_records, instances, inputs) gives the in-process predictions"

# --- no declared inputs: the fitted estimator names what it takes
start_server min '{"name":"irismin","version":"1","kind":"model","runtime":"model","model":{"format":"sklearn","file":"model.joblib"}}'
start_server df '{"name":"irisdf","version":"1","kind":"model","runtime":"model","model":{"format":"sklearn","file":"model_df.joblib"}}'
N="http://127.0.0.1:$PORT_min"
D="http://127.0.0.1:$PORT_df"
call GET "$N/v2/models/irismin"
[ "$STATUS" = 200 ] && json_check 'r["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]' ||
  fail "inferred signature (array-fitted): $STATUS $(cat "$T/resp")"
call POST "$N/v2/models/irismin/infer" application/json "$M/v2_input0.json"
[ "$STATUS" = 200 ] && json_check 'r["outputs"][0]["name"] == "predict" and r["outputs"][0]["data"] == e' ||
  fail "infer on the inferred 2-D input: $STATUS $(cat "$T/resp")"
call POST "$N/invocations" application/json "$M/ml_instances_rows.json"
[ "$STATUS" = 200 ] && json_check 'r == {"predictions": e}' || fail "/invocations on the inferred input: $STATUS"
call POST "$N/v2/models/irismin/infer" application/json "$M/v2_flat.json"
[ "$STATUS" = 400 ] && grep -q "sepal_length" "$T/resp" || fail "an input the estimator does not take: $STATUS $(cat "$T/resp")"
call GET "$D/v2/models/irisdf"
[ "$STATUS" = 200 ] && json_check '[i["name"] for i in r["inputs"]] == ["sepal_length","sepal_width","petal_length","petal_width"] and r["inputs"][0]["shape"] == [-1]' ||
  fail "inferred signature (DataFrame-fitted): $STATUS $(cat "$T/resp")"
call POST "$D/v2/models/irisdf/infer" application/json "$M/v2_flat.json"
[ "$STATUS" = 200 ] && json_check 'r["outputs"][0]["data"] == e' || fail "infer on the inferred columns: $STATUS $(cat "$T/resp")"
call POST "$D/invocations" application/json "$M/ml_records.json"
[ "$STATUS" = 200 ] && json_check 'r == {"predictions": e}' || fail "/invocations on the inferred columns: $STATUS"
pass "without model.inputs the fitted estimator's signature is served and checked (a 2-D input, or its DataFrame columns)"

# --- bad requests: status and a message naming the problem, then a good one
ROW='"shape":[1],"datatype":"FP64","data":[5.1]'
good_v2() {
  call POST "$C/v2/models/iris/infer" application/json "$M/v2_flat.json"
  [ "$STATUS" = 200 ] && json_check 'r["outputs"][0]["data"] == e' ||
    fail "good request after '$1' failed: $STATUS $(cat "$T/resp")"
}
# bad URL CONTENT_TYPE STATUS PATTERN BODY
bad() {
  local url=$1 ct=$2 want=$3 pattern=$4 body=$5
  printf '%s' "$body" > "$T/bad.json"
  call POST "$url" "$ct" "$T/bad.json"
  [ "$STATUS" = "$want" ] || fail "'$body' to $url: status $STATUS, expected $want: $(cat "$T/resp")"
  "$PY" -c 'import json,sys; m=json.load(open(sys.argv[1]))["error"]; assert isinstance(m, str)' \
    "$T/resp" || fail "'$body': answer is not {\"error\": ...}: $(cat "$T/resp")"
  grep -Eq -- "$pattern" "$T/resp" || fail "'$body': message $(cat "$T/resp") lacks /$pattern/"
  good_v2 "$body"
}
INF="$C/v2/models/iris/infer"
J=application/json
bad "$INF" $J 400 "malformed JSON" '{"inputs": ['
bad "$INF" $J 400 "not a JSON object" '[1, 2]'
bad "$INF" $J 400 "'inputs' is missing" '{"id": "x"}'
bad "$INF" $J 400 "input 'petal_width': missing" \
  '{"inputs":[{"name":"sepal_length",'"$ROW"'},{"name":"sepal_width",'"$ROW"'},{"name":"petal_length",'"$ROW"'}]}'
bad "$INF" $J 400 "input 'colour': unknown input" \
  '{"inputs":[{"name":"colour",'"$ROW"'}]}'
bad "$INF" $J 400 "input 'sepal_length': given twice" \
  '{"inputs":[{"name":"sepal_length",'"$ROW"'},{"name":"sepal_length",'"$ROW"'}]}'
bad "$INF" $J 400 "input 'sepal_length': datatype FP32, the model takes FP64" \
  '{"inputs":[{"name":"sepal_length","shape":[1],"datatype":"FP32","data":[5.1]}]}'
bad "$INF" $J 400 "input 'sepal_length': shape has 2 dimensions, the model takes \[-1\]" \
  '{"inputs":[{"name":"sepal_length","shape":[1,1],"datatype":"FP64","data":[5.1]}]}'
bad "$INF" $J 400 "input 'sepal_length': data has 1 elements, shape \[2\] needs 2" \
  '{"inputs":[{"name":"sepal_length","shape":[2],"datatype":"FP64","data":[5.1]}]}'
bad "$INF" $J 400 "input 'sepal_length': element 0: \\\\\"x\\\\\" is not a number" \
  '{"inputs":[{"name":"sepal_length","shape":[1],"datatype":"FP64","data":["x"]}]}'
bad "$INF" $J 400 "input 'sepal_width': 2 rows \(first dimension\), input 'sepal_length' has 1" \
  '{"inputs":[{"name":"sepal_length",'"$ROW"'},{"name":"sepal_width","shape":[2],"datatype":"FP64","data":[1,2]},{"name":"petal_length",'"$ROW"'},{"name":"petal_width",'"$ROW"'}]}'
bad "$INF" $J 400 "output 'proba': unknown output" \
  '{"inputs":[{"name":"sepal_length",'"$ROW"'},{"name":"sepal_width",'"$ROW"'},{"name":"petal_length",'"$ROW"'},{"name":"petal_width",'"$ROW"'}],"outputs":[{"name":"proba"}]}'
bad "$X/v2/models/irismx/infer" $J 400 "input 'features': shape \[1,3\] does not match the model's \[-1,4\]" \
  '{"inputs":[{"name":"features","shape":[1,3],"datatype":"FP64","data":[1,2,3]}]}'
bad "$X/v2/models/irismx/infer" $J 400 "input 'features': nested data is not rectangular" \
  '{"inputs":[{"name":"features","shape":[2,4],"datatype":"FP64","data":[[1,2,3,4],[5,6,7]]}]}'
# Over the body cap (64 KiB here): refused without being read into memory.
"$PY" -c 'import sys; sys.stdout.write("{\"inputs\":[" + " " * 70000 + "]}")' > "$T/big.json"
call POST "$INF" $J "$T/big.json"
[ "$STATUS" = 400 ] && grep -q "over the 65536-byte cap" "$T/resp" || fail "big body: $STATUS $(cat "$T/resp")"
good_v2 "big body"
# MLflow's forms refused the same way.
IV="$C/invocations"
bad "$IV" $J 400 "malformed JSON" '{"dataframe_split": '
bad "$IV" $J 400 "none of dataframe_split" '{}'
bad "$IV" $J 400 "unknown key 'rows'" '{"rows": []}'
bad "$IV" $J 400 "column 'colour': unknown column" \
  '{"dataframe_split":{"columns":["sepal_length","sepal_width","petal_length","colour"],"data":[[1,2,3,4]]}}'
bad "$IV" $J 400 "dataframe_records\[0\]: column 'petal_width' is missing" \
  '{"dataframe_records":[{"sepal_length":1,"sepal_width":2,"petal_length":3}]}'
bad "$IV" $J 400 "column 'sepal_width': element 0: true is not a number" \
  '{"dataframe_records":[{"sepal_length":1,"sepal_width":true,"petal_length":3,"petal_width":4}]}'
bad "$IV" $J 400 "instances\[0\]: wrong number of values, the model takes 4 columns" \
  '{"instances":[[1,2,3]]}'
bad "$IV" "text/csv" 415 "Content-Type 'text/csv' is not supported" 'a,b\n1,2'
bad "$IV" "application/json; charset=latin-1" 415 "charset 'latin-1' is not supported" '{"instances":[[1,2,3,4]]}'
pass "every bad request: 400 or 415 with a message naming the input or column; a good one succeeds after each"

# --- unknown model or version: 404; wrong method 405; unknown route 404
bad "$C/v2/models/nope/infer" $J 404 "model 'nope' is not served here" "$(cat "$M/v2_flat.json")"
bad "$C/v2/models/iris/versions/9.9/infer" $J 404 "model 'iris' has no version '9.9'" "$(cat "$M/v2_flat.json")"
call GET "$C/v2/models/nope"
[ "$STATUS" = 404 ] && grep -q "model 'nope' is not served here" "$T/resp" || fail "metadata of nope: $STATUS"
call GET "$C/v2/models/iris/versions/9.9"
[ "$STATUS" = 404 ] && grep -q "no version '9.9'" "$T/resp" || fail "metadata of 9.9: $STATUS"
call GET "$C/v2/models/iris/versions/9.9/ready"
[ "$STATUS" = 404 ] || fail "ready of 9.9: $STATUS"
call GET "$C/v2/models/iris/infer"
[ "$STATUS" = 405 ] && grep -q "method GET is not allowed" "$T/resp" || fail "GET infer: $STATUS"
call POST "$C/v2/health/ready" $J "$M/v2_flat.json"
[ "$STATUS" = 405 ] || fail "POST ready: $STATUS"
call GET "$C/nowhere"
[ "$STATUS" = 404 ] && grep -q "no route /nowhere" "$T/resp" || fail "unknown route: $STATUS"
good_v2 "404s"
pass "unknown model or version 404, wrong method 405, unknown route 404"

# --- metrics: counted by protocol and outcome, clean for promtool
call GET "$C/metrics"
[ "$STATUS" = 200 ] || fail "/metrics: $STATUS"
promtool check metrics < "$T/resp" > "$T/promtool.out" 2>&1 || fail "promtool: $(cat "$T/promtool.out")"
cp "$T/resp" "$T/metrics.txt"
grep -Eq '^ferry_model_requests_total\{model="iris",version="1.0.0",protocol="v2",outcome="ok"\} [0-9]+' "$T/metrics.txt" ||
  fail "no v2 ok count: $(grep requests_total "$T/metrics.txt")"
grep -Eq '^ferry_model_requests_total\{model="iris",version="1.0.0",protocol="mlflow",outcome="bad_request"\} [1-9]' "$T/metrics.txt" ||
  fail "no mlflow bad_request count"
grep -Eq '^ferry_model_requests_total\{model="iris",version="1.0.0",protocol="v2",outcome="not_found"\} 2$' "$T/metrics.txt" ||
  fail "not_found count is not 2: $(grep not_found "$T/metrics.txt")"
for fam in ferry_model_request_duration_seconds_count ferry_model_queue_seconds_count \
           ferry_model_compute_seconds_count ferry_model_batch_size_count; do
  grep -Eq "^$fam\{.*\} [1-9]" "$T/metrics.txt" || fail "$fam missing or zero"
done
# Ready with the first worker; the second loads after it.
cols_both() { curl -fsS --max-time 2 "$C/metrics" | grep -Eq '^ferry_model_workers_ready\{model="iris",version="1.0.0"\} 2$'; }
wait_until 30 cols_both || fail "workers_ready is not 2: $(curl -s "$C/metrics" | grep workers_ready)"
grep -Eq '^ferry_model_worker_restarts_total\{model="iris",version="1.0.0"\} 0$' "$T/metrics.txt" || fail "restarts not 0"
call GET "$C/metrics?format=json"
[ "$STATUS" = 200 ] && json_check 'any(f["name"] == "ferry_model_requests_total" for f in r["families"])' ||
  fail "/metrics?format=json: $STATUS"
pass "/metrics counts requests by protocol and outcome, histograms and gauges; promtool accepts it"

# --- a python model: raising is a 500 with its text; dying is a 500, the
# worker is restarted and counted, the endpoint keeps answering; concurrent
# requests ride in shared batches and each gets its own answer.
cat > "$M/serve.py" <<'PYEOF'
import os, time
class Model:
    def load(self, d):
        self.k = 2.0
    def predict(self, inputs):
        x = inputs["x"]
        if (x == 666).any():
            raise ValueError("marker 666 refused")
        if (x == 999).any():
            os._exit(3)
        if (x == 777).any():
            import ctypes
            ctypes.string_at(0)    # SIGSEGV
        if (x >= 100).any():
            # Slow enough that concurrent requests queue while both workers
            # are busy, however slowly the test's clients start.
            time.sleep(0.4)
        return {"y": x * self.k}
PYEOF
SPEC_PY='{"name":"echo","version":"1","kind":"model","runtime":"model","model":{"format":"python","entry":"serve.py:Model","inputs":[{"name":"x","datatype":"FP64","shape":[-1]}],"outputs":[{"name":"y","datatype":"FP64","shape":[-1]}],"workers":2,"batching":{"max_batch":64,"max_delay":"20ms"}}}'
start_server py "$SPEC_PY"
Y="http://127.0.0.1:$PORT_py"
xbody() { printf '{"inputs":[{"name":"x","shape":[1],"datatype":"FP64","data":[%s]}]}' "$1" > "$T/x.json"; }
good_py() {
  xbody 21
  call POST "$Y/v2/models/echo/infer" application/json "$T/x.json"
  [ "$STATUS" = 200 ] && json_check 'r["outputs"][0]["data"] == [42.0]' ||
    fail "echo after $1: $STATUS $(cat "$T/resp")"
}
good_py start
both_ready() {
  curl -fsS --max-time 2 "$Y/metrics" | grep -Eq '^ferry_model_workers_ready\{model="echo",version="1"\} 2$'
}
wait_until 30 both_ready || fail "the second worker did not load: $(curl -s "$Y/metrics" | grep workers_ready)"
xbody 666
call POST "$Y/v2/models/echo/infer" application/json "$T/x.json"
[ "$STATUS" = 500 ] && grep -q "marker 666 refused" "$T/resp" || fail "raising model: $STATUS $(cat "$T/resp")"
good_py "a raise"
xbody 999
call POST "$Y/v2/models/echo/infer" application/json "$T/x.json"
[ "$STATUS" = 500 ] || fail "dying model: $STATUS $(cat "$T/resp")"
# The other worker keeps the endpoint ready while this one restarts.
call GET "$Y/v2/health/ready"
[ "$STATUS" = 200 ] || fail "not ready with one of two workers dead: $STATUS"
good_py "a worker died"
wait_until 30 both_ready || fail "the dead worker did not come back: $(curl -s "$Y/metrics" | grep workers_ready)"
xbody 777
call POST "$Y/v2/models/echo/infer" application/json "$T/x.json"
[ "$STATUS" = 500 ] && json_check 'isinstance(r["error"], str)' || fail "segfaulting model: $STATUS $(cat "$T/resp")"
call GET "$Y/v2/health/ready"
[ "$STATUS" = 200 ] || fail "not ready after a segfault: $STATUS"
good_py "a worker segfaulted"
restarted() {
  curl -fsS --max-time 2 "$Y/metrics" |
    grep -Eq '^ferry_model_worker_restarts_total\{model="echo",version="1"\} ([2-9]|[1-9][0-9]+)$'
}
wait_until 30 restarted || fail "restart not counted: $(curl -s "$Y/metrics" | grep restarts)"
wait_until 30 curl -fsS --max-time 2 "$Y/v2/health/ready" || fail "not ready after a restart"
good_py "the restart"
pass "a python model that raises: 500 with its text; one that dies (os._exit, SIGSEGV): 500, ready on the other worker, restarted, both restarts counted, served after"

N=24
cpids=()
for i in $(seq 1 $N); do
  printf '{"inputs":[{"name":"x","shape":[1],"datatype":"FP64","data":[%d]}]}' "$((100 + i))" > "$T/c$i.json"
  curl -sS --max-time 20 -o "$T/c$i.out" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "@$T/c$i.json" "$Y/v2/models/echo/infer" > "$T/c$i.status" &
  cpids+=($!)
done
for p in "${cpids[@]}"; do wait "$p" || fail "a concurrent request failed"; done
for i in $(seq 1 $N); do
  [ "$(cat "$T/c$i.status")" = 200 ] || fail "concurrent request $i: $(cat "$T/c$i.status")"
  "$PY" -c 'import json,sys; assert json.load(open(sys.argv[1]))["outputs"][0]["data"] == [2.0*int(sys.argv[2])]' \
    "$T/c$i.out" "$((100 + i))" || fail "concurrent request $i got another's answer: $(cat "$T/c$i.out")"
done
curl -fsS "$Y/metrics" > "$T/py.metrics"
ones=$(grep -E '^ferry_model_batch_size_bucket\{model="echo",version="1",le="1"\}' "$T/py.metrics" | awk '{print $2}')
total=$(grep -E '^ferry_model_batch_size_count\{model="echo",version="1"\}' "$T/py.metrics" | awk '{print $2}')
[ -n "$ones" ] && [ -n "$total" ] && [ "$total" -gt "$ones" ] ||
  fail "no batch above 1 row under concurrent load ($ones of $total in batches of 1)"
pass "concurrent requests are batched ($((total - ones)) of $total rode in batches above 1 row), each gets its own answer"

# --- every V2 datatype, flat and nested, through a python model that
# returns its inputs; the outputs filter and parameters; FP32 and FP16 come
# back as the numbers sent
cat > "$M/ident.py" <<'PYEOF'
class Model:
    def predict(self, inputs):
        return {"o_" + k: v for k, v in inputs.items()}
PYEOF
"$PY" - "$M" <<'EOF'
import json, sys
d = sys.argv[1]
vals = {"BOOL": [True, False, False, True], "UINT8": [0, 255, 1, 2], "UINT16": [0, 65535, 1, 2],
        "UINT32": [0, 4294967295, 1, 2], "UINT64": [0, 9223372036854775807, 1, 2],
        "INT8": [-128, 127, 0, 1], "INT16": [-32768, 32767, 0, 1],
        "INT32": [-2147483648, 2147483647, 0, 1],
        "INT64": [-9223372036854775808, 9223372036854775807, 0, 1],
        "FP16": [1.5, -2.25, 0.1, 3.14], "FP32": [0.1, -2.25, 3.4e38, 1e-07],
        "FP64": [0.1, -2.25, 1e300, 5e-324], "BYTES": ["a", "h\u00e9llo", "", "x y"]}
spec = {"name": "ident", "version": "7", "kind": "model", "runtime": "model",
        "model": {"format": "python", "entry": "ident.py:Model",
                  "inputs": [{"name": t.lower(), "datatype": t, "shape": [-1, 2]} for t in vals],
                  "outputs": [{"name": "o_" + t.lower(), "datatype": t, "shape": [-1, 2]} for t in vals]}}
open(d + "/ident.spec", "w").write(json.dumps(spec))
json.dump(vals, open(d + "/ident.vals", "w"))
flat = [{"name": t.lower(), "datatype": t, "shape": [2, 2], "data": v} for t, v in vals.items()]
nested = [{"name": t.lower(), "datatype": t, "shape": [2, 2], "data": [v[:2], v[2:]],
           "parameters": {"content_type": "np"}} for t, v in vals.items()]
open(d + "/ident_flat.json", "w").write(json.dumps({"id": "all", "inputs": flat}))
open(d + "/ident_nested.json", "w").write(json.dumps(
    {"inputs": nested, "parameters": {"priority": 1, "note": "x", "fast": True},
     "outputs": [{"name": "o_fp32"}, {"name": "o_bytes", "parameters": {"binary_data": False}}]}))
EOF
start_server ident "$(cat "$M/ident.spec")"
I="http://127.0.0.1:$PORT_ident"
same_vals() {
  "$PY" -c '
import json, sys
r = json.load(open(sys.argv[1])); vals = json.load(open(sys.argv[2]))
want = set(sys.argv[3].split(",")) if len(sys.argv) > 3 else set("o_" + t.lower() for t in vals)
got = {o["name"]: o for o in r["outputs"]}
assert set(got) == want, (sorted(got), sorted(want))
for t, v in vals.items():
    o = got.get("o_" + t.lower())
    if o is None: continue
    assert o["datatype"] == t and o["shape"] == [2, 2], o
    assert o["data"] == v, (t, o["data"], v)
' "$T/resp" "$M/ident.vals" "$@"
}
call POST "$I/v2/models/ident/infer" application/json "$M/ident_flat.json"
[ "$STATUS" = 200 ] && same_vals && json_check 'r["id"] == "all"' ||
  fail "every datatype, flat data: $STATUS $(cat "$T/resp")"
call POST "$I/v2/models/ident/versions/7/infer" application/json "$M/ident_nested.json"
[ "$STATUS" = 200 ] && same_vals o_fp32,o_bytes && json_check '"id" not in r' ||
  fail "every datatype, nested data, outputs filter, parameters: $STATUS $(cat "$T/resp")"
pass "every V2 datatype (BOOL, UINT8-64, INT8-64, FP16, FP32, FP64, BYTES) in and out, flat and nested; outputs and parameters"

# --- a python model that declares no inputs takes each request's own
cat > "$M/free.py" <<'PYEOF'
import numpy as np
class Model:
    def predict(self, inputs):
        names = sorted(inputs)
        rows = len(inputs[names[0]])
        return {"names": np.array([",".join(names)] * rows, dtype=object),
                "total": sum(np.asarray(inputs[k], dtype=np.float64).reshape(rows, -1).sum(axis=1)
                             for k in names if inputs[k].dtype != object)}
PYEOF
start_server free '{"name":"free","version":"1","kind":"model","runtime":"model","model":{"format":"python","entry":"free.py:Model","workers":1,"batching":{"max_batch":8,"max_delay":"5ms"}}}'
F="http://127.0.0.1:$PORT_free"
call GET "$F/v2/models/free"
[ "$STATUS" = 200 ] && json_check 'r["inputs"] == [] and r["platform"] == "python_ferry"' ||
  fail "metadata of a model without inputs: $STATUS $(cat "$T/resp")"
printf '%s' '{"inputs":[{"name":"a","shape":[2],"datatype":"FP64","data":[1,2]},{"name":"m","shape":[2,2],"datatype":"INT32","data":[[1,1],[2,2]]}]}' > "$T/free1.json"
call POST "$F/v2/models/free/infer" application/json "$T/free1.json"
[ "$STATUS" = 200 ] && json_check '{o["name"]: o["data"] for o in r["outputs"]} == {"names": ["a,m", "a,m"], "total": [3.0, 6.0]}' ||
  fail "V2 on a model without inputs: $STATUS $(cat "$T/resp")"
printf '%s' '{"dataframe_records":[{"x":1,"y":2},{"x":3,"y":4}]}' > "$T/free2.json"
call POST "$F/invocations" application/json "$T/free2.json"
[ "$STATUS" = 200 ] && json_check 'r == {"predictions": {"names": ["x,y", "x,y"], "total": [3.0, 7.0]}}' ||
  fail "MLflow records on a model without inputs: $STATUS $(cat "$T/resp")"
printf '%s' '{"dataframe_split":{"columns":["p"],"data":[[5],[6]]}}' > "$T/free3.json"
call POST "$F/invocations" "application/json; charset=utf-8" "$T/free3.json"
[ "$STATUS" = 200 ] && json_check 'r["predictions"]["total"] == [5.0, 6.0]' ||
  fail "MLflow split on a model without inputs: $STATUS $(cat "$T/resp")"
printf '%s' '{"inputs":[{"name":"a","shape":[2],"datatype":"FP64","data":[1]}]}' > "$T/free4.json"
printf '%s' '{"inputs":[{"name":"a","shape":[1],"datatype":"FP64","data":[1]}],"outputs":[{"name":"total"}]}' > "$T/free5.json"
call POST "$F/v2/models/free/infer" application/json "$T/free5.json"
[ "$STATUS" = 200 ] && json_check '[o["name"] for o in r["outputs"]] == ["total"]' ||
  fail "outputs filter on undeclared outputs: $STATUS $(cat "$T/resp")"
printf '%s' '{"inputs":[{"name":"a","shape":[1],"datatype":"FP64","data":[1]}],"outputs":[{"name":"proba"}]}' > "$T/free6.json"
call POST "$F/v2/models/free/infer" application/json "$T/free6.json"
[ "$STATUS" = 400 ] && grep -q "output 'proba': the model gave no such output (it gave names, total)" "$T/resp" ||
  fail "an output the model does not give: $STATUS $(cat "$T/resp")"
call POST "$F/v2/models/free/infer" application/json "$T/free4.json"
[ "$STATUS" = 400 ] && grep -q "input 'a': data has 1 elements, shape \[2\] needs 2" "$T/resp" ||
  fail "a request that disagrees with itself: $STATUS $(cat "$T/resp")"
# Requests naming different inputs (of the same datatype and shape), at
# once: never batched together.
fpids=()
for i in $(seq 1 12); do
  if [ $((i % 2)) = 0 ]; then
    printf '{"inputs":[{"name":"a","shape":[1],"datatype":"FP64","data":[%d]}]}' "$i" > "$T/f$i.json"
  else
    printf '{"inputs":[{"name":"b","shape":[1],"datatype":"FP64","data":[%d]}]}' "$i" > "$T/f$i.json"
  fi
  curl -sS --max-time 20 -o "$T/f$i.out" -H 'Content-Type: application/json' \
    --data-binary "@$T/f$i.json" "$F/v2/models/free/infer" &
  fpids+=($!)
done
for p in "${fpids[@]}"; do wait "$p" || fail "a concurrent request to free failed"; done
for i in $(seq 1 12); do
  "$PY" -c '
import json, sys
i = int(sys.argv[2]); r = json.load(open(sys.argv[1]))
got = {o["name"]: o["data"] for o in r["outputs"]}
want = {"names": ["a"] if i % 2 == 0 else ["b"], "total": [float(i)]}
assert got == want, (got, want)' "$T/f$i.out" "$i" || fail "request $i to free: $(cat "$T/f$i.out")"
done
pass "a python model without declared inputs takes each request's own (V2, MLflow), checks them against themselves, and never batches different ones together"

# --- the default body cap is 16 MiB (irismx declares no max_body)
"$PY" -c 'import sys; sys.stdout.write("{\"inputs\":[" + " " * (16 * 1024 * 1024) + "]}")' > "$T/big16.json"
call POST "$X/v2/models/irismx/infer" $J "$T/big16.json"
[ "$STATUS" = 400 ] && grep -q "over the 16777216-byte cap" "$T/resp" || fail "16 MiB cap (V2): $STATUS $(cat "$T/resp")"
call POST "$X/invocations" $J "$T/big16.json"
[ "$STATUS" = 400 ] && grep -q "over the 16777216-byte cap" "$T/resp" || fail "16 MiB cap (MLflow): $STATUS $(cat "$T/resp")"
call POST "$X/v2/models/irismx/infer" application/json "$M/v2_matrix_nested.json"
[ "$STATUS" = 200 ] && json_check 'r["outputs"][0]["data"] == e' || fail "irismx after the cap: $STATUS"
rm -f "$T/big16.json"
pass "a body over the default 16 MiB cap is a 400 naming the cap, on both protocols; the server answers after"

# --- configurations it cannot serve: one line, exit 2
expect_fail '^ferry-model-server: error: version: required' \
  "$SERVER" --dir "$M" --port 0 --spec-json '{"name":"x","model":{}}'
expect_fail "^ferry-model-server: error: model.format: 'onnx' is not sklearn or python" \
  "$SERVER" --dir "$M" --port 0 --spec-json '{"name":"x","version":"1","model":{"format":"onnx"}}'
expect_fail "^ferry-model-server: error: --port 'abc'" "$SERVER" --dir "$M" --port abc --spec-json '{}'
expect_fail "^ferry-model-server: error: --port '70000'" "$SERVER" --dir "$M" --port 70000 --spec-json '{}'
expect_fail "^ferry-model-server: error: --dir is required" "$SERVER" --port 0 --spec-json '{}'
expect_fail "^ferry-model-server: error: --dir '$T/none' is not a directory" "$SERVER" --dir "$T/none" --port 0 --spec-json '{}'
expect_fail "^ferry-model-server: error: unknown argument '--bogus'" "$SERVER" --bogus
expect_fail "^ferry-model-server: error: --python '$T/nopython' is not an executable" \
  "$SERVER" --dir "$M" --port 0 --spec-json '{}' --python "$T/nopython"
# (A --spec-json over 128 KiB cannot reach it: Linux refuses an argument
# that long, MAX_ARG_STRLEN, before the server could.)
expect_fail "^ferry-model-server: error: httpd: address 'nonsense' is not a numeric" \
  "$SERVER" --dir "$M" --port 0 --addr nonsense --spec-json "$SPEC_MX" --python "$PY"
expect_fail "^ferry-model-server: error: httpd: cannot listen on 127.0.0.1 port $PORT_mx" \
  "$SERVER" --dir "$M" --port "$PORT_mx" --spec-json "$SPEC_MX" --python "$PY"
"$SERVER" --version | grep -Eq '^ferry-model-server [0-9]+\.[0-9]+\.[0-9]+$' || fail "--version"
# A model file that is not there: the load fails, exit 2, the reason last.
rc=0
"$SERVER" --dir "$M" --port 0 --python "$PY" \
  --spec-json "${SPEC_MX/model.joblib/missing.joblib}" 2> "$T/missing.err" || rc=$?
[ "$rc" = 2 ] || fail "missing model file: exit $rc: $(cat "$T/missing.err")"
tail -n 1 "$T/missing.err" | grep -q '^ferry-model-server: error: .*missing.joblib' ||
  fail "missing model file: $(cat "$T/missing.err")"
pass "a configuration it cannot serve: one line, exit 2; --version"

# --- SIGTERM: a clean stop, workers gone, exit 0
WORKERS=$(pgrep -P "$PID_cols" || true)
[ "$(wc -w <<<"$WORKERS")" -ge 2 ] || fail "no worker processes under the server: '$WORKERS'"
kill -TERM "$PID_cols"
rc=0
wait "$PID_cols" || rc=$?
[ "$rc" = 0 ] || fail "server exit $rc after SIGTERM: $(tail -n 3 "$T/cols.log")"
grep -q 'ferry-model-server: stopped' "$T/cols.log" || fail "no 'stopped' line"
gone() { for w in $WORKERS; do kill -0 "$w" 2>/dev/null && return 1; done; return 0; }
wait_until 10 gone || fail "workers left after SIGTERM: $WORKERS"
curl -s --max-time 2 "$C/v2/health/live" >/dev/null && fail "still answering after SIGTERM"
call POST "$X/v2/models/irismx/infer" application/json "$M/v2_matrix_nested.json"
[ "$STATUS" = 200 ] || fail "the other server stopped too"
pass "SIGTERM stops the server and its workers, exit 0"
