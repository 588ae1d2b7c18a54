"""ferry from Python: log a trained model, deploy it, query it.

    import ferry
    ref, digest = ferry.log_model(model, "iris", "1.0.0", inputs=X_train)
    ferry.deploy(ref, to="env=prod")
    ferry.predict("iris", X_test)

Registry operations run the `ferry` CLI (signing, hashing, verification
are its code); predictions are plain HTTP to the endpoint. Every failure
raises ferry.Error with the CLI's one-line message. FERRY_REGISTRY,
FERRY_KEY and FERRY_TRUST are read as the CLI reads them. docs/python.md.
"""
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request

from ._cli import Error, run as _run
from . import _signature

__all__ = ["Error", "log_model", "publish", "deploy", "predict", "versions", "status",
           "endpoints", "run", "runs", "run_notebook"]
__version__ = "0.1.0"


def _q(value):
    """A YAML scalar: JSON's double-quoted form is valid YAML."""
    return json.dumps(value)


def _tensors_yaml(key, tensors):
    lines = ["  %s:" % key]
    for t in tensors:
        for field in ("name", "datatype", "shape"):
            if field not in t:
                raise Error("ferry: %s: an entry without '%s'" % (key, field))
        lines.append("    - {name: %s, datatype: %s, shape: [%s]}"
                     % (_q(str(t["name"])), _q(str(t["datatype"])),
                        ", ".join(str(int(d)) for d in t["shape"])))
    return lines


def _is_sample(x):
    if isinstance(x, (list, tuple)) and not x:
        raise Error("ferry: inputs: an empty list; give tensors, a sample, or None")
    return x is not None and not (isinstance(x, (list, tuple)) and isinstance(x[0], dict))


def _write_reference(path, reference, inputs):
    """reference.csv: a header of input names, then rows."""
    import numpy as np
    if isinstance(reference, (str, os.PathLike)):
        shutil.copyfile(reference, path)
        return
    if _signature._is_frame(reference):
        frame = reference
        if len(inputs) == 1 and len(inputs[0]["shape"]) == 2:
            frame = frame.copy()
            frame.columns = ["%s_%d" % (inputs[0]["name"], i) for i in range(frame.shape[1])]
        frame.to_csv(path, index=False)
        return
    arr = np.asarray(reference)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if len(inputs) == arr.shape[1] and all(len(t["shape"]) == 1 for t in inputs):
        header = [t["name"] for t in inputs]
    else:
        header = ["input-0_%d" % i for i in range(arr.shape[1])]
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for row in arr:
            f.write(",".join(repr(v.item() if hasattr(v, "item") else v) for v in row) + "\n")


def _card(model, name, version, inputs, metrics, pii):
    lines = ["# %s %s" % (name, version), "",
             "Estimator: `%s.%s`" % (type(model).__module__, type(model).__name__), "",
             "Personal data: %s" % ("yes" if pii else "no"), ""]
    if inputs:
        lines += ["## Inputs", ""] + ["- `%s` %s %s" % (t["name"], t["datatype"], t["shape"])
                                      for t in inputs] + [""]
    if metrics:
        lines += ["## Metrics", ""] + ["- %s: %s" % (k, v) for k, v in metrics.items()] + [""]
    return "\n".join(lines)


def write_model(directory, model, name, version, *, inputs=None, outputs=None, card=None,
                pii=False, reference=None, metrics=None):
    """Writes the artifact log_model publishes into DIRECTORY (which must
    be empty or absent): model.joblib, ferry.yaml, CARD.md, reference.csv,
    metrics.json. Returns the `inputs` written (None: left to the server)."""
    import joblib
    if _is_sample(inputs):
        inputs = _signature.infer(inputs)
    elif inputs is None and reference is not None and not isinstance(reference, (str, os.PathLike)):
        inputs = _signature.infer(reference)
    elif inputs is not None:
        inputs = [dict(t) for t in inputs]
    if outputs is not None and _is_sample(outputs):
        raise Error("ferry: outputs: give a list of {name, datatype, shape}")
    os.makedirs(directory, exist_ok=True)
    if os.listdir(directory):
        raise Error("ferry: %s: not empty" % directory)
    try:
        joblib.dump(model, os.path.join(directory, "model.joblib"))
    except Exception as e:
        raise Error("ferry: %s: the model cannot be saved with joblib: %s" % (name, e)) from None
    y = ["name: %s" % _q(name), "version: %s" % _q(str(version)), "kind: model",
         "runtime: model", "model:", "  format: sklearn", "  file: model.joblib"]
    if inputs:
        y += _tensors_yaml("inputs", inputs)
    if outputs:
        y += _tensors_yaml("outputs", outputs)
    if isinstance(card, (str, os.PathLike)) and os.path.isfile(card):
        shutil.copyfile(card, os.path.join(directory, "CARD.md"))
    else:
        text = card if isinstance(card, str) else _card(model, name, version, inputs, metrics, pii)
        with open(os.path.join(directory, "CARD.md"), "w") as f:
            f.write(text if text.endswith("\n") else text + "\n")
    y += ["  card: CARD.md", "  pii: %s" % ("true" if pii else "false")]
    if reference is not None:
        _write_reference(os.path.join(directory, "reference.csv"), reference, inputs or [])
        y.append("  reference: reference.csv")
    if metrics:
        with open(os.path.join(directory, "metrics.json"), "w") as f:
            json.dump({str(k): v for k, v in metrics.items()}, f, indent=1, default=float)
    with open(os.path.join(directory, "ferry.yaml"), "w") as f:
        f.write("\n".join(y) + "\n")
    return inputs


def publish(directory, *, key=None, registry=None):
    """`ferry publish DIR`: signs and uploads; returns (NAME@VERSION, digest)."""
    out = _run(["publish", os.fspath(directory)], registry=registry, key=key).split()
    if len(out) < 2:
        raise Error("ferry: publish %s: unexpected answer %r" % (directory, " ".join(out)))
    return out[0], out[1]


def log_model(model, name, version, *, inputs=None, outputs=None, card=None, pii=False,
              reference=None, metrics=None, key=None, registry=None):
    """Writes a complete model artifact for MODEL (a fitted scikit-learn
    estimator) and publishes it signed. Returns (NAME@VERSION, digest).

    inputs: a list of {name, datatype, shape}, or a DataFrame / array sample
    from which they are inferred; None leaves them to the estimator
    (reference, when it is a DataFrame or array, is the sample then).
    card: Markdown text or a file (default: one generated from the model,
    inputs and metrics). reference: a DataFrame, array or CSV path of
    training inputs (drift is measured against it)."""
    with tempfile.TemporaryDirectory(prefix="ferry-model-") as tmp:
        art = os.path.join(tmp, str(name))
        write_model(art, model, name, version, inputs=inputs, outputs=outputs, card=card,
                    pii=pii, reference=reference, metrics=metrics)
        return publish(art, key=key, registry=registry)


def versions(name, *, registry=None):
    """`ferry versions NAME --json`: the list of {version, digest, ...}."""
    return json.loads(_run(["versions", str(name), "--json"], registry=registry))["versions"]


def status(*, registry=None):
    """`ferry status --json`: {"hosts": [...]}."""
    return json.loads(_run(["status", "--json"], registry=registry))


def _matches(labels, selector):
    for pair in (selector or "").split(","):
        if not pair:
            continue
        k, _, v = pair.partition("=")
        if (labels or {}).get(k) != v:
            return False
    return True


def endpoints(ref, *, to=None, registry=None):
    """Addresses of NAME (or NAME@VERSION) where it runs, from ferry status;
    with `to`, only on hosts matching that selector."""
    name, _, version = str(ref).partition("@")
    found = []
    for h in status(registry=registry).get("hosts", []):
        if not h.get("online") or (to and not _matches(h.get("labels"), to)):
            continue
        for w in h.get("workloads", []):
            if (w.get("name") == name and (not version or w.get("version") == version)
                    and w.get("state") == "running" and w.get("address")
                    and w.get("address") != "-"):
                found.append(w["address"])
    return found


def deploy(ref, to, *, wait=True, timeout=300, key=None, registry=None):
    """`ferry deploy NAME@VERSION --to SELECTOR [--wait]`; returns the list
    of endpoint addresses (http://ADDR:PORT) where it runs, once it runs
    on every matching host when wait is true."""
    args = ["deploy", str(ref), "--to", str(to)]
    if wait:
        args += ["--wait", "--timeout", "%ds" % max(1, int(timeout))]
    _run(args, registry=registry, key=key)
    return endpoints(ref, to=to, registry=registry)


def run(ref, to, *, params=None, wait=True, timeout=None, key=None, registry=None):
    """`ferry run NAME@VERSION --to SELECTOR [--param K=V ...] [--wait]`:
    one notebook run now; returns its id. params: a dict whose values keep
    their Python type in the notebook (each is passed as JSON). With wait,
    returns once the run succeeded and raises ferry.Error with the CLI's
    line (`ferry: run ID failed on host H: cell 3: ...`) when it failed;
    timeout (seconds) bounds the wait (default: none)."""
    args = ["run", str(ref), "--to", str(to)]
    for k, v in (params or {}).items():
        args += ["--param", "%s=%s" % (k, json.dumps(v))]
    if wait:
        args.append("--wait")
        if timeout is not None:
            args += ["--timeout", "%ds" % max(1, int(timeout))]
    out = _run(args, registry=registry, key=key)
    return out.strip().splitlines()[0] if out.strip() else ""


def runs(name, *, registry=None):
    """`ferry runs NAME --json`: NAME's runs, newest first, each a dict of
    id, name, version, host, status (running, succeeded, failed), started
    (Unix ms), duration_ms and error."""
    return json.loads(_run(["runs", str(name), "--json"], registry=registry))["runs"]


def run_notebook(run_id, path=None, *, registry=None):
    """`ferry runs get RUN_ID -o PATH`: the run's executed notebook, its
    digest checked; returns the path written (default run-ID.ipynb)."""
    args = ["runs", "get", str(run_id)]
    if path is not None:
        args += ["-o", os.fspath(path)]
    return _run(args, registry=registry).strip()


def _http(url, body=None, timeout=30):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"},
                                 method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            text = json.loads(e.read()).get("error", "")
        except Exception:
            text = e.reason
        raise Error("HTTP %d: %s" % (e.code, text)) from None
    except (urllib.error.URLError, OSError) as e:
        raise Error(str(getattr(e, "reason", e))) from None


def predict(name, data, *, host=None, address=None, timeout=30, registry=None):
    """Sends DATA (a DataFrame, a 2-D array of rows, or {column: values}) to
    NAME's endpoint as a V2 request built against the signature the
    endpoint reports, and returns the output as a numpy array (a dict of
    name -> array when the model has several)."""
    name = str(name)
    where = host or "?"
    if address is None:
        doc = status(registry=registry)
        hosts = [h for h in doc.get("hosts", []) if h.get("online")]
        if host is not None:
            hosts = [h for h in hosts if h.get("name") == host]
            if not hosts:
                raise Error("ferry: no host named '%s'" % host)
        seen = None
        for h in hosts:
            for w in h.get("workloads", []):
                if w.get("name") != name:
                    continue
                seen = seen or (w.get("state"), h["name"])
                if w.get("state") == "running" and w.get("address", "-") != "-":
                    address, where = w["address"], h["name"]
                    break
            if address:
                break
        if address is None:
            if seen:
                raise Error("ferry: %s is not running (%s on %s)" % (name, seen[0], seen[1]))
            raise Error("ferry: %s runs on no host (see ferry status)" % name)
    base = address.rstrip("/") + "/v2/models/" + urllib.request.quote(name, safe="")
    try:
        meta = _http(base, timeout=timeout)
        body = _signature.request(meta.get("inputs") or [], data)
        out = _signature.outputs(_http(base + "/infer", body, timeout=timeout))
    except Error as e:
        if e.message.startswith("ferry: "):
            raise
        raise Error("ferry: predict %s on %s: %s" % (name, where, e.message)) from None
    if len(out) == 1:
        return next(iter(out.values()))
    return out
