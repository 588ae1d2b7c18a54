"""Running the ferry CLI: the one place the client leaves Python.

Every registry operation goes through the `ferry` binary so that the
signing, hashing and verification are the CLI's own code (docs/python.md,
"Why the CLI")."""
import os
import shutil
import subprocess


class Error(Exception):
    """A refused operation. str(e) is the CLI's one-line message, as the
    CLI printed it; `status` is its exit status (None when it did not run)."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        self.status = status


def binary():
    """The ferry CLI: $FERRY_CLI, else `ferry` on PATH, else the one
    installed with this package."""
    path = os.environ.get("FERRY_CLI") or shutil.which("ferry")
    if not path:
        try:
            from ._installed import CLI
        except ImportError:
            CLI = None
        if CLI and os.access(CLI, os.X_OK):
            path = CLI
    if not path:
        raise Error("ferry: the ferry CLI is not on PATH (set FERRY_CLI)")
    return path


def _last_line(text):
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1] if lines else ""


def run(args, *, registry=None, key=None, timeout=None):
    """Runs `ferry ARGS...` and returns its stdout. A non-zero exit raises
    Error with the CLI's message. registry/key become --registry/--key;
    without them the CLI reads FERRY_REGISTRY and FERRY_KEY itself."""
    cmd = [binary()] + list(args)
    if registry is not None:
        cmd += ["--registry", str(registry)]
    if key is not None:
        cmd += ["--key", os.fspath(key)]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Error("ferry: %s: no answer within %ss" % (" ".join(args[:1]), timeout)) from None
    except OSError as e:
        raise Error("ferry: %s: %s" % (cmd[0], e.strerror)) from None
    if proc.returncode != 0:
        line = _last_line(proc.stderr) or _last_line(proc.stdout) or \
            "ferry: %s exited %d" % (args[0], proc.returncode)
        raise Error(line, proc.returncode)
    return proc.stdout
