#!/usr/bin/env bash
# The dashboard (docs/dashboard.md) against a real registry and a real
# agent running an app and a scikit-learn model: the page and its assets
# with their content types, no way out of the assets directory, the
# long-poll stream and its refusals, then headless Chromium (Debian's, driven
# by playwright-core from tests/browser) sees the host, the app and the
# model with their states, the app's next version within 5 s of its deploy
# without a reload, and the page asks no host but the registry. The
# screenshots stay in the output folder printed at the end.
source "$(dirname "$0")/lib.sh"

BROWSER_DIR="$FERRY_SRC/tests/browser"
[ -x /usr/bin/chromium ] || fail "/usr/bin/chromium is missing (scripts/install-deps.sh installs it)"
command -v node >/dev/null || fail "node is missing (scripts/install-deps.sh installs nodejs)"
[ -d "$BROWSER_DIR/node_modules/playwright-core" ] ||
  fail "playwright-core is not installed in tests/browser (run scripts/install-deps.sh)"
PY=${FERRY_PYTHON:-/usr/bin/python3}
"$PY" -c 'import sklearn, joblib, numpy' 2>/dev/null || fail "$PY lacks scikit-learn (scripts/install-deps.sh)"
# The screenshots outlive the scratch directory (removed when the test passes).
OUT="${FERRY_TEST_OUT:-$FERRY_BIN/test-output}/dashboard"
rm -rf "$OUT"
mkdir -p "$OUT"

make_key ops
# The key the registry signs logs actions with for the page; agents take it
# for logs only (--trust-logs). The registry trusts it too, so that an
# action of another verb signed with it reaches the agent, which must
# refuse it.
make_key logs
start_registry reg "$T/reg" --trust "$T/ops.pub" --trust "$T/logs.pub" --http-logs-key "$T/logs.key"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
[ -n "$REG_HTTP" ] || fail "the registry has no HTTP side"
H=$REG_HTTP

# --- the page and its assets, with their types
ctype() { curl -fsS -o /dev/null -w '%{content_type}' "$H$1"; }
[ "$(ctype /)" = "text/html; charset=utf-8" ] || fail "GET / is $(ctype /)"
[ "$(ctype /assets/dashboard.js)" = "text/javascript; charset=utf-8" ] || fail "dashboard.js type"
[ "$(ctype /assets/dashboard.css)" = "text/css; charset=utf-8" ] || fail "dashboard.css type"
[ "$(ctype /assets/uPlot.iife.min.js)" = "text/javascript; charset=utf-8" ] || fail "uPlot type"
[ "$(ctype /assets/favicon.svg)" = "image/svg+xml" ] || fail "favicon type"
curl -fsS "$H/" | grep -q '<script src="/assets/dashboard.js">' || fail "the page does not load its script"
cmp -s <(curl -fsS "$H/assets/uPlot.iife.min.js") "$BROWSER_DIR/node_modules/uplot/dist/uPlot.iife.min.js" ||
  fail "the served uPlot is not the one the lock pins"
# Nothing on the page names another host.
! curl -fsS "$H/" "$H/assets/dashboard.js" "$H/assets/dashboard.css" | grep -Eo '(https?:)?//[a-zA-Z0-9.-]+' |
  grep -v '^//$' | grep -q . || fail "the page's files name another host"
pass "GET / and /assets/NAME serve the page, its script, styles and the vendored uPlot with their types"

# --- no way out of the assets directory
status_of() { curl -s --path-as-is -o /dev/null -w '%{http_code}' "$H$1"; }
echo secret > "$T/outside.js"
for p in "/assets/../registry.db" "/assets/..%2fregistry.db" "/assets/%2e%2e/registry.db" \
         "/assets/..%2f..%2f..%2fetc%2fpasswd" "/assets/%2fetc%2fpasswd" "/assets/.hidden.js" \
         "/assets/" "/assets/web%2fdashboard.js" \
         "/assets/registry.db" "/../registry.db" "/assets/..\\outside.js"; do
  code=$(status_of "$p")
  [ "$code" = 404 ] || fail "GET $p answered $code, want 404"
done
curl -s --path-as-is "$H/assets/..%2fregistry.db" | grep -q '"error":"no asset named' || fail "the 404 body"
# A symlink planted among the assets is not followed.
WEB="$T/web-copy"
cp -r "$FERRY_BIN/registry/web" "$WEB"
ln -s "$T/outside.js" "$WEB/planted.js"
MAIN_URL=$REG_URL MAIN_PID=$REG_PID
start_registry reg2 "$T/reg2" --http-assets "$WEB"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$REG_HTTP/assets/planted.js")" = 404 ] || fail "a symlinked asset was served"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$REG_HTTP/assets/dashboard.js")" = 200 ] || fail "--http-assets: dashboard.js"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$REG_HTTP/")" = 405 ] || fail "POST / is not refused"
REG2_HTTP=$REG_HTTP
REG_URL=$MAIN_URL REG_PID=$MAIN_PID REG_HTTP=$H
pass "no asset name leaves the directory: dot-dot, encoded slashes, hidden files and symlinks get 404"

# --- installed: the assets under share/ferry/web, found from bin/
cmake --install "$FERRY_BIN" --prefix "$T/inst" >/dev/null || fail "cmake --install"
[ -f "$T/inst/share/ferry/web/index.html" ] && [ -f "$T/inst/share/ferry/web/uPlot.iife.min.js" ] ||
  fail "the page is not installed under share/ferry/web: $(ls -R "$T/inst/share" 2>&1 | head)"
FERRY_REGISTRY_BIN_BUILD=$FERRY_REGISTRY_BIN
FERRY_REGISTRY_BIN="$T/inst/bin/ferry-registry"
start_registry installed "$T/reg-installed"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$REG_HTTP/")" = 200 ] || fail "the installed registry serves no page"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$REG_HTTP/assets/uPlot.min.css")" = 200 ] || fail "installed: uPlot.min.css"
kill "$REG_PID"
FERRY_REGISTRY_BIN=$FERRY_REGISTRY_BIN_BUILD
REG_URL=$MAIN_URL REG_PID=$MAIN_PID REG_HTTP=$H
pass "make install puts the page under share/ferry/web, where the installed registry finds it"

# --- --http-assets must name a page
mkdir -p "$T/empty"
expect_fail "^ferry-registry: --http-assets $T/empty: no index.html there" \
  "$FERRY_REGISTRY_BIN" --data "$T/reg3" --listen tcp://127.0.0.1:0 --http 127.0.0.1:0 --http-assets "$T/empty"
[ ! -e "$T/reg3/registry.db" ] || fail "a refused --http-assets left a database behind"
cp "$T/logs.key" "$T/loose.key"
chmod 644 "$T/loose.key"
expect_fail "^ferry-registry: --http-logs-key $T/loose.key: " \
  "$FERRY_REGISTRY_BIN" --data "$T/reg4" --listen tcp://127.0.0.1:0 --http 127.0.0.1:0 --http-logs-key "$T/loose.key"
expect_fail "^ferry-registry: --http-logs-key $T/nosuch.key: " \
  "$FERRY_REGISTRY_BIN" --data "$T/reg4" --listen tcp://127.0.0.1:0 --http 127.0.0.1:0 --http-logs-key "$T/nosuch.key"
[ ! -e "$T/reg4/registry.db" ] || fail "a refused --http-logs-key left a database behind"
pass "--http-assets without an index.html, and an unusable --http-logs-key, are one line, exit 1, nothing created"

# --- the stream: seq at once, a wait bounded by its timeout, refusals
seq0=$(curl -fsS "$H/api/v1/stream" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["changed"] is False; print(d["seq"])')
t0=$(date +%s%N)
got=$(curl -fsS --max-time 10 "$H/api/v1/stream?since=$seq0&timeout=1")
t1=$(date +%s%N)
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d=={"seq":int(sys.argv[2]),"changed":False}, d' "$got" "$seq0" ||
  fail "an idle wait answered $got"
[ $(( (t1 - t0) / 1000000 )) -ge 900 ] || fail "timeout=1 answered after $(( (t1 - t0) / 1000000 )) ms"
for q in "since=abc" "since=-1" "since=1x" "timeout=0" "timeout=61" "timeout=" "since=99999999999999999999"; do
  code=$(curl -s -o "$T/err.json" -w '%{http_code}' "$H/api/v1/stream?$q")
  [ "$code" = 400 ] || fail "stream?$q answered $code, want 400"
  python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert e and "\n" not in e, e' "$T/err.json" ||
    fail "stream?$q: no one-line error: $(cat "$T/err.json")"
done
pass "GET /api/v1/stream answers its seq, waits at most timeout, and refuses bad since/timeout with 400"

# --- at most 32 waits at once: of 33 sent together, one is refused at once
# and 32 are answered when their time is up (nothing changes meanwhile)
waiters=()
for i in $(seq 33); do
  curl -sS --max-time 30 -o "$T/wait$i.json" -w '%{http_code} %{time_total}' \
    "$H/api/v1/stream?since=$seq0&timeout=6" > "$T/wait$i.code" &
  waiters+=($!)
done
for p in "${waiters[@]}"; do wait "$p" || fail "a stream wait failed"; done
python3 - "$T" "$seq0" <<'PY' || fail "33 stream waits at once"
import json, sys
t, seq = sys.argv[1], int(sys.argv[2])
refused, waited = [], []
for i in range(1, 34):
    code, secs = open(f"{t}/wait{i}.code").read().split()
    body = json.load(open(f"{t}/wait{i}.json"))
    if code == "503":
        assert body["error"].startswith("32 streams are waiting already"), body
        assert float(secs) < 3, f"the refusal took {secs} s"
        refused.append(i)
    else:
        assert code == "200" and body == {"seq": seq, "changed": False}, (code, body)
        assert float(secs) >= 5.5, f"a wait ended after {secs} s"
        waited.append(i)
assert len(refused) == 1 and len(waited) == 32, (refused, len(waited))
PY
[ "$(curl -s -o /dev/null -w '%{http_code}' "$H/api/v1/stream?since=$seq0&timeout=1")" = 200 ] ||
  fail "a wait after the others ended was refused"
pass "at most 32 stream waits at once: of 33, one gets 503 at once with a one-line error, 32 end at their timeout"

# --- a host, an app and a model
start_agent h1 "$T/h1" --label env=test --trust "$T/ops.pub" --trust-logs "$T/logs.pub" --metrics-interval 1s
# A wait parked before a change is answered by it (the host coming online).
curl -fsS --max-time 30 "$H/api/v1/stream?since=$seq0&timeout=20" > "$T/woke.json" || fail "the stream wait failed"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["changed"] and d["seq"] > int(sys.argv[2]), d' \
  "$T/woke.json" "$seq0" || fail "the stream did not move with a new host: $(cat "$T/woke.json")"
pass "a parked stream wait is answered when a host comes online"

make_web_app "$T/web1" web 1.0
make_web_app "$T/web2" web 2.0
# python's http.server may take more than make_web_app's 4 s to listen on a
# loaded machine: a rollback is not what this test is about.
sed -i 's/^  deadline: 4s$/  deadline: 60s/' "$T/web1/ferry.yaml" "$T/web2/ferry.yaml"
grep -q '^  deadline: 60s$' "$T/web2/ferry.yaml" || fail "make_web_app's health deadline moved"
"$FERRY" publish "$T/web1" >/dev/null
"$FERRY" publish "$T/web2" >/dev/null
"$FERRY" deploy web@1.0 --to env=test >/dev/null
# h2 runs web too, but takes no logs-only key.
start_agent h2 "$T/h2" --label env=other --trust "$T/ops.pub"
"$FERRY" deploy web@1.0 --to env=other >/dev/null

mkdir -p "$T/iris"
"$PY" - "$T/iris" "$T" <<'PY'
import json, os, sys
import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
out, scratch = sys.argv[1], sys.argv[2]
names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
x, y = load_iris(return_X_y=True)
joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), os.path.join(out, "model.joblib"))
with open(os.path.join(out, "reference.csv"), "w") as f:
    f.write(",".join(names) + "\n")
    for row in x:
        f.write(",".join(repr(float(v)) for v in row) + "\n")
with open(os.path.join(scratch, "rows.json"), "w") as f:
    json.dump({"inputs": [{"name": n, "shape": [len(x)], "datatype": "FP64",
                           "data": [float(v) for v in x[:, i]]} for i, n in enumerate(names)]}, f)
PY
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
  reference: reference.csv
  workers: 1
  drift: {window: 150, alert: 0.2}
YAML
"$FERRY" publish "$T/iris" >/dev/null
"$FERRY" deploy iris@1.0.0 --to env=test >/dev/null
"$FERRY" status --wait web@1.0 --timeout 60 >/dev/null || fail "web@1.0 is not running"
"$FERRY" status --wait iris@1.0.0 --timeout 90 >/dev/null ||
  fail "iris did not become ready: $(workload_field h1 iris 1.0.0 reason 2>&1)"
# Traffic for the model's charts: a few collections' worth.
for i in 1 2 3 4 5 6; do
  "$FERRY" predict iris --json "$T/rows.json" >/dev/null || fail "predict iris"
done
has_series() {
  curl -fsS "$H/api/v1/metrics/iris?host=h1" | grep -q ferry_model_requests_total
}
wait_until 30 has_series || fail "no stored series for iris: $(curl -sS "$H/api/v1/metrics/iris?host=h1" | head -c 300)"
for i in 1 2 3; do
  "$FERRY" predict iris --json "$T/rows.json" >/dev/null || fail "predict iris"
done
pass "web@1.0 runs, iris@1.0.0 serves and its metrics are stored"

# --- the log tail through the logs action, with the logs-only key
"$FERRY" status --wait web@1.0 --to env=other --timeout 60 >/dev/null || fail "web@1.0 is not running on h2"
logs_json() { curl -sS -o "$T/logs.json" -w '%{http_code}' "$H/api/v1/logs/$1"; }
code=$(logs_json "web?host=h1&stream=stderr&lines=20")
[ "$code" = 200 ] || fail "logs of web on h1 answered $code: $(cat "$T/logs.json")"
python3 - "$T/logs.json" <<'PY' || fail "logs of web on h1: $(cat "$T/logs.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["host"] == "h1" and d["name"] == "web" and d["stream"] == "stderr" and d["lines"] == 20, d
assert '"GET / HTTP/1.1" 200' in d["text"], d["text"]  # the health probes python logs
assert len(d["text"].splitlines()) <= 20, len(d["text"].splitlines())
PY
code=$(logs_json "web?host=h2&stream=stderr")
[ "$code" = 502 ] || fail "logs of web on h2 (no --trust-logs) answered $code: $(cat "$T/logs.json")"
grep -q 'not trusted' "$T/logs.json" || fail "h2's refusal: $(cat "$T/logs.json")"
for q in "web" "web?host=" "web?host=h1&lines=0" "web?host=h1&lines=1001" "web?host=h1&lines=x" \
         "web?host=h1&stream=both" "Bad%20Name?host=h1" "web?host=Bad%20Host"; do
  code=$(logs_json "$q")
  [ "$code" = 400 ] || fail "logs/$q answered $code, want 400: $(cat "$T/logs.json")"
done
code=$(logs_json "nosuch?host=h1")
[ "$code" = 502 ] || fail "logs of an unknown workload answered $code: $(cat "$T/logs.json")"
# The key reads logs and nothing else: another verb signed with it is refused by the agent.
expect_fail "may sign logs actions only" "$FERRY" action web ping --host h1 --key "$T/logs.key" --timeout 10
"$FERRY" logs web --host h1 --stderr --tail 3 --key "$T/logs.key" >/dev/null || fail "ferry logs with the logs key"
# Without --http-logs-key the route says how to get logs.
code=$(curl -sS -o "$T/nologs.json" -w '%{http_code}' "$REG2_HTTP/api/v1/logs/web?host=h1")
[ "$code" = 404 ] && grep -q 'ferry logs web' "$T/nologs.json" || fail "logs without a key: $code $(cat "$T/nologs.json")"
pass "the log tail: read through the logs action with the logs-only key; refused by a host without --trust-logs, for other verbs, and for bad parameters"

# --- the browser, with the model kept busy meanwhile (bounded: 600 requests)
( for i in $(seq 600); do "$FERRY" predict iris --json "$T/rows.json" >/dev/null 2>&1 || true; sleep 0.3; done ) &
PIDS+=($!)
mkdir -p "$T/profile"
set +e
(cd "$T" && DASH_URL="$H" DASH_OUT="$OUT" DASH_PROFILE="$T/profile" DASH_HOST=h1 \
   DASH_APP=web@1.0 DASH_LOGS=1 DASH_MODEL=iris@1.0.0 DASH_NEXT=2.0 \
   DASH_DEPLOY="[\"$FERRY\", \"deploy\", \"web@2.0\", \"--to\", \"env=test\"]" \
   DASH_DEPLOY_BACK="[\"$FERRY\", \"deploy\", \"web@1.0\", \"--to\", \"env=test\"]" \
   NODE_PATH="$BROWSER_DIR/node_modules" timeout 240 node "$BROWSER_DIR/dashboard.test.js")
rc=$?
set -e
[ $rc -eq 0 ] || fail "the browser checks failed (exit $rc)"
[ -s "$OUT/dashboard.png" ] && [ -s "$OUT/detail.png" ] || fail "no screenshots in $OUT"
echo "screenshots in $OUT"
