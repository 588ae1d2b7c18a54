#!/usr/bin/env bash
# The real agent loads a plugin only when root or its own user owns the file
# and the folder, and no one else can write them; a symlink's target is held
# to the same test. The check comes before dlopen: the test plugin's
# constructor writes a marker file, which must not appear. One line per
# refusal, and the agent keeps running.
source "$(dirname "$0")/lib.sh"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
MARKER_SO="$FERRY_BIN/test-plugins-marker/marker.so"
[ -f "$MARKER_SO" ] || fail "no test plugin at $MARKER_SO"
[ "$(id -u)" = 0 ] || fail "this test gives files to another user and needs root"
n=0

# plugin_case NAME: a fresh plugins folder with exec.so and marker.so
plugin_case() {
  P="$T/$1/plugins"
  mkdir -p "$P"
  chmod 755 "$T/$1" "$P"
  install -m 755 "$FERRY_PLUGINS/exec.so" "$P/exec.so"
  install -m 755 "$MARKER_SO" "$P/marker.so"
}

# run_case NAME REASON [LOADS_EXEC]: start an agent on the folder, expect
# marker.so refused with REASON (grep -E), before its constructor ran.
run_case() {
  local name=$1 reason=$2 exec_loads=${3:-1}
  n=$((n + 1))
  FERRY_TEST_MARKER="$T/$name/marker" FERRY_PLUGINS="$P" \
    start_agent "$name" "$T/$name/state" --trust "$T/ops.pub"
  local log="$T/agent-$name.log"
  grep -Eq "plugin $P/marker.so refused: $reason" "$log" || fail "$name: no refusal line: $(grep plugin "$log")"
  [ "$(grep -c 'marker.so' "$log")" -eq 1 ] || fail "$name: more than one line about marker.so"
  [ ! -e "$T/$name/marker" ] || fail "$name: the refused plugin's constructor ran"
  if [ "$exec_loads" = 1 ]; then
    grep -q "plugin exec loaded from $P/exec.so" "$log" || fail "$name: exec did not load"
  fi
  kill -0 "$AGENT_PID" || fail "$name: the agent did not keep running"
  stop_and_wait "$AGENT_PID" 30 "agent $name" || fail "agent $name did not stop cleanly"
}

# --- the control: nothing wrong, it loads and its constructor runs
plugin_case control
FERRY_TEST_MARKER="$T/control/marker" FERRY_PLUGINS="$P" start_agent control "$T/control/state" --trust "$T/ops.pub"
grep -q "plugin marker loaded from $P/marker.so" "$T/agent-control.log" || fail "control: marker.so did not load"
[ -e "$T/control/marker" ] || fail "control: the constructor left no marker, so its absence would prove nothing"
stop_and_wait "$AGENT_PID" 30 "agent control" || true
pass "control: a plugin owned by root, mode 0755, loads (its constructor ran)"

plugin_case groupw
chmod 775 "$P/marker.so"
run_case groupw 'writable by its group \(mode 0775\)'
pass "a group-writable plugin is refused before load"

plugin_case owner
chown nobody "$P/marker.so"
run_case owner "owned by uid $(id -u nobody), not root or the agent's user \(uid 0\)"
pass "a plugin owned by another user is refused before load"

plugin_case worldw
chmod 777 "$P"
run_case worldw "folder $P is writable by others \(mode 0777\)" 0
grep -q "plugin $P/exec.so refused: folder $P is writable by others" "$T/agent-worldw.log" \
  || fail "exec.so in a world-writable folder was not refused"
grep -q "no plugins loaded from $P" "$T/agent-worldw.log" || fail "no warning that nothing can run"
pass "plugins in a world-writable folder are refused before load; the agent keeps running without them"

plugin_case link
mkdir -p "$T/link/elsewhere"
chmod 755 "$T/link/elsewhere"
mv "$P/marker.so" "$T/link/elsewhere/marker.so"
chmod 775 "$T/link/elsewhere/marker.so"
ln -s "$T/link/elsewhere/marker.so" "$P/marker.so"
run_case link "symlink to $T/link/elsewhere/marker.so, which is writable by its group \(mode 0775\)"
pass "a symlink to a group-writable plugin is refused before load"

# The build tree's own folder passes the rule as built.
"$FERRY_AGENT_BIN" --help >/dev/null
mode=$(stat -c %a "$FERRY_PLUGINS")
case "$mode" in *[2367]?|*?[2367]) fail "the build's plugin folder $FERRY_PLUGINS is writable by others (mode $mode)";; esac
pass "the build tree's plugin folder (mode $mode) passes the rule"
