#!/usr/bin/env bash
# Scheduled notebook runs: a real notebook executed by nbclient in a real
# ipykernel on the host, through the notebook plugin and its runner. The
# executed notebooks are read from the run's .ferry/runs/ folder.
source "$(dirname "$0")/lib.sh"

PY=${FERRY_PYTHON:-/usr/bin/python3}
"$PY" -c 'import nbclient, nbformat, ipykernel' 2>/dev/null \
  || fail "$PY lacks nbclient/nbformat/ipykernel (scripts/install-deps.sh installs them)"

make_key ops
start_registry reg "$T/reg" --trust "$T/ops.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent h1 "$T/h1" --label env=test --trust "$T/ops.pub"

# make_notebook DIR NAME CELL2_SOURCE [notebook: lines]
make_notebook() {
  local dir=$1 name=$2 body=$3 extra=$4
  mkdir -p "$dir"
  "$PY" - "$dir/nb.ipynb" "$body" <<'PY'
import sys, nbformat as f
nb = f.v4.new_notebook()
p = f.v4.new_code_cell('greeting = "default"\nrepeat = 1')
p.metadata["tags"] = ["parameters"]
nb.cells = [p, f.v4.new_code_cell(sys.argv[2]), f.v4.new_code_cell('print("after")')]
f.write(nb, sys.argv[1])
PY
  printf 'name: %s\nversion: "1"\nkind: notebook\nruntime: notebook\nnotebook:\n  notebook: nb.ipynb\n%s\n' \
    "$name" "$extra" > "$dir/ferry.yaml"
}
runs_dir() { echo "$T/h1/workloads/$1/1/.ferry/runs"; }
nruns() { ls "$(runs_dir "$1")"/*.json 2>/dev/null | wc -l; }
at_least() { [ "$(nruns "$1")" -ge "$2" ]; }

# --- @every 5s with a parameter: each run's executed notebook shows it
make_notebook "$T/hello" hello 'print("hello", greeting * repeat)' \
  '  schedule: "@every 5s"
  parameters: {greeting: ferry, repeat: 2}
  timeout: 2m'
"$FERRY" publish "$T/hello" >/dev/null
"$FERRY" deploy hello@1 --to env=test >/dev/null
wait_until 60 at_least hello 1 || fail "no run of hello@1 finished in 60s"
wait_until 30 workload_state_is h1 hello 1 scheduled || fail "hello@1 is $(workload_field h1 hello 1 state)"
workload_field h1 hello 1 reason | grep -q '^next run at .*last run: exited with status 0' \
  || fail "hello@1 reason: $(workload_field h1 hello 1 reason)"
first=$(ls "$(runs_dir hello)"/*.ipynb | head -1)
"$PY" - "$first" <<'PY' || fail "the executed notebook does not show the parameter"
import sys, nbformat
nb = nbformat.read(sys.argv[1], as_version=4)
nbformat.validate(nb)
inj = nb.cells[1]
assert "injected-parameters" in inj.metadata.get("tags", []), inj
assert "greeting = 'ferry'" in inj.source and "repeat = 2" in inj.source, inj.source
out = "".join(o.get("text", "") for o in nb.cells[2].outputs)
assert out == "hello ferryferry\n", repr(out)
PY
grep -q '"status": "succeeded"' "${first%.ipynb}.json" || fail "status file: $(cat "${first%.ipynb}.json")"
wait_until 30 at_least hello 2 || fail "hello@1 ran $(nruns hello) times in 30s more"
pass "an @every 5s notebook with parameters ran $(nruns hello) times; its output shows the parameter"

# --- a raising cell: failed, with that cell's error as the reason; partial output kept
make_notebook "$T/boom" boom 'print("before the error")
raise ValueError("bad input " + greeting)' '  parameters: {greeting: x42}'
"$FERRY" publish "$T/boom" >/dev/null
"$FERRY" deploy boom@1 --to env=test >/dev/null
rc=0; out=$("$FERRY" status --wait boom@1 --timeout 60 2>&1 >/dev/null) || rc=$?
[ $rc -eq 1 ] || fail "status --wait boom@1 exited $rc: $out"
echo "$out" | grep -q 'boom@1 failed: cell 3: ValueError: bad input x42' || fail "status --wait said: $out"
[ "$(workload_field h1 boom 1 reason)" = "cell 3: ValueError: bad input x42" ] \
  || fail "boom@1 reason: $(workload_field h1 boom 1 reason)"
nbf=$(ls "$(runs_dir boom)"/*.ipynb)
"$PY" - "$nbf" <<'PY' || fail "the failed run's partial notebook is not right"
import sys, nbformat
nb = nbformat.read(sys.argv[1], as_version=4)
outs = nb.cells[2].outputs
assert outs[0]["text"] == "before the error\n", outs
assert outs[-1]["output_type"] == "error" and outs[-1]["ename"] == "ValueError", outs
assert not nb.cells[3].get("outputs"), nb.cells[3]
PY
grep -q '"error": "cell 3: ValueError: bad input x42"' "${nbf%.ipynb}.json" || fail "status file: $(cat "${nbf%.ipynb}.json")"
pass "a raising cell ends the run failed with that error; the partial output is kept"

# --- a run past notebook.timeout fails with the timeout as the reason
make_notebook "$T/slow" slow 'import time; time.sleep(60)' '  timeout: 3s'
"$FERRY" publish "$T/slow" >/dev/null
"$FERRY" deploy slow@1 --to env=test >/dev/null
rc=0; out=$("$FERRY" status --wait slow@1 --timeout 60 2>&1 >/dev/null) || rc=$?
[ $rc -eq 1 ] || fail "status --wait slow@1 exited $rc: $out"
echo "$out" | grep -q 'slow@1 failed: timeout: the run took longer than 3s' || fail "status --wait said: $out"
pass "a run past notebook.timeout fails with the timeout as the reason"

# --- bad input is refused at publish, one line each
bad() { # bad NAME 'notebook: lines' PATTERN
  make_notebook "$T/$1" "$1" 'pass' "$2"
  expect_fail "$3" "$FERRY" publish "$T/$1"
}
bad b1 '  parameters: {"not-a-name": 1}' "ferry.yaml:7: key 'notebook.parameters.not-a-name': a parameter name is a Python identifier"
bad b2 '  schedule: "0 25 * * *"' "ferry.yaml:7: key 'notebook.schedule': hour field '25': 25 is out of range 0-23"
bad b3 '  timeout: soon' "ferry.yaml:7: key 'notebook.timeout': expected a duration"
bad b4 '  parameters: [a, b]' "ferry.yaml:7: key 'notebook.parameters': expected a mapping"
mkdir -p "$T/b5" && printf 'name: b5\nversion: "1"\nkind: notebook\nruntime: notebook\nnotebook:\n  schedule: "@every 5s"\n' > "$T/b5/ferry.yaml"
expect_fail "ferry.yaml:6: key 'notebook.schedule': needs notebook.notebook" "$FERRY" publish "$T/b5"
make_notebook "$T/b6" b6 'pass' '' && sed -i 's/nb.ipynb/gone.ipynb/' "$T/b6/ferry.yaml"
expect_fail "key 'notebook.notebook': file 'gone.ipynb' is not in the artifact" "$FERRY" publish "$T/b6"
expect_fail 'no such artifact version' "$FERRY" deploy b1@1 --to env=test
pass "bad parameters, schedule, timeout, or run settings without a notebook are refused at publish"
