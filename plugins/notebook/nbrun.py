"""Execute one notebook run for ferry's notebook plugin (docs/notebooks.md).

    nbrun.py --notebook IN.ipynb --output OUT.ipynb
             [--parameters JSON] [--timeout SECONDS] [--kernel NAME] [--id ID]

The parameters (a JSON object) become one new code cell right after the
cell tagged "parameters", as papermill does, so they override its
defaults; without such a cell they go first. The notebook is executed with
nbclient in the current directory. OUT.ipynb is written whatever happens,
with the output produced so far, and OUT.json next to it records the
run's id, status, start, duration and error (the plugin wrote it first as
"running"; this runner replaces it when the run ended). SIGTERM (an
undeploy) ends the run failed, its partial output kept. Exit 0 when every cell ran; otherwise
non-zero, and the last line on stderr is the reason ("cell 3: ValueError:
boom"), which the agent reports as the run's reason.

Only Debian's packages are used (python3-nbclient, python3-nbformat).
"""
import argparse
import json
import os
import signal
import sys
import time


class Stopped(Exception):
    """SIGTERM: the agent stops the run (an undeploy, a new version)."""


def on_term(signum, frame):
    raise Stopped("stopped: the run was asked to end (SIGTERM)")


# Where a refusal before the run (bad parameters, no nbclient, not a
# notebook) is recorded: (OUT.json path, run id, start).
RECORD = None


def fail(msg, code=2):
    line = msg.replace("\n", " ")[:400]
    if RECORD is not None:
        path, run_id, started = RECORD
        meta = {"id": run_id, "status": "failed", "started_ms": int(started * 1000),
                "duration_ms": int((time.time() - started) * 1000), "error": line}
        try:
            with open(path + ".tmp", "w") as f:
                json.dump(meta, f)
            os.replace(path + ".tmp", path)
        except OSError:
            pass
    sys.stderr.write(line + "\n")
    sys.exit(code)


def parameter_cell(nbformat, params):
    # JSON's true/false/null load as Python's True/False/None, so repr()
    # of each loaded value is a Python literal of the same value.
    lines = ["# Parameters (injected by ferry)"]
    lines += ["%s = %r" % (k, v) for k, v in params.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.metadata["tags"] = ["injected-parameters"]
    return cell


def inject(nb, nbformat, params):
    at = 0
    for i, cell in enumerate(nb.cells):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            at = i + 1
            break
    nb.cells.insert(at, parameter_cell(nbformat, params))


def cell_error(nb, exc):
    """The failing cell's error as one line."""
    ename = getattr(exc, "ename", None) or type(exc).__name__
    evalue = getattr(exc, "evalue", None)
    if evalue is None:
        evalue = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
    where = ""
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                where = "cell %d: " % (i + 1)
                ename, evalue = out.get("ename", ename), out.get("evalue", evalue)
    return "%s%s: %s" % (where, ename, evalue) if evalue else "%s%s" % (where, ename)


def main():
    ap = argparse.ArgumentParser(prog="nbrun.py")
    ap.add_argument("--notebook", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--parameters", default="{}")
    ap.add_argument("--timeout", type=float, default=0, help="whole run, seconds; 0: none")
    ap.add_argument("--kernel", default="")
    ap.add_argument("--id", default="", help="the run's id, kept in OUT.json")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, on_term)
    global RECORD
    started = time.time()
    base = a.output[:-6] if a.output.endswith(".ipynb") else a.output
    # The plugin wrote the record "running" when it started this runner:
    # its start is the run's.
    try:
        with open(base + ".json") as f:
            first = json.load(f)
        if first.get("id") == a.id and isinstance(first.get("started_ms"), int):
            started = min(started, first["started_ms"] / 1000.0)
    except (OSError, ValueError):
        pass
    RECORD = (base + ".json", a.id, started)

    try:
        params = json.loads(a.parameters)
    except ValueError as e:
        fail("parameters: not JSON: %s" % e)
    if not isinstance(params, dict) or not all(k.isidentifier() for k in params):
        fail("parameters: must be an object whose keys are Python names")
    try:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellTimeoutError
    except ImportError as e:
        fail("%s: %s (install python3-nbclient)" % (sys.executable, e))
    try:
        nb = nbformat.read(a.notebook, as_version=4)
    except Exception as e:  # any unreadable notebook is the same one-line refusal
        fail("%s: not a notebook: %s" % (a.notebook, e))
    if params:
        inject(nb, nbformat, params)

    # The kernel's debugger warns about frozen modules on every start.
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    deadline = started + a.timeout if a.timeout > 0 else None
    opts = {"resources": {"metadata": {"path": os.getcwd()}}}
    if a.kernel:
        opts["kernel_name"] = a.kernel
    if deadline is not None:
        # nbclient's limit is per cell; the budget left is the whole run's.
        opts["timeout_func"] = lambda cell: max(1, int(deadline - time.time() + 0.999))
    client = NotebookClient(nb, **opts)
    status, error, code = "succeeded", "", 0
    try:
        client.execute()
    except Stopped as e:
        status, code, error = "failed", 1, str(e)
    except CellTimeoutError:
        status, code = "failed", 1
        error = "timeout: the run took longer than %gs" % a.timeout
    except Exception as e:  # a cell's error, a dead kernel, a missing kernel
        status, code = "failed", 1
        error = cell_error(nb, e)
    finally:
        duration_ms = int((time.time() - started) * 1000)
        os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
        tmp = a.output + ".tmp"
        nbformat.write(nb, tmp)
        os.replace(tmp, a.output)
        meta = {"id": a.id, "status": status,
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                "started_ms": int(started * 1000),
                "duration_ms": duration_ms, "error": error, "parameters": params}
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        os.replace(base + ".json.tmp", base + ".json")
    if code:
        RECORD = None  # written above, with the notebook
        fail(error, code)
    print("succeeded in %d ms: %s" % (duration_ms, a.output))


if __name__ == "__main__":
    main()
