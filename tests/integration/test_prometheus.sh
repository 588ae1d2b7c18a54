#!/usr/bin/env bash
# The registry's /metrics with a real agent, an app and a model: the text
# passes `promtool check metrics` and has the registry's counters, the
# fleet gauges and each workload's metrics under host/workload/version/kind;
# the shipped rules pass `promtool check rules` and their unit tests; a real
# Prometheus started here scrapes the registry every second, a ferry metric
# reads back through its query API, and the drift and host-offline alerts go
# pending from what the registry serves.
source "$(dirname "$0")/lib.sh"

command -v promtool >/dev/null || fail "promtool missing (Debian prometheus; scripts/install-deps.sh)"
command -v prometheus >/dev/null || fail "prometheus missing (Debian prometheus; scripts/install-deps.sh)"
RULES="$FERRY_SRC/packaging/prometheus/ferry.rules.yml"

# --- the shipped rules
promtool check rules "$RULES" > "$T/check-rules.out" 2>&1 || fail "promtool check rules: $(cat "$T/check-rules.out")"
(cd "$FERRY_SRC/packaging/prometheus" && promtool test rules ferry.rules.test.yml) > "$T/test-rules.out" 2>&1 ||
  fail "promtool test rules: $(cat "$T/test-rules.out")"
pass "packaging/prometheus/ferry.rules.yml passes promtool check rules and its unit tests"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub" --host-ttl 2s
[ -n "$REG_HTTP" ] || fail "the registry has no HTTP side"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent h1 "$T/h1" --label env=test --trust "$T/ops.pub" --metrics-interval 1s
H1_PID=$AGENT_PID

metrics() { curl -sf "$REG_HTTP/metrics"; }
has() { metrics | grep -qF -- "$1"; }

# --- an app and a model with a drift reference
mkdir -p "$T/web"
cat > "$T/web/ferry.yaml" <<'YAML'
name: web
version: "1.0"
kind: app
runtime: exec
run:
  command: ["/bin/sleep", "100000"]
YAML
mkdir -p "$T/echo"
cat > "$T/echo/serve.py" <<'PY'
class Model:
    def load(self, dir):
        pass

    def predict(self, inputs):
        return {"y": inputs["x"] * 2}
PY
python3 -c "
import random
random.seed(7)
print('x')
for _ in range(200):
    print(random.uniform(0, 1))" > "$T/echo/reference.csv"
cat > "$T/echo/ferry.yaml" <<'YAML'
name: echo
version: "2"
kind: model
runtime: model
model:
  format: python
  entry: serve.py:Model
  inputs: [{name: x, datatype: FP64, shape: [-1]}]
  outputs: [{name: y, datatype: FP64, shape: [-1]}]
  reference: reference.csv
  drift: {window: 50, alert: 0.3}
YAML
"$FERRY" publish "$T/web" >/dev/null
"$FERRY" publish "$T/echo" >/dev/null
"$FERRY" deploy web@1.0 --to env=test >/dev/null
"$FERRY" deploy echo@2 --to env=test >/dev/null
"$FERRY" status --wait web@1.0 --timeout 60 >/dev/null || fail "web did not start"
"$FERRY" status --wait echo@2 --timeout 90 >/dev/null || fail "echo did not become ready"

# Shifted inputs fill the drift window: every row far above the reference.
python3 -c "
import json
print(json.dumps({'inputs': [{'name': 'x', 'shape': [50], 'datatype': 'FP64',
                              'data': [5.0 + i for i in range(50)]}]}))" > "$T/shifted.json"
"$FERRY" predict echo --json "$T/shifted.json" >/dev/null || fail "ferry predict echo"

W='host="h1",workload="web",version="1.0",kind="app"'
E='host="h1",workload="echo",version="2",kind="model"'
wait_until 30 has "process_resident_memory_bytes{$W} " || fail "no app metrics in /metrics: $(metrics | grep -v '^#' | head -40)"
wait_until 30 has "ferry_model_drift_alert{$E,model=\"echo\"} 0.3" ||
  fail "no model drift alert in /metrics: $(metrics | grep echo | head -40)"
wait_until 30 has "ferry_model_drift_window_rows{$E,model=\"echo\"} 50" || fail "drift window not full"

# --- the text: promtool, content type, the families
curl -sf -D "$T/headers" -o "$T/metrics.txt" "$REG_HTTP/metrics" || fail "GET /metrics"
grep -qi '^content-type: text/plain; version=0.0.4' "$T/headers" || fail "content type: $(cat "$T/headers")"
promtool check metrics < "$T/metrics.txt" > "$T/check-metrics.out" 2>&1 ||
  fail "promtool check metrics: $(cat "$T/check-metrics.out")"
need() { grep -qF -- "$1" "$T/metrics.txt" || fail "/metrics lacks '$1'"; }
need 'ferry_hosts{state="online"} 1'
need 'ferry_host_online{host="h1"} 1'
need "ferry_workload_state{$W,state=\"running\"} 1"
need "ferry_workload_state{$E,state=\"running\"} 1"
need 'ferry_workloads{kind="app",state="running"} 1'
need 'ferry_workloads{kind="model",state="running"} 1'
need 'ferry_registry_requests_total{type="report",outcome="ok"}'
need 'ferry_registry_publishes_total 2'
need 'ferry_registry_deploys_total 2'
need "process_cpu_seconds_total{$W} "
need "ferry_model_requests_total{$E,model=\"echo\",protocol=\"v2\",outcome=\"ok\"} 1"
need "ferry_model_request_duration_seconds_bucket{$E,model=\"echo\",protocol=\"v2\",le=\"+Inf\"} 1"
need "ferry_model_drift_psi{$E,model=\"echo\",input=\"x\"} "
for fam in $(grep -o '^# TYPE [^ ]*' "$T/metrics.txt" | cut -d' ' -f3 | sort | uniq -d); do
  fail "family $fam has TYPE twice"
done
curl -sfI "$REG_HTTP/metrics" | grep -qi '^content-type: text/plain' || fail "HEAD /metrics"
pass "/metrics passes promtool check metrics with the registry's counters, the fleet and the app's and model's metrics"

# A refused deploy counts as refused: a key the registry does not trust.
make_key stranger
"$FERRY" deploy web@1.0 --to env=test --key "$T/stranger.key" >/dev/null 2>&1 && fail "an untrusted deploy was accepted"
wait_until 5 has 'ferry_registry_deploys_refused_total 1' || fail "refused deploy not counted: $(metrics | grep deploys)"
wait_until 5 has 'ferry_registry_requests_total{type="deploy",outcome="untrusted"} 1' ||
  fail "$(metrics | grep 'type="deploy"')"
# Bad requests on the HTTP side: one line, 4xx, and /metrics keeps serving.
code=$(curl -s -o "$T/post.out" -w '%{http_code}' -X POST "$REG_HTTP/metrics")
[ "$code" = 405 ] || [ "$code" = 400 ] || fail "POST /metrics: $code $(cat "$T/post.out")"
metrics >/dev/null || fail "/metrics after a POST"
pass "refused deploys are counted by outcome; a POST is refused and /metrics keeps serving"

# --- a real Prometheus scrapes the registry every second
free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
HTTP_HOSTPORT=${REG_HTTP#http://}
cp "$RULES" "$T/ferry.rules.yml"
cat > "$T/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [ferry.rules.yml]
scrape_configs:
  - job_name: ferry
    static_configs:
      - targets: ["$HTTP_HOSTPORT"]
YAML
promtool check config "$T/prometheus.yml" > "$T/check-config.out" 2>&1 || fail "promtool check config: $(cat "$T/check-config.out")"
PROM_PID=
start_prometheus() {
  PROM_PORT=$(free_port)
  prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/prom-data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn 2>>"$T/prometheus.log" &
  PROM_PID=$!
  PIDS+=("$PROM_PID")
  wait_until 30 curl -sf "http://127.0.0.1:$PROM_PORT/-/ready"
}
start_prometheus || { kill "$PROM_PID" 2>/dev/null; wait "$PROM_PID" 2>/dev/null || true; start_prometheus; } ||
  fail "prometheus did not become ready: $(tail -5 "$T/prometheus.log")"
PROM="http://127.0.0.1:$PROM_PORT"
# query EXPR PYTHON_CHECK: the instant query's result list r passes the check
query() {
  curl -sf --get "$PROM/api/v1/query" --data-urlencode "query=$1" | python3 -c "
import json, sys
d = json.load(sys.stdin)
assert d['status'] == 'success', d
r = d['data']['result']
sys.exit(0 if ($2) else 1)"
}
wait_until 30 query 'up{job="ferry"}' "len(r) == 1 and r[0]['value'][1] == '1'" ||
  fail "prometheus does not scrape the registry: $(curl -s "$PROM/api/v1/targets")"
wait_until 30 query 'ferry_workload_state{workload="web",state="running"}' \
  "len(r) == 1 and r[0]['metric']['host'] == 'h1' and r[0]['metric']['kind'] == 'app' and r[0]['value'][1] == '1'" ||
  fail "ferry_workload_state not in prometheus: $(curl -s --get "$PROM/api/v1/query" --data-urlencode 'query=ferry_workload_state')"
wait_until 30 query 'process_resident_memory_bytes{workload="web",version="1.0"}' \
  "len(r) == 1 and float(r[0]['value'][1]) > 0" || fail "the app's memory not in prometheus"
pass "a real Prometheus scrapes /metrics every second; ferry metrics read back through /api/v1/query"

# The rules run on what the registry serves: drift is above echo's own
# alert (0.3) with the window full, so the drift alert is pending (for: 5m).
alert_state() { # ALERTNAME STATE: an alert of that name in that state
  curl -sf "$PROM/api/v1/alerts" | python3 -c "
import json, sys
a = json.load(sys.stdin)['data']['alerts']
sys.exit(0 if any(x['labels']['alertname'] == sys.argv[1] and x['state'] == sys.argv[2] for x in a) else 1)" "$1" "$2"
}
wait_until 30 alert_state FerryModelDrift pending || fail "drift alert not pending: $(curl -s "$PROM/api/v1/alerts")"
curl -sf "$PROM/api/v1/alerts" | python3 -c "
import json, sys
a = [x for x in json.load(sys.stdin)['data']['alerts'] if x['labels']['alertname'] == 'FerryModelDrift']
assert len(a) == 1 and a[0]['labels']['workload'] == 'echo' and a[0]['labels']['input'] == 'x', a" ||
  fail "drift alert labels"
alert_state FerryHostOffline pending && fail "host offline alert while h1 is online"
# The agent stops: after the registry's host TTL (2 s) h1 is offline.
kill -TERM "$H1_PID"
wait "$H1_PID" 2>/dev/null || true
wait_until 30 query 'ferry_host_online{host="h1"}' "len(r) == 1 and r[0]['value'][1] == '0'" ||
  fail "h1 not offline in prometheus"
wait_until 30 alert_state FerryHostOffline pending || fail "host offline alert not pending"
pass "the shipped rules raise the drift alert (against the model's own alert) and the host-offline alert"

kill -TERM "$PROM_PID"
wait_until 20 bash -c "! kill -0 $PROM_PID" || fail "prometheus did not stop"
wait "$PROM_PID" 2>/dev/null || true
pass "prometheus stopped"
