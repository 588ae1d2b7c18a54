# Shared helpers for integration tests: real binaries, real sockets on
# 127.0.0.1, a private scratch directory, and cleanup of everything started.
# Source it first thing; every wait has a deadline, none is a fixed sleep.
set -euo pipefail

: "${FERRY_BIN:?FERRY_BIN must point at the build directory}"
: "${FERRY_SRC:?FERRY_SRC must point at the source directory}"
FERRY="$FERRY_BIN/cli/ferry"
FERRY_REGISTRY_BIN="$FERRY_BIN/registry/ferry-registry"
FERRY_POKE="$FERRY_BIN/tests/ferry-poke"
FERRY_FORGE="$FERRY_BIN/tests/ferry-forge"
unset FERRY_REGISTRY FERRY_KEY FERRY_TRUST FERRY_TLS_CA FERRY_TLS_SERVER_NAME
# A request that gets no answer fails in 20 s, not the default 60.
export FERRY_TIMEOUT_MS=20000

T=$(mktemp -d "${TMPDIR:-/tmp}/ferry-it.XXXXXX")
PIDS=()
TEST_NAME=$(basename "$0" .sh)

cleanup() {
  local rc=$?
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  # Workloads run in their own sessions and outlive the agent by design:
  # stop every process whose working directory is in this test's tree.
  local d
  for d in /proc/[0-9]*; do
    case "$(readlink "$d/cwd" 2>/dev/null)" in
      "$T"/*) kill -9 "${d#/proc/}" 2>/dev/null || true ;;
    esac
  done
  if [ $rc -eq 0 ]; then
    rm -rf "$T"
    echo "$TEST_NAME: all checks passed"
  else
    echo "$TEST_NAME: FAILED (scratch kept in $T)" >&2
    for log in "$T"/*.log; do
      [ -f "$log" ] || continue
      echo "--- $log" >&2
      tail -n 20 "$log" >&2
    done
  fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; }

# wait_until SECONDS CMD...: run CMD until it succeeds or the deadline passes.
wait_until() {
  local limit=$1; shift
  local deadline=$(( $(date +%s%N) + limit * 1000000000 ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s%N)" -lt "$deadline" ] || return 1
    sleep 0.02
  done
}

# Hosts must be enrolled before a registry serves them. So that tests need
# not do it by hand, lib.sh has an operator key of its own that every
# registry it starts trusts (LIB_TRUST holds the arguments, for registries a
# test starts itself), and start_agent presents a join token signed by it.
# start_agent_unenrolled starts an agent without one.
mkdir -p "$T/.lib"
"$FERRY" keygen enroll --dir "$T/.lib" >/dev/null
LIB_ENROLL_KEY="$T/.lib/enroll.key"
LIB_JOIN_TOKEN="$T/.lib/join.token"
"$FERRY" hosts token --key "$LIB_ENROLL_KEY" --ttl 12h -o "$LIB_JOIN_TOKEN" 2>/dev/null
LIB_TRUST=(--trust "$T/.lib/enroll.pub")

# The registry's HTTP side listens on 127.0.0.1:7480 unless told otherwise:
# registries started here take a free port instead (a test's own --http,
# given later, wins), so tests running side by side never collide on it.
LIB_HTTP=(--http 127.0.0.1:0)

# reg_http_url LOG: the newest "http listening on URL" of a registry's log.
reg_http_url() {
  grep -o 'http listening on http://[^ ]*' "$1" | tail -n 1 | sed 's/http listening on //'
}

# start_registry NAME DATA_DIR [extra args]: sets REG_URL, REG_PID and
# REG_HTTP (the HTTP side's URL; empty with --http off).
start_registry() {
  local name=$1 data=$2; shift 2
  local log="$T/$name.log"
  : > "$log"
  "$FERRY_REGISTRY_BIN" --data "$data" --listen tcp://127.0.0.1:0 "${LIB_TRUST[@]}" "${LIB_HTTP[@]}" "$@" 2>>"$log" &
  REG_PID=$!
  PIDS+=("$REG_PID")
  wait_until 10 grep -q 'listening on' "$log" || fail "registry $name did not start: $(cat "$log")"
  REG_URL=$(grep -o 'listening on tcp://[0-9.]*:[0-9]*' "$log" | tail -n 1 | sed 's/listening on //')
  REG_PORT=${REG_URL##*:}
  REG_HTTP=
  case " $* " in
    *" --http off "*) ;;
    *) wait_until 10 grep -q 'http listening on' "$log" || fail "registry $name: no HTTP side: $(cat "$log")"
       REG_HTTP=$(reg_http_url "$log") ;;
  esac
}

# restart on the same port (the HTTP side on a free one unless given)
start_registry_at() {
  local name=$1 data=$2 url=$3; shift 3
  local log="$T/$name.log"
  "$FERRY_REGISTRY_BIN" --data "$data" --listen "$url" "${LIB_TRUST[@]}" "${LIB_HTTP[@]}" "$@" 2>>"$log" &
  REG_PID=$!
  PIDS+=("$REG_PID")
  wait_until 10 "$FERRY_POKE" "$url" ping || fail "registry $name did not restart at $url"
}

# expect_fail PATTERN CMD...: CMD must exit non-zero with one stderr line
# matching PATTERN (grep -E).
expect_fail() {
  local pattern=$1; shift
  local out rc=0
  out=$("$@" 2>&1 >/dev/null) || rc=$?
  [ $rc -ne 0 ] || fail "expected failure from: $*"
  grep -Eq -- "$pattern" <<<"$out" || fail "error for '$*' was '$out', expected /$pattern/"
  [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "error for '$*' is not one line: $out"
}

stat_counter() { # stat_counter NAME -> registry counter value
  "$FERRY" stats --registry "$REG_URL" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"
}

# tree_listing DIR: relative path, mode and digest of every file
tree_listing() {
  (cd "$1" && find . -type f -printf '%P %m\n' | sort | while read -r p m; do
     echo "$p $m $(b2sum -l 256 "$p" | cut -d' ' -f1)"; done)
}

make_key() { "$FERRY" keygen "$1" --dir "$T" >/dev/null; }

# make_app DIR NAME VERSION: a small app with three files.
make_app() {
  local dir=$1 name=$2 version=$3
  mkdir -p "$dir/static"
  cat > "$dir/ferry.yaml" <<YAML
name: $name
version: "$version"
kind: app
runtime: exec
run:
  command: ["./run.sh"]
YAML
  printf '#!/bin/sh\necho run\n' > "$dir/run.sh"
  chmod 755 "$dir/run.sh"
  printf 'static content\n' > "$dir/static/index.html"
}

FERRY_AGENT_BIN="$FERRY_BIN/agent/ferry-agent"
FERRY_PLUGINS="$FERRY_BIN/plugins"

# start_agent NAME STATE_DIR [extra args]: sets AGENT_PID; waits until it
# has started. It enrolls with lib.sh's join token (see LIB_TRUST above).
start_agent() {
  local name=$1 state=$2; shift 2
  local log="$T/agent-$name.log"
  local enroll=()
  [ "${START_AGENT_ENROLL:-1}" = 1 ] && enroll=(--join-token "$LIB_JOIN_TOKEN")
  "$FERRY_AGENT_BIN" --registry "$REG_URL" --state "$state" --name "$name" \
      --plugins "$FERRY_PLUGINS" "${enroll[@]}" "$@" 2>>"$log" &
  AGENT_PID=$!
  PIDS+=("$AGENT_PID")
  wait_until 10 grep -q "host $name " "$log" || fail "agent $name did not start: $(cat "$log")"
}

# start_agent_unenrolled NAME STATE_DIR [extra args]: start_agent without a
# join token: the host stays pending until accepted.
start_agent_unenrolled() { START_AGENT_ENROLL=0 start_agent "$@"; }

# workload_field HOST NAME VERSION FIELD: from ferry status --json
workload_field() {
  "$FERRY" status --registry "$REG_URL" --json | python3 -c "
import json, sys
doc = json.load(sys.stdin)
for h in doc['hosts']:
    if h['name'] != sys.argv[1]: continue
    for w in h['workloads']:
        if w['name'] == sys.argv[2] and w['version'] == sys.argv[3]:
            print(w[sys.argv[4]]); sys.exit(0)
sys.exit(1)" "$@"
}

workload_state_is() { [ "$(workload_field "$1" "$2" "$3" state 2>/dev/null)" = "$4" ]; }

# make_web_app DIR NAME VERSION [HEALTH_PATH]: serves its own directory on
# $PORT with python3's http.server; health is GET HEALTH_PATH (default /).
make_web_app() {
  local dir=$1 name=$2 version=$3 health=${4:-/}
  mkdir -p "$dir"
  cat > "$dir/ferry.yaml" <<YAML
name: $name
version: "$version"
kind: app
runtime: exec
run:
  command: ["./serve.sh", "--port", "\${PORT}"]
  env:
    MESSAGE: "$name $version"
health:
  http:
    path: $health
    status: 200
  deadline: 4s
  interval: 200ms
YAML
  cat > "$dir/serve.sh" <<'SH'
#!/bin/sh
printf '%s\n' "$MESSAGE" > index.html 2>/dev/null || true
# the agent expands \${PORT} in the arguments; the env var is set too
[ "$1" = --port ] && [ "$2" = "$PORT" ] || { echo "bad arguments: $*" >&2; exit 64; }
exec python3 -m http.server "$2" --bind 127.0.0.1
SH
  chmod +x "$dir/serve.sh"
}

# runs_with_env DIR K=V: true when a process working under DIR has K=V in
# its environment (scoped to this test's tree, unlike a machine-wide pgrep).
runs_with_env() {
  local d
  for d in /proc/[0-9]*; do
    case "$(readlink "$d/cwd" 2>/dev/null)" in
      "$1"/*) tr '\0' '\n' < "$d/environ" 2>/dev/null | grep -qxF -- "$2" && return 0 ;;
    esac
  done
  return 1
}

# answer PORT: what the app says on /
answer() { curl -fsS --max-time 2 "http://127.0.0.1:$1/" 2>/dev/null; }

# stop_and_wait PID SECONDS WHAT: SIGTERM, then the exit status, bounded.
stop_and_wait() {
  local pid=$1 secs=$2 what=$3
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_until "$secs" bash -c "! kill -0 $pid 2>/dev/null || grep -q '^Z' <(awk '{print \$3}' /proc/$pid/stat 2>/dev/null)"; then
    # Leave the threads' stacks in the log: a hang is worth a diagnosis.
    command -v gdb >/dev/null && gdb -p "$pid" -batch -ex "thread apply all bt" >&2 2>/dev/null
    fail "$what did not exit within ${secs}s of SIGTERM"
  fi
  local rc=0
  wait "$pid" || rc=$?
  return $rc
}

# enroll_attackers PREFIX N [--label K=V]...: N hosts PREFIX1..PREFIXN
# enrolled with lib.sh's join token (as a compromised host's agent would
# be), each with its own key $T/PREFIXi.key. Sets ATTACK_HOSTS and
# ATTACK_KEYS, comma-separated, for ferry-poke stall-polls, which polls as
# each in turn: a host's polls must be checked in the order of their send
# times, and the registry checks several requests at once (so give a few
# times more hosts than its 8 workers).
enroll_attackers() {
  local prefix=$1 n=$2 i; shift 2
  local hosts=() keys=() pids=()
  for i in $(seq "$n"); do
    "$FERRY" keygen "$prefix$i" --dir "$T" >/dev/null
    "$FERRY_FORGE" "$REG_URL" hello "$prefix$i" "$T/$prefix$i.key" --token "$LIB_JOIN_TOKEN" "$@" \
      2>>"$T/enroll-$prefix.err" &
    pids+=($!)
    hosts+=("$prefix$i"); keys+=("$T/$prefix$i.key")
  done
  for i in "${pids[@]}"; do wait "$i" || fail "enrolling $prefix hosts: $(cat "$T/enroll-$prefix.err")"; done
  ATTACK_HOSTS=$(IFS=,; echo "${hosts[*]}")
  ATTACK_KEYS=$(IFS=,; echo "${keys[*]}")
}
