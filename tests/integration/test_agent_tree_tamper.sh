#!/usr/bin/env bash
# A workload tree edited on disk never runs: every start, restarts and agent
# restarts included, verifies the tree against the signed manifest first and
# materializes it afresh when it differs.
source "$(dirname "$0")/lib.sh"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent h1 "$T/h1" --label env=prod --trust "$T/ops.pub"

# The edit an attacker with write access to the tree would make.
evil="#!/bin/sh
echo pwned >> '$T/pwned'
exec sleep 1000
"
no_marker() { [ ! -e "$T/pwned" ] || fail "the edited tree ran: $1"; }

simple_app() { # simple_app DIR NAME VERSION SCRIPT
  mkdir -p "$1"
  printf 'name: %s\nversion: "%s"\nkind: app\nruntime: exec\nrun:\n  command: ["./run.sh"]\n' "$2" "$3" > "$1/ferry.yaml"
  printf '%s' "$4" > "$1/run.sh"
  chmod 755 "$1/run.sh"
}

# --- a failed deploy, its tree edited, deployed again
simple_app "$T/bad" tamper 1 "#!/bin/sh
exit 3
"
"$FERRY" publish "$T/bad" >/dev/null
"$FERRY" deploy tamper@1 --to env=prod >/dev/null
wait_until 30 workload_state_is h1 tamper 1 failed || fail "tamper@1 did not fail"
tree="$T/h1/workloads/tamper/1"
printf '%s' "$evil" > "$tree/run.sh"    # in place: the same inode as the cache entry
echo "earlier output" >> "$tree/.ferry/stdout.log"
"$FERRY" deploy tamper@1 --to env=prod >/dev/null
wait_until 20 grep -q "tamper@1: tree differs from its manifest: 'run.sh' .*; materialized afresh" "$T/agent-h1.log" \
  || fail "the agent did not notice the edited tree on the next deploy"
cmp -s "$T/bad/run.sh" "$tree/run.sh" || fail "run.sh was not materialized afresh"
wait_until 30 workload_state_is h1 tamper 1 failed || fail "tamper@1 (the signed one) did not fail again"
grep -q 'exited with status 3' "$T/agent-h1.log" || fail "the signed run.sh did not run"
no_marker "on the next deploy"
grep -q "earlier output" "$tree/.ferry/stdout.log" || fail "the workload's logs were lost with the edited tree"
pass "a tree edited after a failed deploy is materialized afresh on the next deploy; the edit never runs"

# --- edited again, then the agent restarts: nothing starts it, and a deploy verifies it
printf '%s' "$evil" > "$tree/run.sh"
stop_and_wait "$AGENT_PID" 30 "the agent" || true
start_agent h1 "$T/h1" --label env=prod --trust "$T/ops.pub"
wait_until 20 workload_state_is h1 tamper 1 failed || fail "tamper@1 is not failed after the restart"
no_marker "after an agent restart"
n=$(grep -c "tamper@1: tree differs" "$T/agent-h1.log")
"$FERRY" deploy tamper@1 --to env=prod >/dev/null
wait_until 20 bash -c "[ \$(grep -c 'tamper@1: tree differs' '$T/agent-h1.log') -gt $n ]" \
  || fail "the deploy after the restart did not verify the tree"
wait_until 30 workload_state_is h1 tamper 1 failed || fail "tamper@1 did not fail again"
no_marker "on a deploy after an agent restart"
pass "after an agent restart the edited tree does not run, and the next deploy materializes it afresh"

# --- a running workload's tree edited; the agent restarts and must start it
simple_app "$T/svc" svc 1 "#!/bin/sh
exec sleep 1000
"
"$FERRY" publish "$T/svc" >/dev/null
"$FERRY" deploy svc@1 --to env=prod >/dev/null
"$FERRY" status --wait svc@1 --timeout 30 >/dev/null || fail "svc@1 did not start"
svc="$T/h1/workloads/svc/1"
pid=$(workload_field h1 svc 1 pid)
stop_and_wait "$AGENT_PID" 30 "the agent" || true
printf '%s' "$evil" > "$svc/run.sh"
kill -9 "$pid"
wait_until 10 bash -c "! kill -0 $pid 2>/dev/null" || fail "could not stop svc"
start_agent h1 "$T/h1" --label env=prod --trust "$T/ops.pub"
wait_until 20 grep -q "svc@1: tree differs from its manifest: 'run.sh'" "$T/agent-h1.log" \
  || fail "the restarted agent started svc@1 without verifying its tree"
restarted() { workload_state_is h1 svc 1 running && [ "$(workload_field h1 svc 1 pid)" != "$pid" ]; }
wait_until 30 restarted || fail "svc@1 is not running again"
cmp -s "$T/svc/run.sh" "$svc/run.sh" || fail "svc's run.sh was not materialized afresh"
no_marker "when a restarted agent started the workload"
pass "an agent restart verifies the tree before starting the workload"

# --- edited while running, then the process dies: the restart verifies too
pid=$(workload_field h1 svc 1 pid)
printf '%s' "$evil" > "$svc/run.sh"
n=$(grep -c "svc@1: tree differs" "$T/agent-h1.log")
kill -9 "$pid"
wait_until 20 bash -c "[ \$(grep -c 'svc@1: tree differs' '$T/agent-h1.log') -gt $n ]" \
  || fail "the supervisor restarted svc@1 without verifying its tree"
wait_until 30 restarted || fail "svc@1 was not restarted"
[ "$(workload_field h1 svc 1 restarts)" -ge 1 ] || fail "no restart counted"
no_marker "when the supervisor restarted the workload"
# An added file is an edit too.
pid=$(workload_field h1 svc 1 pid)
echo 'print("hijacked")' > "$svc/sitecustomize.py"
kill -9 "$pid"
wait_until 20 grep -q "svc@1: tree differs from its manifest: 'sitecustomize.py' is a file the manifest does not have" \
  "$T/agent-h1.log" || fail "an added file was not noticed"
wait_until 30 restarted || fail "svc@1 was not restarted after the added file"
[ ! -e "$svc/sitecustomize.py" ] || fail "the added file is still there"
pass "a restart after a crash verifies the tree too (edited and added files)"

# --- a manifest may not name the agent's own folder, nor collide with ferry.yaml
simple_app "$T/sneaky" sneaky 1 "#!/bin/sh
exec sleep 1000
"
mkdir -p "$T/sneaky/.ferry"
echo 'fake log' > "$T/sneaky/.ferry/stdout.log"
expect_fail "path '.ferry/stdout.log': inside the agent's own folder .ferry/" "$FERRY" publish "$T/sneaky"
! "$FERRY" versions sneaky 2>/dev/null | grep -q '^1' || fail "sneaky@1 was published"
"$FERRY_POKE" "$REG_URL" ping >/dev/null || fail "registry stopped answering"
pass "publishing a tree with the agent's .ferry/ folder in it is refused, naming the path"

# The registry holds the same rule: a signed offer naming paths no directory
# could hold (so the CLI never builds one) is refused at offer, with the path.
simple_app "$T/forged" forged 1 "#!/bin/sh
exec sleep 1000
"
echo a > "$T/forged/a"
echo b > "$T/forged/b"
expect_fail "path 'a/b' is under 'a', which is a file" \
  "$FERRY_FORGE" "$REG_URL" offer "$T/forged" "$T/ops.key" - --path b a/b
expect_fail "'ferry.yaml/x'.*collides with the spec file" \
  "$FERRY_FORGE" "$REG_URL" offer "$T/forged" "$T/ops.key" - --path b ferry.yaml/x
expect_fail "'.ferry/x'.*inside the agent's own folder .ferry/" \
  "$FERRY_FORGE" "$REG_URL" offer "$T/forged" "$T/ops.key" - --path b .ferry/x
"$FERRY_FORGE" "$REG_URL" offer "$T/forged" "$T/ops.key" - --path b c \
  || fail "the control offer (b renamed to c) was refused, so the refusals above prove nothing"
! "$FERRY" versions forged 2>/dev/null | grep -q '^1' || fail "forged@1 was published"
pass "signed offers with 'a' beside 'a/b', 'ferry.yaml/x' or '.ferry/x' are refused by the registry, naming the path"

# ...and so does the agent at fetch: a validly signed manifest with 'a'
# beside 'a/b', put into the registry's store behind its back and deployed,
# is refused by the agent, naming the path, and nothing is materialized.
simple_app "$T/coll" coll 1 "#!/bin/sh
echo pwned >> '$T/pwned'
exec sleep 1000
"
echo a > "$T/coll/a"
echo b > "$T/coll/b"
"$FERRY" publish "$T/coll" >/dev/null
hex=$("$FERRY_FORGE" "$REG_URL" offer "$T/coll" "$T/ops.key" - --path b a/b --write "$T/coll-forged") \
  || fail "could not forge the manifest"
url=$REG_URL
stop_and_wait "$REG_PID" 30 "the registry" || true
mkdir -p "$T/reg/blobs/${hex:0:2}"
cp "$T/coll-forged.manifest" "$T/reg/blobs/${hex:0:2}/$hex"
python3 - "$T/reg/registry.db" "$hex" "$T/coll-forged.sigs" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
n = db.execute("UPDATE artifacts SET manifest_digest=?, signatures=? WHERE name='coll' AND version='1'",
               (bytes.fromhex(sys.argv[2]), open(sys.argv[3], 'rb').read())).rowcount
db.commit()
sys.exit(0 if n == 1 else 1)
PY
start_registry_at reg2 "$T/reg" "$url" --trust "$T/ops.pub"
"$FERRY" deploy coll@1 --to env=prod >/dev/null || fail "deploy coll@1"
wait_until 30 workload_state_is h1 coll 1 failed || fail "coll@1 is not shown failed: $(workload_field h1 coll 1 state)"
workload_field h1 coll 1 reason | grep -q "path 'a/b' is under 'a', which is a file" \
  || fail "coll@1's reason does not name the path: $(workload_field h1 coll 1 reason)"
[ ! -e "$T/h1/workloads/coll/1" ] || fail "the colliding manifest was materialized"
no_marker "with a manifest whose paths collide"
pass "a signed manifest with 'a' beside 'a/b' served by an edited registry is refused by the agent at fetch, naming the path"

# --- the runtime spec is the signed manifest's: a ferry.yaml edited in the tree never runs
spec_evil="name: svc
version: \"1\"
kind: app
runtime: exec
run:
  command: [\"/bin/sh\", \"-c\", \"echo pwned >> '$T/pwned'; exec sleep 1000\"]
"
pid=$(workload_field h1 svc 1 pid)
n=$(grep -c "svc@1: tree differs from its manifest: 'ferry.yaml'" "$T/agent-h1.log" || true)
printf '%s' "$spec_evil" > "$svc/ferry.yaml"
kill -9 "$pid"
wait_until 20 bash -c "[ \$(grep -c \"svc@1: tree differs from its manifest: 'ferry.yaml'\" '$T/agent-h1.log') -gt $n ]" \
  || fail "an edited ferry.yaml in the tree was not noticed"
wait_until 30 restarted || fail "svc@1 was not restarted after the ferry.yaml edit"
cmp -s "$T/svc/ferry.yaml" "$svc/ferry.yaml" || fail "the tree's ferry.yaml was not written afresh from the manifest"
no_marker "with the tree's ferry.yaml edited"
pass "a ferry.yaml edited in the tree is replaced from the signed manifest; its command never runs"
