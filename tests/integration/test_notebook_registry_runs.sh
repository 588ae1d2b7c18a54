#!/usr/bin/env bash
# Notebook runs in the registry: `ferry run` starts one now on a matching
# host (real agent, real nbclient in a real ipykernel), each run is reported
# by the host (running, then its end with the executed notebook), and
# `ferry runs` / `ferry runs get` read them back from the registry. Forged
# and oversized reports are refused with one line and the registry keeps
# serving.
source "$(dirname "$0")/lib.sh"

PY=${FERRY_PYTHON:-/usr/bin/python3}
"$PY" -c 'import nbclient, nbformat, ipykernel' 2>/dev/null \
  || fail "$PY lacks nbclient/nbformat/ipykernel (scripts/install-deps.sh installs them)"
FORGE="$FERRY_BIN/tests/ferry-runforge"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent h1 "$T/h1" --label env=test --trust "$T/ops.pub"
start_agent h2 "$T/h2" --label env=other --trust "$T/ops.pub"

# make_notebook DIR NAME CELL2_SOURCE [notebook: lines]
make_notebook() {
  local dir=$1 name=$2 body=$3 extra=$4
  mkdir -p "$dir"
  "$PY" - "$dir/nb.ipynb" "$body" <<'PY'
import sys, nbformat as f
nb = f.v4.new_notebook()
p = f.v4.new_code_cell('greeting = "default"\nrepeat = 1\nflag = None')
p.metadata["tags"] = ["parameters"]
nb.cells = [p, f.v4.new_code_cell(sys.argv[2]), f.v4.new_code_cell('print("after")')]
f.write(nb, sys.argv[1])
PY
  printf 'name: %s\nversion: "1"\nkind: notebook\nruntime: notebook\nnotebook:\n  notebook: nb.ipynb\n%s\n' \
    "$name" "$extra" > "$dir/ferry.yaml"
}
# run_field NAME ID FIELD: from ferry runs NAME --json
run_field() {
  "$FERRY" runs "$1" --json | "$PY" -c "
import json, sys
for r in json.load(sys.stdin)['runs']:
    if r['id'] == sys.argv[1]:
        print(r[sys.argv[2]])
" "$2" "$3"
}
run_status_is() { [ "$(run_field "$1" "$2" status)" = "$3" ]; }
nruns_with() { # nruns_with NAME STATUS
  "$FERRY" runs "$1" --json | "$PY" -c "
import json, sys
print(sum(1 for r in json.load(sys.stdin)['runs'] if r['status'] == sys.argv[1]))" "$2"
}
at_least_runs() { [ "$(nruns_with "$1" "$2")" -ge "$3" ]; }

# --- ferry run --param --wait: succeeded, listed with the documented keys,
# and the executed notebook (from the registry) shows the parameters.
make_notebook "$T/hello" hello 'print("hello", greeting * repeat, type(flag).__name__)' \
  '  kernel: python3
  parameters: {greeting: ferry, repeat: 1}
  timeout: 2m'
"$FERRY" publish "$T/hello" >/dev/null
"$FERRY" deploy hello@1 --to env=test >/dev/null
# Without a schedule the deploy itself runs it once; then it is a job
# between runs, which `ferry run` may still start.
wait_until 60 workload_state_is h1 hello 1 succeeded || fail "hello@1 is $(workload_field h1 hello 1 state)"
wait_until 20 at_least_runs hello succeeded 1 || fail "the deploy's run of hello@1 was not reported: $("$FERRY" runs hello 2>&1)"
rc=0
id=$("$FERRY" run hello@1 --to env=test --param greeting=ferry --param repeat=3 --param flag=true \
     --wait 2>"$T/run.err") || rc=$?
[ $rc -eq 0 ] || fail "ferry run --wait exited $rc: $(cat "$T/run.err")"
[[ "$id" =~ ^[0-9a-f]{16}$ ]] || fail "ferry run printed '$id', not a run id"
grep -q "run $id succeeded in [0-9]* ms on host h1" "$T/run.err" || fail "ferry run --wait said: $(cat "$T/run.err")"
"$FERRY" runs hello --json > "$T/runs.json"
"$PY" - "$T/runs.json" "$id" <<'PY' || fail "ferry runs hello --json: $(cat "$T/runs.json")"
import json, sys
doc = json.load(open(sys.argv[1]))
assert list(doc) == ["runs"], doc
mine = [r for r in doc["runs"] if r["id"] == sys.argv[2]]
assert len(mine) == 1, doc
r = mine[0]
assert set(r) == {"id", "name", "version", "host", "status", "started", "duration_ms", "error"}, r
assert (r["name"], r["version"], r["host"], r["status"], r["error"]) == ("hello", "1", "h1", "succeeded", ""), r
assert isinstance(r["started"], int) and r["started"] > 1.7e12, r
assert isinstance(r["duration_ms"], int) and r["duration_ms"] > 0, r
assert all(x["status"] in ("running", "succeeded", "failed") for x in doc["runs"]), doc
assert len(doc["runs"]) == 2, doc  # the deploy's run and this one
PY
"$FERRY" runs hello | grep -q "^$id  hello@1 .* h1 .* succeeded" || fail "ferry runs hello: $("$FERRY" runs hello)"
"$FERRY" runs get "$id" -o "$T/out.ipynb" >/dev/null || fail "ferry runs get $id failed"
/usr/bin/python3 - "$T/out.ipynb" <<'PY' || fail "the executed notebook from the registry is not right"
import sys, nbformat
nb = nbformat.read(sys.argv[1], as_version=4)
nbformat.validate(nb)
inj = nb.cells[1]
assert "injected-parameters" in inj.metadata.get("tags", []), inj
assert "greeting = 'ferry'" in inj.source and "repeat = 3" in inj.source and "flag = True" in inj.source, inj.source
out = "".join(o.get("text", "") for o in nb.cells[2].outputs)
assert out == "hello ferryferryferry bool\n", repr(out)
PY
pass "ferry run --param --wait succeeds; runs --json lists it with the documented keys; runs get returns valid nbformat showing the typed parameters"

# --- a raising notebook: --wait exits 1 with the cell's error; runs shows it failed
make_notebook "$T/boom" boom 'print("before the error")
raise ValueError("bad input " + greeting)' '  parameters: {greeting: x42}'
"$FERRY" publish "$T/boom" >/dev/null
"$FERRY" deploy boom@1 --to env=test >/dev/null
wait_until 60 workload_state_is h1 boom 1 failed || fail "boom@1 is $(workload_field h1 boom 1 state)"
rc=0
bid=$("$FERRY" run boom@1 --to env=test --wait 2>"$T/boom.err") || rc=$?
[ $rc -eq 1 ] || fail "ferry run boom@1 --wait exited $rc: $(cat "$T/boom.err")"
[ "$(wc -l < "$T/boom.err")" -eq 1 ] || fail "ferry run --wait printed more than one line: $(cat "$T/boom.err")"
grep -q "^ferry: run $bid failed on host h1: cell 3: ValueError: bad input x42$" "$T/boom.err" \
  || fail "ferry run --wait said: $(cat "$T/boom.err")"
[ "$(run_field boom "$bid" status)" = failed ] || fail "boom run is $(run_field boom "$bid" status)"
[ "$(run_field boom "$bid" error)" = "cell 3: ValueError: bad input x42" ] || fail "boom error: $(run_field boom "$bid" error)"
"$FERRY" runs get "$bid" -o "$T/boom.ipynb" >/dev/null
/usr/bin/python3 - "$T/boom.ipynb" <<'PY' || fail "the failed run's notebook from the registry lacks the partial output"
import sys, nbformat
nb = nbformat.read(sys.argv[1], as_version=4)
nbformat.validate(nb)
outs = nb.cells[2].outputs
assert outs[0]["text"] == "before the error\n", outs
assert outs[-1]["output_type"] == "error" and outs[-1]["ename"] == "ValueError", outs
PY
pass "a raising notebook: ferry run --wait exits 1 with the cell's error; runs shows it failed with that error; its partial notebook is kept"

# --- a run shows as running while it runs, then ends; a job waiting for
# its next scheduled run (next January) takes a run now too
make_notebook "$T/slow" slow 'import time; time.sleep(4); print("slept")' '  schedule: "0 0 1 1 *"'
"$FERRY" publish "$T/slow" >/dev/null
"$FERRY" deploy slow@1 --to env=test >/dev/null
wait_until 60 workload_state_is h1 slow 1 scheduled || fail "slow@1 is $(workload_field h1 slow 1 state)"
sid=$("$FERRY" run slow@1 --to env=test)
wait_until 10 run_status_is slow "$sid" running || fail "run $sid never showed running: $("$FERRY" runs slow 2>&1)"
wait_until 60 run_status_is slow "$sid" succeeded || fail "run $sid is $(run_field slow "$sid" status)"
workload_state_is h1 slow 1 scheduled || fail "ferry run changed slow@1's state to $(workload_field h1 slow 1 state)"
pass "a job waiting for its schedule takes ferry run; the run is listed as running while it runs, then succeeded"

# --- scheduled runs are reported too
make_notebook "$T/tick" tick 'print("tick", greeting)' '  schedule: "@every 5s"
  parameters: {greeting: sched}'
"$FERRY" publish "$T/tick" >/dev/null
"$FERRY" deploy tick@1 --to env=test >/dev/null
wait_until 60 at_least_runs tick succeeded 2 || fail "scheduled runs of tick@1 in the registry: $("$FERRY" runs tick 2>&1)"
tid=$("$FERRY" runs tick --json | "$PY" -c "import json,sys; print([r for r in json.load(sys.stdin)['runs'] if r['status']=='succeeded'][0]['id'])")
"$FERRY" runs get "$tid" -o "$T/tick.ipynb" >/dev/null
/usr/bin/python3 -c "
import sys, nbformat
nb = nbformat.read('$T/tick.ipynb', as_version=4); nbformat.validate(nb)
assert ''.join(o.get('text', '') for o in nb.cells[2].outputs) == 'tick sched\n'" \
  || fail "the scheduled run's notebook does not show its parameter"
pass "an @every 5s notebook's runs show up in ferry runs, each with its executed notebook"

# --- bad input: one line, non-zero, nothing started
before=$(nruns_with hello succeeded)
expect_fail "run: --param 'not-a-name=1': 'not-a-name' is not a Python identifier" \
  "$FERRY" run hello@1 --to env=test --param not-a-name=1
expect_fail "run: --param 'novalue': expected NAME=VALUE" "$FERRY" run hello@1 --to env=test --param novalue
expect_fail "run: no artifact hello@9 in the registry" "$FERRY" run hello@9 --to env=test
expect_fail "run: no artifact nope@1 in the registry" "$FERRY" run nope@1 --to env=test
expect_fail "run: no online host matching env=prod has hello@1 deployed" "$FERRY" run hello@1 --to env=prod
expect_fail "run: 'hello' is not NAME@VERSION" "$FERRY" run hello --to env=test
expect_fail "needs --to SELECTOR" "$FERRY" run hello@1
expect_fail "^ferry: run 0123456789abcdef: no such run$" "$FERRY" runs get 0123456789abcdef -o "$T/x.ipynb"
expect_fail "runs get: 'xyz' is not a run id" "$FERRY" runs get xyz
expect_fail "runs: 'Bad Name' is not a workload name" "$FERRY" runs 'Bad Name'
# A notebook environment that names no .ipynb (kernels only) has nothing to run.
mkdir -p "$T/lab"
printf 'name: lab\nversion: "1"\nkind: notebook\nruntime: notebook\nrun:\n  command: ["python3"]\nnotebook:\n  kernel: python3\n' > "$T/lab/ferry.yaml"
"$FERRY" publish "$T/lab" >/dev/null
"$FERRY" deploy lab@1 --to env=test >/dev/null
wait_until 60 workload_state_is h1 lab 1 running || fail "lab@1 is $(workload_field h1 lab 1 state)"
expect_fail "host h1: notebook run: lab@1 names no notebook to run \(notebook.notebook\)" "$FERRY" run lab@1 --to env=test
[ ! -e "$T/x.ipynb" ] && [ ! -e "$T/x.ipynb.part" ] || fail "a failed runs get left a file"
[ "$("$FERRY" runs nope --json)" = '{"runs":[]}' ] || fail "runs of an unknown name: $("$FERRY" runs nope --json)"
[ "$(nruns_with hello succeeded)" = "$before" ] || fail "a refused ferry run started a run"
pass "bad --param, unknown name or version, no matching host, a workload with no notebook to run, unknown or malformed run id: one line each, nothing started"

# --- forged and hostile run reports: refused, one line, the registry serves on
nid=0123456789abcdef
expect_fail "run report from h1: not signed by its host key" "$FORGE" "$REG_URL" h1 "$T/ops.key" hello 1 $nid succeeded
expect_fail "run report from ghost: host is not enrolled" "$FORGE" "$REG_URL" ghost "$T/ops.key" hello 1 $nid succeeded
expect_fail "run report: [0-9]+ bytes, at most" "$FORGE" "$REG_URL" h1 "$T/h1/host.key" hello 1 $nid succeeded --notebook-bytes 8500000
expect_fail "the notebook does not match its digest" "$FORGE" "$REG_URL" h1 "$T/h1/host.key" hello 1 $nid succeeded --notebook "$T/out.ipynb" --wrong-digest
expect_fail "status must be running, succeeded or failed" "$FORGE" "$REG_URL" h1 "$T/h1/host.key" hello 1 $nid done
expect_fail "run id must be 16 lowercase hex" "$FORGE" "$REG_URL" h1 "$T/h1/host.key" hello 1 NOTANID succeeded
expect_fail "no artifact nope@1" "$FORGE" "$REG_URL" h1 "$T/h1/host.key" nope 1 $nid succeeded
expect_fail "a running run has no notebook yet" "$FORGE" "$REG_URL" h1 "$T/h1/host.key" hello 1 $nid running --notebook-bytes 10
expect_fail "the error must be one line" "$FORGE" "$REG_URL" h1 "$T/h1/host.key" hello 1 $nid failed --error "$(printf 'two\nlines')"
expect_fail "clock|sent" "$FORGE" "$REG_URL" h1 "$T/h1/host.key" hello 1 $nid succeeded --sent-ms 1000
# Another enrolled host may not rewrite h1's run, and a replayed "running"
# does not reopen a run that ended.
expect_fail "run report from h2: run $id belongs to another host" "$FORGE" "$REG_URL" h2 "$T/h2/host.key" hello 1 "$id" failed --error forged
"$FORGE" "$REG_URL" h1 "$T/h1/host.key" hello 1 "$id" running || fail "a repeated report of a known run was refused"
[ "$(run_field hello "$id" status)" = succeeded ] || fail "run $id was changed to $(run_field hello "$id" status)"
"$FERRY_POKE" "$REG_URL" ping >/dev/null || fail "the registry stopped answering"
"$FERRY" runs get "$id" -o "$T/again.ipynb" >/dev/null && cmp -s "$T/out.ipynb" "$T/again.ipynb" \
  || fail "run $id's notebook changed or is gone"
[ "$("$FERRY" runs hello --json | "$PY" -c "import json,sys; print(len(json.load(sys.stdin)['runs']))")" = 2 ] \
  || fail "a refused report added a run: $("$FERRY" runs hello)"
pass "forged, oversized, mismatched and malformed run reports are refused with one line; the registry keeps serving and its runs are unchanged"

# --- the Python client mirrors the CLI
export PYTHONPATH="$FERRY_SRC/python" FERRY_CLI="$FERRY"
/usr/bin/python3 - "$T/py.ipynb" <<'PY' || fail "the Python client's run/runs/run_notebook"
import sys, ferry, nbformat
rid = ferry.run("hello@1", to="env=test", params={"greeting": "py", "repeat": 2, "flag": 1.5})
assert len(rid) == 16, rid
r = [x for x in ferry.runs("hello") if x["id"] == rid]
assert r and r[0]["status"] == "succeeded" and r[0]["host"] == "h1", r
nb = nbformat.read(ferry.run_notebook(rid, sys.argv[1]), as_version=4)
assert "".join(o.get("text", "") for o in nb.cells[2].outputs) == "hello pypy float\n", nb.cells[2]
try:
    ferry.run("boom@1", to="env=test")
    raise SystemExit("a failed run did not raise")
except ferry.Error as e:
    assert e.status == 1 and "cell 3: ValueError: bad input x42" in str(e), e
try:
    ferry.run("hello@1", to="env=nowhere")
    raise SystemExit("no host did not raise")
except ferry.Error as e:
    assert str(e) == "ferry: run: no online host matching env=nowhere has hello@1 deployed", e
PY
pass "ferry.run / ferry.runs / ferry.run_notebook from Python: typed params, the failing cell's error as ferry.Error"
