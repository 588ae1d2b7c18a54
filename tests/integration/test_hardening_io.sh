#!/usr/bin/env bash
# Files and numbers from the user: a FIFO given as a key or trust file is
# refused at once; a full disk is reported with the file and the reason, by
# `ferry pull` and by the agent; numeric flags and environment numbers are
# parsed strictly.
source "$(dirname "$0")/lib.sh"

# Small filesystems this test mounts; unmounted before lib.sh's cleanup
# removes the scratch tree (which it could not do with them mounted).
MOUNTS=()
unmount_all() {
  local rc=$? m
  for m in "${MOUNTS[@]:-}"; do
    [ -n "$m" ] || continue
    # The agent may still hold files there: kill what we started first.
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  # cleanup reads the exit status from $?; set -e must not end the trap
  # when it is a failure's.
  set +e
  (exit $rc)
  cleanup
}
trap unmount_all EXIT
small_fs() { # small_fs DIR SIZE
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2" tmpfs "$1" || fail "cannot mount a tmpfs on $1 (the tests run as root)"
  MOUNTS+=("$1")
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# refused_fast PATTERN CMD...: CMD (bounded by timeout 5, so a hang fails
# this test rather than the suite) fails within a second with one line.
refused_fast() {
  local pattern=$1; shift
  local t0 out rc=0
  t0=$(now_ms)
  out=$(timeout 5 "$@" 2>&1 >/dev/null) || rc=$?
  local took=$(( $(now_ms) - t0 ))
  [ $rc -ne 0 ] || fail "accepted: $*"
  [ $rc -ne 124 ] || fail "hung until killed: $*"
  [ $took -lt 1000 ] || fail "took ${took} ms to refuse: $*"
  grep -Eq -- "$pattern" <<<"$out" || fail "error for '$*' was '$out', expected /$pattern/"
  [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "error for '$*' is not one line: $out"
}

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
make_app "$T/app" shop 1.0
"$FERRY" publish "$T/app" --registry "$REG_URL" --key "$T/ops.key" >/dev/null

# --- FIFOs (and a device) as key and trust files: refused at once
mkfifo "$T/pipe.key" "$T/pipe.pub"
chmod 600 "$T/pipe.key"
fifo="not a regular file \(a FIFO\)"
refused_fast "pipe\.key: $fifo" "$FERRY" publish "$T/app" --registry "$REG_URL" --key "$T/pipe.key"
refused_fast "pipe\.key: $fifo" env FERRY_KEY="$T/pipe.key" "$FERRY" publish "$T/app" --registry "$REG_URL"
refused_fast "pipe\.key: $fifo" "$FERRY" deploy shop@1.0 --to env=x --registry "$REG_URL" --key "$T/pipe.key"
refused_fast "pipe\.pub: $fifo" "$FERRY" pull shop@1.0 --out "$T/o1" --registry "$REG_URL" --trust "$T/pipe.pub"
refused_fast "pipe\.pub: $fifo" env FERRY_TRUST="$T/ops.pub:$T/pipe.pub" \
  "$FERRY" pull shop@1.0 --out "$T/o1" --registry "$REG_URL"
refused_fast "/dev/zero: not a regular file \(a character device\)" \
  "$FERRY" publish "$T/app" --registry "$REG_URL" --key /dev/zero
refused_fast "^ferry-registry: .*pipe\.pub: $fifo" \
  "$FERRY_REGISTRY_BIN" --data "$T/reg2" --listen tcp://127.0.0.1:0 --trust "$T/pipe.pub"
refused_fast "^ferry-registry: --http-logs-key $T/pipe\.key: $T/pipe\.key: $fifo$" \
  "$FERRY_REGISTRY_BIN" --data "$T/reg2" --listen tcp://127.0.0.1:0 --http 127.0.0.1:0 --http-logs-key "$T/pipe.key"
refused_fast "^ferry-agent: .*pipe\.pub: $fifo" \
  "$FERRY_AGENT_BIN" --registry "$REG_URL" --state "$T/a0" --trust "$T/pipe.pub"
[ ! -e "$T/o1" ] || fail "a refused pull left $T/o1"
"$FERRY_POKE" "$REG_URL" ping >/dev/null || fail "registry stopped answering"
pass "a FIFO or device as key or trust file (CLI, registry, agent) is refused within a second"

# --- a pull that runs out of space names the file and the reason
make_app "$T/big" big 1.0
head -c 4000000 /dev/urandom > "$T/big/data.bin"
"$FERRY" publish "$T/big" --registry "$REG_URL" --key "$T/ops.key" >/dev/null
small_fs "$T/small" 2m
rc=0
err=$("$FERRY" pull big@1.0 --out "$T/small/out" --registry "$REG_URL" --trust "$T/ops.pub" 2>&1 >/dev/null) || rc=$?
[ $rc -ne 0 ] || fail "pull into a full filesystem succeeded"
# FILE is where the file was going (OUT/data.bin), not its staging copy.
want="ferry: pull big@1.0: writing $T/small/out/data.bin: No space left on device"
[ "$err" = "$want" ] || fail "pull into a full filesystem said '$err', expected '$want'"
[ -z "$(ls -A "$T/small")" ] || fail "a failed pull left a partial tree: $(ls -A "$T/small")"
pass "out-of-space pull: '$err', nothing left behind"

# Room again: the same pull then works (the failure left nothing in the way).
"$FERRY" pull shop@1.0 --out "$T/small/shop" --registry "$REG_URL" --trust "$T/ops.pub" >/dev/null \
  || fail "a small pull after the failed one"
pass "the filesystem is usable after the failed pull"

# An export into the full filesystem says the same, and leaves no file.
rc=0
err=$("$FERRY" export big@1.0 -o "$T/small/big.tar" --registry "$REG_URL" 2>&1 >/dev/null) || rc=$?
[ $rc -ne 0 ] || fail "export into a full filesystem succeeded"
grep -Eqx "ferry: export big@1\.0: writing $T/small/big\.tar \(blobs/[0-9a-f]{64}\): No space left on device" <<<"$err" \
  || fail "export into a full filesystem said '$err'"
[ "$(ls -A "$T/small")" = shop ] || fail "a failed export left files: $(ls -A "$T/small")"
pass "out-of-space export: '$err', nothing left behind"

# --- the agent reports the same reason for the workload
small_fs "$T/agentfs" 2m
start_agent h1 "$T/agentfs/state" --label env=io --trust "$T/ops.pub"
"$FERRY" deploy big@1.0 --to env=io --registry "$REG_URL" --key "$T/ops.key" >/dev/null
reason_has_enospc() {
  local r
  r=$(workload_field h1 big 1.0 reason) || return 1
  [ "$r" = "pull big@1.0: writing $T/agentfs/state/workloads/big/1.0/data.bin: No space left on device" ]
}
wait_until 30 reason_has_enospc || \
  fail "agent did not report the out-of-space reason: state=$(workload_field h1 big 1.0 state 2>&1) reason=$(workload_field h1 big 1.0 reason 2>&1)"
[ "$(workload_field h1 big 1.0 state)" = failed ] || fail "workload is not failed"
pass "agent on a full disk reports: $(workload_field h1 big 1.0 reason)"

# --- strict numbers: usage error (exit 2), one line naming flag and value
usage_fails() { # usage_fails PATTERN CMD...
  local pattern=$1; shift
  local out rc=0
  out=$(timeout 5 "$@" 2>&1 >/dev/null) || rc=$?
  [ $rc -eq 2 ] || fail "exit $rc (want 2) from: $* ($out)"
  grep -Eq -- "$pattern" <<<"$out" || fail "error for '$*' was '$out', expected /$pattern/"
  [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "error for '$*' is not one line: $out"
}
usage_fails "^ferry events: --limit '5abc': not a whole number" "$FERRY" events --limit 5abc --registry "$REG_URL"
usage_fails "--limit '0': must be from 1" "$FERRY" events --limit 0 --registry "$REG_URL"
usage_fails "--limit '-3'" "$FERRY" events --limit -3 --registry "$REG_URL"
usage_fails "--limit '99999999999999999999': number too large" "$FERRY" events --limit 99999999999999999999
usage_fails "--timeout '10x': not a duration" "$FERRY" status --wait shop@1.0 --timeout 10x
usage_fails "^ferry-registry: --workers '4k': not a whole number" \
  "$FERRY_REGISTRY_BIN" --data "$T/reg3" --workers 4k
usage_fails "^ferry-registry: --host-ttl '15 s': not a duration" \
  "$FERRY_REGISTRY_BIN" --data "$T/reg3" --host-ttl "15 s"
usage_fails "^ferry-agent: FERRY_AGENT_LOG_CAP '1e6': not a whole number" \
  env FERRY_AGENT_LOG_CAP=1e6 "$FERRY_AGENT_BIN" --registry "$REG_URL" --state "$T/a1" --trust "$T/ops.pub"
usage_fails "^ferry-agent: FERRY_AGENT_HEARTBEAT_MS '0': must be from 1" \
  env FERRY_AGENT_HEARTBEAT_MS=0 "$FERRY_AGENT_BIN" --registry "$REG_URL" --state "$T/a1" --trust "$T/ops.pub"
usage_fails "^ferry-agent: FERRY_TIMEOUT_MS 'soon': not a whole number" \
  env FERRY_TIMEOUT_MS=soon "$FERRY_AGENT_BIN" --registry "$REG_URL" --state "$T/a1" --trust "$T/ops.pub"
[ ! -e "$T/reg3" ] && [ ! -e "$T/a1" ] || fail "a refused start left state behind"
# Not a usage error but still not a silent default: the command fails.
expect_fail "^ferry: FERRY_TIMEOUT_MS '20s': not a whole number" \
  env FERRY_TIMEOUT_MS=20s "$FERRY" versions shop --registry "$REG_URL"
# Good values still work, including the duration forms.
"$FERRY" events --limit 5 --registry "$REG_URL" >/dev/null || fail "--limit 5"
# No host is meant to run it: status --wait fails at once (the 300ms form of
# --timeout is exercised against a real wait in test_operator_cli.sh).
expect_fail "no online host has shop@1.0 as its desired state" \
  "$FERRY" status --wait shop@1.0 --timeout 300ms --registry "$REG_URL"
pass "numeric flags and environment numbers are parsed strictly"

"$FERRY_POKE" "$REG_URL" ping >/dev/null || fail "registry stopped answering"
