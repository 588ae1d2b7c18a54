#!/usr/bin/env bash
# The agent killed in the middle of a large fetch resumes it on restart, and
# the workload runs; a damaged entry in its blob cache is replaced by the
# verified re-fetch.
source "$(dirname "$0")/lib.sh"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent h1 "$T/h1" --label env=prod --trust "$T/ops.pub"

mkdir -p "$T/big"
printf 'name: big\nversion: "1"\nkind: app\nruntime: exec\nrun:\n  command: ["/bin/sleep", "1000"]\n' > "$T/big/ferry.yaml"
size=$((256 * 1024 * 1024))
head -c "$size" /dev/urandom > "$T/big/model.bin"
digest=$(b2sum -l 256 "$T/big/model.bin" | cut -d' ' -f1)
"$FERRY" publish "$T/big" >/dev/null

# --- kill -9 while the staging file grows
partial_growing() {
  local f
  f=$(ls "$T"/h1/workloads/big/.1.ferry-partial-*/model.bin 2>/dev/null | head -n 1)
  [ -n "$f" ] || return 1
  local s; s=$(stat -c %s "$f" 2>/dev/null) || return 1
  [ "$s" -gt $((16 * 1024 * 1024)) ] && [ "$s" -lt "$size" ]
}
"$FERRY" deploy big@1 --to env=prod >/dev/null
deadline=$(( $(date +%s) + 60 ))
until partial_growing; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "the fetch never got under way"
  [ ! -e "$T/h1/workloads/big/1" ] || fail "the fetch finished before it could be interrupted"
  sleep 0.005
done
kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true
f=$(ls "$T"/h1/workloads/big/.1.ferry-partial-*/model.bin)
had=$(stat -c %s "$f")
[ "$had" -lt "$size" ] || fail "the fetch was not interrupted"
[ ! -e "$T/h1/workloads/big/1" ] || fail "a partial tree is visible under its version"
served=$(stat_counter chunks_served)
start_agent h1 "$T/h1" --label env=prod --trust "$T/ops.pub"
wait_until 10 grep -q 'big@1: resuming the interrupted fetching' "$T/agent-h1.log" \
  || fail "the restarted agent did not resume the fetch"
"$FERRY" status --wait big@1 --timeout 120 >/dev/null || fail "status --wait big@1 after the restart"
cmp -s "$T/big/model.bin" "$T/h1/workloads/big/1/model.bin" || fail "model.bin differs"
! ls -d "$T"/h1/workloads/big/.1.ferry-partial-* >/dev/null 2>&1 || fail "staging left behind"
more=$(( $(stat_counter chunks_served) - served ))
total=$(( size / 1048576 ))
[ "$more" -lt "$total" ] || fail "the restart fetched $more of $total chunks: nothing was resumed"
pass "kill -9 during a fetch ($((had / 1048576)) of $total MiB staged): the restart resumes it ($more chunks more) and big@1 runs"

# --- kill -9 while verifying the tree before a start: the restart verifies again
# (256 MiB take a moment to hash; should the kill land after the check, try again)
interrupted=0
for attempt in 1 2 3; do
  pid=$(workload_field h1 big 1 pid)
  stop_and_wait "$AGENT_PID" 30 "the agent" || true
  kill -9 "$pid"
  wait_until 10 bash -c "! kill -0 $pid 2>/dev/null" || fail "could not stop big@1"
  n=$(grep -c 'big@1 verifying' "$T/agent-h1.log" || true)
  start_agent h1 "$T/h1" --label env=prod --trust "$T/ops.pub"
  wait_until 30 bash -c "[ \$(grep -c 'big@1 verifying' '$T/agent-h1.log') -gt $n ]" || fail "big@1 was not verified before its start"
  kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true
  state=$(sqlite3 "$T/h1/agent.db" "SELECT state FROM runs WHERE name='big'")
  start_agent h1 "$T/h1" --label env=prod --trust "$T/ops.pub"
  if [ "$state" = verifying ]; then
    wait_until 10 grep -q 'big@1: resuming the interrupted verifying' "$T/agent-h1.log" \
      || fail "the restarted agent did not resume the verification"
    interrupted=1
  fi
  "$FERRY" status --wait big@1 --timeout 60 >/dev/null || fail "status --wait big@1 after a kill while verifying"
  [ $interrupted = 0 ] || break
done
[ $interrupted = 1 ] || fail "three kills all missed the verification"
pass "kill -9 while verifying: the restart verifies again and big@1 runs"

# --- a damaged cache entry: corrupted in place, same size
"$FERRY" undeploy big --to env=prod >/dev/null
wait_until 20 test ! -e "$T/h1/workloads/big/1" || fail "big@1's tree was not removed"
cached="$T/h1/blobs/$digest"
[ -f "$cached" ] || fail "model.bin is not in the blob cache"
printf 'garbage' | dd of="$cached" bs=1 seek=4096 conv=notrunc status=none
[ "$(b2sum -l 256 "$cached" | cut -d' ' -f1)" != "$digest" ] || fail "could not damage the cache entry"
served=$(stat_counter chunks_served)
"$FERRY" deploy big@1 --to env=prod >/dev/null
"$FERRY" status --wait big@1 --timeout 120 >/dev/null || fail "big@1 did not run from a damaged cache"
cmp -s "$T/big/model.bin" "$T/h1/workloads/big/1/model.bin" || fail "model.bin differs after the re-fetch"
[ "$(b2sum -l 256 "$cached" | cut -d' ' -f1)" = "$digest" ] || fail "the damaged cache entry was not replaced"
[ $(( $(stat_counter chunks_served) - served )) -ge "$total" ] || fail "the damaged entry was used, not re-fetched"
pass "a damaged blob cache entry is re-fetched, verified, and replaces the entry"
