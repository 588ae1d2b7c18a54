#!/usr/bin/env bash
# The registry's HTTP side against a fleet of two real agents running an
# app: every /api/v1 endpoint has the documented shape (docs/api.md); bad
# parameters get 400 naming the parameter, unknown names 404, anything but
# GET/HEAD 405; the server keeps serving after hostile requests (a huge
# URL, bad encoding, more connections than its caps); metric history
# survives a registry restart; off loopback a bearer token is required.
source "$(dirname "$0")/lib.sh"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub" --host-ttl 3s
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
[ -n "$REG_HTTP" ] || fail "no http listening line"
grep -q "ferry-registry: http listening on http://127.0.0.1:[0-9]*$" "$T/reg.log" || fail "log: $(cat "$T/reg.log")"
start_agent h1 "$T/h1" --label env=test --label zone=a --trust "$T/ops.pub" --metrics-interval 1s
start_agent h2 "$T/h2" --label env=test --label zone=b --trust "$T/ops.pub" --metrics-interval 1s

make_web_app "$T/web" web 1.0
"$FERRY" publish "$T/web" >/dev/null
make_web_app "$T/web2" web 1.1
"$FERRY" publish "$T/web2" >/dev/null
"$FERRY" deploy web@1.0 --to env=test >/dev/null
wait_until 30 workload_state_is h1 web 1.0 running || fail "web@1.0 not running on h1"
wait_until 30 workload_state_is h2 web 1.0 running || fail "web@1.0 not running on h2"

# http_get URL [HEADER]: prints the status, then the body; never fails.
http_get() {
  python3 - "$@" <<'PY'
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], method="GET")
if len(sys.argv) > 2: req.add_header("Authorization", sys.argv[2])
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
PY
}
status_of() { http_get "$@" | head -n 1; }
# expect_status CODE PATH [PATTERN]: the status, and the error line matching PATTERN.
expect_status() {
  local want=$1 path=$2 pattern=${3:-} out
  out=$(http_get "$REG_HTTP$path")
  [ "$(head -n 1 <<<"$out")" = "$want" ] || fail "GET $path: $(head -c 300 <<<"$out"), expected $want"
  if [ -n "$pattern" ]; then
    python3 -c "import json,sys,re; d=json.loads(sys.argv[1]); assert set(d)=={'error'} and re.search(sys.argv[2], d['error']), d" \
      "$(tail -n +2 <<<"$out")" "$pattern" || fail "GET $path: error body $(tail -n +2 <<<"$out"), expected /$pattern/"
  fi
}

# Wait until both hosts' metrics reached the registry, with history.
have_history() {
  http_get "$REG_HTTP/api/v1/metrics/web?series=process_resident_memory_bytes" | tail -n +2 | python3 -c "
import json, sys
d = json.load(sys.stdin)
hosts = {s['host'] for s in d['series'] if s['points']}
sys.exit(0 if hosts == {'h1', 'h2'} else 1)"
}
wait_until 30 have_history || fail "no metric history: $(http_get "$REG_HTTP/api/v1/metrics/web")"
"$FERRY" deploy web@1.1 --to zone=b >/dev/null
wait_until 30 workload_state_is h2 web 1.1 running || fail "web@1.1 not running on h2"

# Every endpoint's shape; the answers are kept as docs/api.md's examples.
mkdir -p "$T/examples"
for p in "" hosts workloads artifacts artifacts/web deployments "events?limit=3" \
         "metrics/web?host=h1&series=process_resident_memory_bytes&since=10m" "audit?limit=3"; do
  out=$(http_get "$REG_HTTP/api/v1/$p")
  [ "$(head -n 1 <<<"$out")" = 200 ] || fail "GET /api/v1/$p: $out"
  f=$(echo "${p:-index}" | sed 's/[?&=\/]/_/g')
  tail -n +2 <<<"$out" > "$T/examples/$f.json"
done
python3 - "$T/examples" <<'PY' || fail "shapes"
import json, os, sys
d = sys.argv[1]
def load(n): return json.load(open(os.path.join(d, n + ".json")))
def has(o, keys, what):
    missing = set(keys) - set(o)
    assert not missing, f"{what}: missing {missing} in {o}"
idx = load("index")
assert "workloads" in idx["endpoints"], idx
hosts = load("hosts")["hosts"]
assert sorted(h["name"] for h in hosts) == ["h1", "h2"], hosts
for h in hosts:
    has(h, ["name", "status", "online", "last_seen_ms", "key_id", "labels", "plugins", "workloads",
            "states", "desired", "desired_state", "envelope_version", "envelope_expires_ms",
            "verifies_policy"], "host")
    assert h["online"] is True and h["status"] == "enrolled", h
    assert h["labels"]["env"] == "test", h
    assert any(p["name"] == "exec" for p in h["plugins"]), h
    assert h["workloads"] >= 1 and h["states"].get("running", 0) >= 1, h
    assert any(x["name"] == "web" for x in h["desired"]), h
wl = load("workloads")["workloads"]
byhost = {(w["host"], w["version"]): w for w in wl if w["name"] == "web"}
assert ("h1", "1.0") in byhost and ("h2", "1.1") in byhost, byhost.keys()
for w in wl:
    has(w, ["host", "host_online", "name", "version", "kind", "state", "reason", "restarts",
            "since_ms", "pid", "rss_bytes", "port", "address", "mode", "metrics"], "workload")
w = byhost[("h1", "1.0")]
assert w["kind"] == "app" and w["state"] == "running" and w["port"] > 0, w
m = w["metrics"]
assert m and m["name"] == "web" and m["version"] == "1.0", w
assert any(x["name"] == "process_resident_memory_bytes" and x["type"] == "gauge" for x in m["metrics"]), m
arts = load("artifacts")["artifacts"]
a = [x for x in arts if x["name"] == "web"][0]
has(a, ["name", "kind", "versions", "latest", "channels"], "artifact")
assert a["kind"] == "app" and a["versions"] == 2 and a["latest"]["version"] == "1.1", a
one = load("artifacts_web")
has(one, ["name", "kind", "versions", "channels", "deployments"], "artifact detail")
assert [v["version"] for v in one["versions"]] == ["1.0", "1.1"], one
for v in one["versions"]:
    has(v, ["version", "kind", "publisher", "published_unix", "manifest_digest"], "version")
    assert len(v["manifest_digest"]) == 64, v
assert [x["version"] for x in one["deployments"]] == ["1.0", "1.1"], one["deployments"]
deps = load("deployments")["deployments"]
assert {(x["name"], x["version"], x["selector"]) for x in deps} == {("web", "1.0", "env=test"), ("web", "1.1", "zone=b")}, deps
for x in deps:
    has(x, ["action", "name", "version", "selector", "key_id", "issued_ms", "manifest_digest"], "deployment")
    assert x["action"] == "deploy", x
ev = load("events_limit_3")
has(ev, ["events", "next"], "events")
assert 1 <= len(ev["events"]) <= 3 and ev["next"] == ev["events"][-1]["seq"], ev
for e in ev["events"]:
    has(e, ["seq", "host", "name", "version", "state", "reason", "since_ms"], "event")
ms = load("metrics_web_host_h1_series_process_resident_memory_bytes_since_10m")
has(ms, ["name", "resolution_s", "since_ms", "now_ms", "truncated", "series"], "metrics")
assert ms["resolution_s"] == 10 and len(ms["series"]) == 1, ms
s = ms["series"][0]
assert s["host"] == "h1" and s["series"] == "process_resident_memory_bytes" and s["type"] == "gauge", s
assert all(len(p) == 4 and p[0] % 10000 == 0 and p[2] <= p[1] <= p[3] for p in s["points"]), s
au = load("audit_limit_3")
assert isinstance(au["audit"], list), au
PY
pass "hosts, workloads (kind, state, address, newest metrics), artifacts, artifacts/web, deployments, events, metrics/web, audit: shapes as documented"

# events?since= is a cursor: nothing older comes back.
first=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['events'][0]['seq'])" "$T/examples/events_limit_3.json")
http_get "$REG_HTTP/api/v1/events?since=$first&limit=1000" | tail -n +2 | python3 -c "
import json, sys
d = json.load(sys.stdin)
assert d['events'] and all(e['seq'] > $first for e in d['events']), d" || fail "events?since="
# HEAD answers like GET without a body.
[ "$(curl -s -o /dev/null -w '%{http_code}' -I "$REG_HTTP/api/v1/hosts")" = 200 ] || fail "HEAD"
pass "events?since= is a cursor; HEAD answers"

expect_status 400 "/api/v1/events?since=abc" "^since 'abc'"
expect_status 400 "/api/v1/events?since=-1" "^since"
expect_status 400 "/api/v1/events?limit=0" "^limit '0'"
expect_status 400 "/api/v1/events?limit=100000" "^limit"
expect_status 400 "/api/v1/audit?after=x" "^after 'x'"
expect_status 400 "/api/v1/metrics/web?since=yesterday" "^since 'yesterday'"
expect_status 400 "/api/v1/metrics/web?resolution=7" "^resolution '7'"
expect_status 400 "/api/v1/metrics/web?host=no%20such" "^host 'no such'"
expect_status 400 "/api/v1/metrics/Bad%20Name" "^name 'Bad Name'"
expect_status 400 "/api/v1/workloads?host=a/b" "^host 'a/b'"
expect_status 400 "/api/v1/artifacts/" "^name ''"
pass "bad parameters: 400 with a message naming the parameter"
expect_status 404 "/api/v1/artifacts/nothing-here" "nothing-here"
expect_status 404 "/api/v1/metrics/nothing-here" "nothing-here"
expect_status 404 "/api/v1/nope" "no such path"
expect_status 404 "/nope"
pass "unknown names and paths: 404"
for m in POST PUT DELETE PATCH; do
  code=$(curl -s -o "$T/405.json" -w '%{http_code}' -X "$m" --data x "$REG_HTTP/api/v1/hosts")
  [ "$code" = 405 ] || fail "$m /api/v1/hosts: $code"
  grep -q '"error"' "$T/405.json" || fail "$m: no error body"
done
hdrs=$(curl -s -D - -o /dev/null -X POST "$REG_HTTP/api/v1/hosts")
grep -qi '^Allow: GET, HEAD' <<<"$hdrs" || fail "405 without Allow: $hdrs"
pass "POST, PUT, DELETE, PATCH: 405"

# Hostile requests: each answered (or the connection closed), and the
# server answers the next ordinary request.
python3 - "${REG_HTTP#http://}" <<'PY' || fail "hostile requests"
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1); port = int(port)
def raw(data, timeout=5):
    s = socket.create_connection((host, port), timeout=timeout)
    out = b""
    try:
        s.sendall(data)
        while True:
            b = s.recv(65536)
            if not b: break
            out += b
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        pass
    s.close()
    return out
def status(r): return r.split(b" ")[1] if r.startswith(b"HTTP/1.1 ") else b"closed"
# A 100 KB URL: past the request-line buffer.
r = raw(b"GET /api/v1/" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
assert status(r) in (b"414", b"closed"), r[:100]
# 40 KB of one header: past the same buffer.
r = raw(b"GET /api/v1/hosts HTTP/1.1\r\nHost: x\r\nX-A: " + b"b" * 40000 + b"\r\n\r\n")
assert status(r) in (b"431", b"closed"), r[:100]
# Bad percent-encoding: 400 naming the parameter.
r = raw(b"GET /api/v1/events?since=%zz%%% HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
assert status(r) == b"400" and b"since" in r, r[:300]
# Junk that is not HTTP.
raw(b"\x00\xff garbage\r\n\r\n", timeout=2)
# 300 idle connections at once: past the caps (256 in all, 64 from one
# address) the server closes them at once.
socks = []
for i in range(300):
    try:
        socks.append(socket.create_connection((host, port), timeout=5))
    except OSError:
        pass
last = socks[-1]
last.settimeout(3)
try:
    assert last.recv(10) == b"", "a connection past the caps was kept"
except ConnectionResetError:
    pass
for s in socks: s.close()
PY
wait_until 10 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$REG_HTTP/api/v1/hosts')\" = 200 ]" \
  || fail "the server stopped serving after hostile requests"
pass "a 100 KB URL, bad encoding, junk and 300 connections at once: refused, and the server keeps serving"

# History survives a restart: the buckets from before are still there.
before=$(http_get "$REG_HTTP/api/v1/metrics/web?host=h1&series=process_resident_memory_bytes" | tail -n +2 |
         python3 -c "import json,sys; print(json.load(sys.stdin)['series'][0]['points'][0][0])")
stop_and_wait "$REG_PID" 10 "registry" || fail "registry did not stop cleanly"
n_http=$(grep -c 'http listening on' "$T/reg.log")
start_registry_at reg "$T/reg" "$REG_URL" --trust "$T/ops.pub" --host-ttl 3s
wait_until 10 bash -c "[ \$(grep -c 'http listening on' '$T/reg.log') -gt $n_http ]" || fail "no HTTP after restart"
REG_HTTP=$(reg_http_url "$T/reg.log")
http_get "$REG_HTTP/api/v1/metrics/web?host=h1&series=process_resident_memory_bytes" | tail -n +2 | python3 -c "
import json, sys
d = json.load(sys.stdin)
assert d['series'] and d['series'][0]['points'][0][0] == $before, d" || fail "history lost across a restart"
pass "metric history survives a registry restart"

# Off loopback: a token is required; with one, requests must carry it.
expect_fail "^ferry-registry: --http 0\.0\.0\.0:0: not a loopback address, so --http-token FILE is required$" \
  "$FERRY_REGISTRY_BIN" --data "$T/reg-open" --listen tcp://127.0.0.1:0 --http 0.0.0.0:0
[ ! -e "$T/reg-open/registry.db" ] || fail "a refused start left a database"
expect_fail "^ferry-registry: --http 'nowhere': not ADDR:PORT" \
  "$FERRY_REGISTRY_BIN" --data "$T/reg-open" --http nowhere
expect_fail "^ferry-registry: --http 'localhost:80': 'localhost' is not a numeric" \
  "$FERRY_REGISTRY_BIN" --data "$T/reg-open" --http localhost:80
expect_fail "^ferry-registry: --http '127.0.0.1:70000': port" \
  "$FERRY_REGISTRY_BIN" --data "$T/reg-open" --http 127.0.0.1:70000
printf 'short\n' > "$T/short.token"
expect_fail "^ferry-registry: --http-token .*short.token: must be one line of 16" \
  "$FERRY_REGISTRY_BIN" --data "$T/reg-open" --http 0.0.0.0:0 --http-token "$T/short.token"
expect_fail "^ferry-registry: --http-token: .*missing" \
  "$FERRY_REGISTRY_BIN" --data "$T/reg-open" --http 0.0.0.0:0 --http-token "$T/missing"
busy=${REG_HTTP##*:}
expect_fail "^ferry-registry: --http 127\.0\.0\.1:$busy: httpd: cannot listen on 127\.0\.0\.1 port $busy: Address already in use$" \
  "$FERRY_REGISTRY_BIN" --data "$T/reg-busy" --listen tcp://127.0.0.1:0 --http "127.0.0.1:$busy"
pass "a non-loopback --http without a (good) token, or a port in use, refuses to start, one line each"

head -c 24 /dev/urandom | base64 | tr '+/' '-_' > "$T/http.token"
tok=$(cat "$T/http.token")
start_registry tok "$T/reg-tok" --http 0.0.0.0:0 --http-token "$T/http.token"
grep -q 'http listening on http://0.0.0.0:[0-9]* (bearer token required)' "$T/tok.log" || fail "token log: $(cat "$T/tok.log")"
url="http://127.0.0.1:${REG_HTTP##*:}"
[ "$(status_of "$url/api/v1/hosts")" = 401 ] || fail "no token: not 401"
[ "$(status_of "$url/api/v1/hosts" "Bearer wrong-token-wrong-token")" = 401 ] || fail "wrong token: not 401"
[ "$(status_of "$url/api/v1/hosts" "Bearer ${tok}x")" = 401 ] || fail "longer token: not 401"
[ "$(status_of "$url/api/v1/hosts" "Basic $tok")" = 401 ] || fail "not Bearer: not 401"
[ "$(status_of "$url/api/v1/hosts" "Bearer $tok")" = 200 ] || fail "right token: not 200"
hdrs=$(curl -s -D - -o /dev/null "$url/api/v1/hosts")
grep -qi '^WWW-Authenticate: Bearer' <<<"$hdrs" || fail "401 without WWW-Authenticate: $hdrs"
body=$(http_get "$url/api/v1/hosts")
grep -q '"error"' <<<"$body" || fail "401 without an error body: $body"
pass "with --http-token: no, wrong or other token 401, the right one 200"

start_registry off "$T/reg-off" --http off
! grep -q 'http listening' "$T/off.log" || fail "--http off still listens"
pass "--http off: no HTTP side"

if [ -n "${FERRY_API_EXAMPLES:-}" ]; then mkdir -p "$FERRY_API_EXAMPLES" && cp "$T/examples/"*.json "$FERRY_API_EXAMPLES/"; fi
