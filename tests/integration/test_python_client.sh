#!/usr/bin/env bash
# The Python client (python/ferry) against a real registry and agent: a
# scikit-learn model trained here goes through ferry.log_model, ferry.deploy
# and ferry.predict, and predict gives the in-memory predictions; refusals
# raise ferry.Error with the CLI's one-line message.
source "$(dirname "$0")/lib.sh"

PY=${FERRY_PYTHON:-/usr/bin/python3}
"$PY" -c 'import sklearn, joblib, numpy, pandas' 2>/dev/null || fail "$PY lacks scikit-learn or pandas (scripts/install-deps.sh)"
export PYTHONPATH="$FERRY_SRC/python" PATH="$FERRY_BIN/cli:$PATH"
unset FERRY_CLI

make_key ops
make_key stranger
start_registry reg "$T/reg" --trust "$T/ops.pub"
export FERRY_REGISTRY="$REG_URL" FERRY_KEY="$T/ops.key"
start_agent h1 "$T/h1" --label env=test --trust "$T/ops.pub"

# --- fit -> log_model -> deploy -> predict, from a DataFrame with column
# names that are not V2 names and from one with plain names
"$PY" - "$T" <<'PY' || fail "log_model -> deploy -> predict"
import sys
import numpy as np
import ferry
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

scratch = sys.argv[1]
iris = load_iris(as_frame=True)
X, y = iris.data, iris.target              # columns like 'sepal length (cm)'
model = LogisticRegression(max_iter=1000).fit(X, y)

ref, digest = ferry.log_model(model, "iris", "1.0.0", reference=X, metrics={"accuracy": model.score(X, y)})
assert ref == "iris@1.0.0" and len(digest) == 64, (ref, digest)
# The same content again is the same version and digest (publish is idempotent
# for identical bytes only, so compare with versions instead).
vs = ferry.versions("iris")
assert [v["version"] for v in vs] == ["1.0.0"] and vs[0]["digest"] == digest, vs
addrs = ferry.deploy(ref, to="env=test", timeout=60)
assert len(addrs) == 1 and addrs[0].startswith("http://127.0.0.1:"), addrs

rows = X.iloc[[0, 60, 120, 149]]
want = model.predict(rows)
got = ferry.predict("iris", rows)
assert isinstance(got, np.ndarray) and np.array_equal(got, want), (got, want)
got = ferry.predict("iris", rows.to_numpy())
assert np.array_equal(got, want), (got, want)
print("ok - a DataFrame-fitted model: log_model, deploy, predict (DataFrame and array) match")

# Plain names: one 1-D input per column, matched by name in any order.
Xp = X.copy()
Xp.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
plain = LogisticRegression(max_iter=1000).fit(Xp.to_numpy(), y)
ref2, _ = ferry.log_model(plain, "iris-plain", "2", inputs=Xp, reference=Xp, pii=False)
ferry.deploy(ref2, to="env=test", timeout=60)
rows = Xp.iloc[[1, 70, 140]]
got = ferry.predict("iris-plain", rows[list(reversed(Xp.columns))])
assert np.array_equal(got, plain.predict(rows.to_numpy())), got
st = ferry.status()
assert any(w["name"] == "iris-plain" for h in st["hosts"] for w in h["workloads"]), st
print("ok - named 1-D inputs inferred from a DataFrame; predict matches by column name")
PY
pass "log_model -> deploy -> predict equals the in-memory predictions"

# The artifact log_model wrote is what the registry holds: pull verifies it.
"$FERRY" pull iris@1.0.0 --out "$T/pulled" --trust "$T/ops.pub" >/dev/null || fail "pull iris@1.0.0"
for f in model.joblib ferry.yaml CARD.md reference.csv metrics.json; do
  [ -f "$T/pulled/$f" ] || fail "the artifact has no $f"
done
grep -q '^runtime: model' "$T/pulled/ferry.yaml" && grep -q 'format: sklearn' "$T/pulled/ferry.yaml" ||
  fail "ferry.yaml: $(cat "$T/pulled/ferry.yaml")"
grep -q 'name: "input-0", datatype: "FP64", shape: \[-1, 4\]' "$T/pulled/ferry.yaml" ||
  fail "no 2-D signature for names that are not V2 names: $(cat "$T/pulled/ferry.yaml")"
pass "the published artifact holds model.joblib, ferry.yaml (runtime model, inferred signature), the card, reference.csv"

# --- errors: ferry.Error with the CLI's own line
cli_line() { { "$FERRY" "$@" 2>&1 >/dev/null || true; } | tail -n 1; }
want_unknown=$(cli_line deploy nosuch@1 --to env=test)
[[ "$want_unknown" == "ferry: "* ]] || fail "deploy nosuch@1 said '$want_unknown'"
"$PY" - "$T" "$want_unknown" <<'PY' || fail "ferry.Error cases"
import sys
import numpy as np
import ferry
scratch, want_unknown = sys.argv[1], sys.argv[2]

def raises(want, fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ferry.Error as e:
        assert str(e) == want or (want.startswith("/") and want[1:] in str(e)), (str(e), want)
        assert "\n" not in str(e), str(e)
        return e
    raise AssertionError("no ferry.Error from %s" % fn.__name__)

e = raises(want_unknown, ferry.deploy, "nosuch@1", to="env=test")
assert e.status == 1, e.status
raises("ferry: nosuch runs on no host (see ferry status)", ferry.predict, "nosuch", np.zeros((1, 4)))
raises("ferry: predict: no column 'sepal_length' in the data (the model takes "
       "sepal_length, sepal_width, petal_length, petal_width)",
       ferry.predict, "iris-plain", {"colour": [1.0]})
# A request the endpoint refuses: its 400 and reason, as ferry predict says it.
raises("/ferry: predict iris on h1: HTTP 400: ", ferry.predict, "iris", np.zeros((1, 3)))
# A key the registry does not trust: the CLI's refusal, nothing published.
from sklearn.dummy import DummyClassifier
m = DummyClassifier().fit(np.zeros((4, 2)), [0, 1, 0, 1])
e = raises("/", ferry.log_model, m, "dummy", "1", inputs=np.zeros((2, 2)), key=scratch + "/stranger.key")
assert e.message.startswith("ferry: ") and "\n" not in e.message, e.message
assert ferry.versions("dummy") == [], ferry.versions("dummy")
print("stranger:", e.message)
# Inputs that cannot be a signature: refused before anything is written.
import pandas as pd
mixed = pd.DataFrame({"a b": [1.0, 2.0], "c": ["x", "y"]})
raises("ferry: inputs: 'a b' is not a V2 input name, and the columns are not all of one "
       "numeric type for a 2-D input: rename the columns or pass inputs=[...]",
       ferry.log_model, m, "mixed", "1", inputs=mixed)
raises("ferry: inputs: an empty list; give tensors, a sample, or None",
       ferry.log_model, m, "mixed", "1", inputs=[])
raises("ferry: inputs: an array of 3 dimensions; give rows (2-D) or a DataFrame",
       ferry.log_model, m, "mixed", "1", inputs=np.zeros((2, 2, 2)))
assert ferry.versions("mixed") == []
PY
pass "refusals raise ferry.Error with the CLI's one-line message; nothing is published with an untrusted key"

# --- the same from a notebook executed by nbclient in a real ipykernel
# kernel: the notebook trains, logs, deploys and predicts; its last cell
# prints whether the endpoint's answers equal the in-memory predictions
"$PY" - "$T/nb.ipynb" <<'PY' || fail "writing the notebook"
import sys, nbformat
from nbformat.v4 import new_notebook, new_code_cell
cells = [
    "import ferry, numpy as np\n"
    "from sklearn.datasets import load_iris\n"
    "from sklearn.tree import DecisionTreeClassifier",
    "iris = load_iris(as_frame=True)\n"
    "X, y = iris.data, iris.target\n"
    "X.columns = ['sl', 'sw', 'pl', 'pw']\n"
    "model = DecisionTreeClassifier(random_state=0).fit(X, y)",
    "ref, digest = ferry.log_model(model, 'iris-nb', '1', inputs=X, reference=X)\n"
    "endpoints = ferry.deploy(ref, to='env=test', timeout=60)",
    "got = ferry.predict('iris-nb', X.sample(25, random_state=1))\n"
    "same = bool(np.array_equal(got, model.predict(X.sample(25, random_state=1))))\n"
    "print('SAME' if same else 'DIFFERENT', ref, len(endpoints))",
]
nb = new_notebook(cells=[new_code_cell(c) for c in cells])
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbformat.write(nb, sys.argv[1])
PY
mkdir -p "$T/nbdir"
"$PY" - "$T/nb.ipynb" "$T/nb-out.ipynb" "$T/nbdir" <<'PY' || fail "the notebook did not run"
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=120, kernel_name="python3",
               resources={"metadata": {"path": sys.argv[3]}}).execute()
nbformat.write(nb, sys.argv[2])
PY
"$PY" - "$T/nb-out.ipynb" <<'PY' || fail "the notebook's predictions"
import sys, nbformat
nb = nbformat.read(sys.argv[1], as_version=4)
text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
assert text.strip() == "SAME iris-nb@1 1", text
PY
pass "a notebook run by nbclient in a real kernel: log_model, deploy, predict equals the in-memory model"

# --- make install puts the package where /usr/bin/python3 looks, and the
# installed copy finds the installed CLI without PATH
site=$(sed -n 's/^FERRY_PYTHON_SITEDIR:[A-Z]*=//p' "$FERRY_BIN/CMakeCache.txt")
[ -n "$site" ] || fail "no FERRY_PYTHON_SITEDIR in the build's cache"
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:[A-Z]*=//p' "$FERRY_BIN/CMakeCache.txt")
case "$site" in
  /*) ;;
  *) "$PY" -c 'import site, sys; sys.exit(sys.argv[1] not in site.getsitepackages())' "$prefix/$site" ||
       fail "$prefix/$site is not among $PY's site directories" ;;
esac
cmake --install "$FERRY_BIN" --prefix "$T/inst" >/dev/null || fail "cmake --install"
case "$site" in /*) fail "an absolute FERRY_PYTHON_SITEDIR cannot be installed under a test prefix" ;; esac
[ -f "$T/inst/$site/ferry/__init__.py" ] || fail "no ferry package under $T/inst/$site"
(cd "$T" && env -u PYTHONPATH PYTHONPATH="$T/inst/$site" PATH=/usr/bin:/bin "$PY" -c '
import sys, ferry
assert ferry.__file__.startswith(sys.argv[1]), ferry.__file__
assert [v["version"] for v in ferry.versions("iris")] == ["1.0.0"]' "$T/inst") ||
  fail "the installed package"
pass "make install puts the package in $PY's site directory ($prefix/$site); it finds its CLI without PATH"
