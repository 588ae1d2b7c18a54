#!/usr/bin/env bash
# Jobs: workloads that run to completion, with retries and on a schedule.
# Each job appends a line to a file outside its tree (the path comes through
# run.env), so the runs are counted from outside.
source "$(dirname "$0")/lib.sh"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent h1 "$T/h1" --label env=test --trust "$T/ops.pub"

# make_job DIR NAME EXIT_STATUS [extra ferry.yaml lines for run:] [top-level lines]
make_job() {
  local dir=$1 name=$2 status=$3 run_extra=${4:-} top=${5:-}
  mkdir -p "$dir"
  cat > "$dir/ferry.yaml" <<YAML
name: $name
version: "1"
kind: app
runtime: exec
run:
  command: ["./job.sh"]
  mode: job
  env:
    COUNT_FILE: "$T/$name.count"
$run_extra
$top
YAML
  cat > "$dir/job.sh" <<SH
#!/bin/sh
date +%s.%N >> "\$COUNT_FILE"
exit $status
SH
  chmod +x "$dir/job.sh"
}
runs() { [ -f "$T/$1.count" ] && wc -l < "$T/$1.count" || echo 0; }

# --- a job that exits 0 ends succeeded, and status --wait returns 0
make_job "$T/ok" ok 0
"$FERRY" publish "$T/ok" >/dev/null
"$FERRY" deploy ok@1 --to env=test >/dev/null
"$FERRY" status --wait ok@1 --timeout 30 >/dev/null || fail "status --wait ok@1 did not return 0"
workload_state_is h1 ok 1 succeeded || fail "ok@1 is $(workload_field h1 ok 1 state), not succeeded"
[ "$(workload_field h1 ok 1 reason)" = "exited with status 0" ] \
  || fail "ok@1 reason: $(workload_field h1 ok 1 reason)"
[ "$(runs ok)" -eq 1 ] || fail "ok@1 ran $(runs ok) times"
pass "a job that exits 0 is succeeded and status --wait returns 0"

# --- deploy --wait of the same job again waits for the new run, not the
# succeeded of the one before (a new signed decision runs a job again)
"$FERRY" deploy ok@1 --to env=test --wait --timeout 30 >/dev/null || fail "deploy --wait ok@1 again"
[ "$(runs ok)" -eq 2 ] || fail "deploy --wait ok@1 returned after $(runs ok) runs, before the new run ended"
workload_state_is h1 ok 1 succeeded || fail "ok@1 is $(workload_field h1 ok 1 state) after the re-deploy"
pass "deploy --wait of a job again returns once the new run succeeded"

# --- exit 1 with retries: 2 runs three times, then failed with the status
make_job "$T/bad" bad 1 "  retries: 2"
"$FERRY" publish "$T/bad" >/dev/null
"$FERRY" deploy bad@1 --to env=test >/dev/null
rc=0; out=$("$FERRY" status --wait bad@1 --timeout 60 2>&1 >/dev/null) || rc=$?
[ $rc -eq 1 ] || fail "status --wait bad@1 exited $rc, not 1: $out"
echo "$out" | grep -q 'host h1: bad@1 failed: exited with status 1 after 3 runs' \
  || fail "status --wait said: $out"
workload_state_is h1 bad 1 failed || fail "bad@1 is $(workload_field h1 bad 1 state)"
[ "$(runs bad)" -eq 3 ] || fail "bad@1 ran $(runs bad) times, not 3"
[ "$(workload_field h1 bad 1 restarts)" -eq 2 ] || fail "bad@1 restarts: $(workload_field h1 bad 1 restarts)"
# The crash-loop rule is not what ended it, and nothing runs it again.
grep -q 'bad@1 failed: crash loop' "$T/agent-h1.log" && fail "bad@1 ended as a crash loop"
ok_runs=$(runs ok)
"$FERRY" status >/dev/null   # one more poll round trip
[ "$(runs bad)" -eq 3 ] && [ "$(runs ok)" -eq "$ok_runs" ] || fail "an ended job ran again"
pass "exit 1 with retries: 2 runs three times and ends failed with the status in the reason"

# --- more retries than the crash-loop limit (5 exits in 60 s): all of them run
make_job "$T/many" many 3 "  retries: 6"
"$FERRY" publish "$T/many" >/dev/null
"$FERRY" deploy many@1 --to env=test >/dev/null
rc=0; out=$("$FERRY" status --wait many@1 --timeout 60 2>&1 >/dev/null) || rc=$?
[ $rc -eq 1 ] || fail "status --wait many@1 exited $rc: $out"
echo "$out" | grep -q 'many@1 failed: exited with status 3 after 7 runs' || fail "many@1: $out"
[ "$(runs many)" -eq 7 ] || fail "many@1 ran $(runs many) times, not 7"
pass "a job's retries are not cut short by the crash-loop rule"

# --- @every 2s: runs again and again, scheduled in between
make_job "$T/tick" tick 0 "" 'schedule: "@every 2s"'
"$FERRY" publish "$T/tick" >/dev/null
"$FERRY" deploy tick@1 --to env=test >/dev/null
"$FERRY" status --wait tick@1 --timeout 30 >/dev/null || fail "status --wait tick@1"
wait_until 10 workload_state_is h1 tick 1 scheduled || fail "tick@1 is not scheduled"
workload_field h1 tick 1 reason | grep -Eq '^next run at [0-9T:-]+Z' \
  || fail "tick@1 reason: $(workload_field h1 tick 1 reason)"
ran_at_least() { [ "$(runs "$1")" -ge "$2" ]; }
wait_until 20 ran_at_least tick 2 || fail "tick@1 ran $(runs tick) times in 20s"
shows_last_run() { workload_field h1 tick 1 reason | grep -q 'last run: exited with status 0'; }
wait_until 10 shows_last_run || fail "tick@1 does not show its last run: $(workload_field h1 tick 1 reason)"
wait_until 10 workload_state_is h1 tick 1 scheduled || fail "tick@1 is not scheduled between runs"
pass "an @every 2s job ran $(runs tick) times and is scheduled between runs"

# --- across an agent restart the schedule goes on
stop_and_wait "$AGENT_PID" 30 "the agent" || true
n=$(runs tick)
start_agent h1 "$T/h1" --label env=test --trust "$T/ops.pub"
wait_until 20 ran_at_least tick $((n + 2)) \
  || fail "tick@1 did not keep its schedule after an agent restart ($(runs tick) runs, had $n)"
grep -q 'tick@1 scheduled: next run at' "$T/agent-h1.log" || fail "no scheduled line in the agent log"
workload_state_is h1 ok 1 succeeded || fail "ok@1 did not stay succeeded across the restart"
[ "$(runs ok)" -eq 2 ] || fail "the restart ran ok@1 again ($(runs ok) runs; 2 before it)"
pass "the schedule survives an agent restart; an ended job is not re-run"

# --- undeploy drops a scheduled job and its timer
"$FERRY" undeploy tick --to env=test >/dev/null
tick_gone() { ! workload_field h1 tick 1 state && [ ! -e "$T/h1/workloads/tick/1" ]; }
wait_until 20 tick_gone || fail "tick is still there after the undeploy"
n=$(runs tick)
# Negative check: more than two periods pass without a run.
if wait_until 5 ran_at_least tick $((n + 1)); then fail "tick kept running after the undeploy"; fi
pass "undeploy stops a scheduled job"

# --- bad input: a schedule for a service, or a bad expression, is refused at publish
mkdir -p "$T/svc"
printf 'name: svc\nversion: "1"\nkind: app\nruntime: exec\nrun:\n  command: ["./x"]\nschedule: "@every 5s"\n' \
  > "$T/svc/ferry.yaml"
printf '#!/bin/sh\n' > "$T/svc/x"; chmod +x "$T/svc/x"
expect_fail 'ferry.yaml:7: key .schedule.: a schedule needs run.mode: job' "$FERRY" publish "$T/svc"
make_job "$T/cron" cron 0 "" 'schedule: "0 25 * * *"'
expect_fail "ferry.yaml:1[0-9]: key 'schedule': hour field '25': 25 is out of range 0-23" \
  "$FERRY" publish "$T/cron"
expect_fail 'no such artifact version' "$FERRY" deploy svc@1 --to env=test
pass "a schedule for a service and a bad cron expression are refused at publish"
