"""ferry model worker: one Python process serving one model for
ferry-model-server (docs/models.md, "Workers").

    python3 worker.py serve DIR CONFIG_JSON   load the model once, then answer
                                              batches on stdin/stdout
    python3 worker.py bins DIR CONFIG_JSON    bin the reference CSV for drift,
                                              print JSON, exit

CONFIG_JSON is the model section as the server read it: format, file, entry,
method, inputs and outputs ({name, datatype, shape}), reference.

Framing (little-endian), both directions: an 8-byte frame header
    u32 body_length, u8 kind, 3 zero bytes
then body_length bytes. Kinds: 'R' ready (empty body), 'I' a batch of input
tensors (server to worker), 'O' the output tensors, 'E' an error (UTF-8
text). A tensor list is u32 count, 4 zero bytes, then per tensor
    u8 dtype, u8 rank, u16 name_length, 4 zero bytes, u64 data_length,
    i64 shape[rank], the name (zero-padded to 8), the data (zero-padded to 8)
so every tensor's data starts 8-aligned and numpy reads it in place.
dtype is the index in DTYPES below; BYTES data is, per element, a u32
length then the bytes.

This file runs on Debian's python3 (numpy, scikit-learn, joblib), never
the one first on PATH: the server passes the interpreter explicitly.
"""

import os
import struct
import sys
import traceback

# One thread per worker process: the server runs several workers side by side
# and per-request work is small, so BLAS thread pools only add wake-ups.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402

try:
    import numpy as np
except ImportError as _e:
    # The wrong interpreter (one without Debian's numpy): say so in the
    # protocol, so the server's error line names the reason.
    _why = "%s cannot import numpy (%s): use Debian's python3 or set FERRY_PYTHON" % (
        sys.executable, _e)
    if len(sys.argv) > 1 and sys.argv[1] == "bins":
        sys.stdout.write(json.dumps({"error": _why}) + "\n")
    else:
        _b = _why.encode("utf-8", "replace")
        os.write(1, struct.pack("<IB3x", len(_b), ord("E")) + _b)
    sys.exit(1)

DTYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
          "INT64", "FP16", "FP32", "FP64", "BYTES"]
CODE = {name: i for i, name in enumerate(DTYPES)}
BYTES = CODE["BYTES"]
NP_OF = [np.dtype(t) for t in ("?", "<u1", "<u2", "<u4", "<u8", "<i1", "<i2", "<i4", "<i8",
                               "<f2", "<f4", "<f8")]

FRAME = struct.Struct("<IB3x")
COUNT = struct.Struct("<I4x")
THEAD = struct.Struct("<BBH4xQ")
U32 = struct.Struct("<I")
PAD = b"\0" * 8
# Shapes by rank, compiled once: a format string per request costs more
# than the model's own work for a one-row answer.
SHAPE = [struct.Struct("<%dq" % r) for r in range(9)]


def pad8(n):
    return (n + 7) & ~7


class ModelError(Exception):
    """An answer the model gave that cannot be sent (wrong rows, dtype...)."""


# ---------------------------------------------------------------- framing

def read_exact(rd, view):
    got = rd.readinto(view)
    return got == len(view)


def decode_tensors(body):
    """Input tensors, in order, as (name, array); arrays view body in place."""
    mv = memoryview(body)
    (count,) = COUNT.unpack_from(body, 0)
    off = COUNT.size
    out = []
    for _ in range(count):
        dt, rank, nlen, nbytes = THEAD.unpack_from(body, off)
        off += THEAD.size
        shape = SHAPE[rank].unpack_from(body, off) if rank <= 8 else \
            struct.unpack_from("<%dq" % rank, body, off)
        off += 8 * rank
        name = bytes(mv[off:off + nlen]).decode("utf-8")
        off += pad8(nlen)
        if dt == BYTES:
            arr = decode_bytes(body, off, nbytes, shape)
        else:
            n = 1
            for d in shape:
                n *= d
            arr = np.frombuffer(body, NP_OF[dt], n, off).reshape(shape) if n else \
                np.empty(shape, NP_OF[dt])
        off += pad8(nbytes)
        out.append((name, arr))
    return out


def decode_bytes(body, off, nbytes, shape):
    n = 1
    for d in shape:
        n *= d
    arr = np.empty(n, dtype=object)
    end = off + nbytes
    for i in range(n):
        (ln,) = U32.unpack_from(body, off)
        off += 4
        arr[i] = bytes(body[off:off + ln])
        off += ln
    if off != end:
        raise ModelError("malformed BYTES tensor")
    return arr.reshape(shape)


def encode_bytes(arr):
    parts = []
    for x in arr.reshape(-1):
        if isinstance(x, bytes):
            b = x
        elif isinstance(x, str):
            b = x.encode("utf-8")
        else:
            b = str(x).encode("utf-8")
        parts.append(U32.pack(len(b)))
        parts.append(b)
    return b"".join(parts)


def writev_all(fd, parts, total=None):
    if total is None:
        total = sum(len(p) for p in parts)
    done = os.writev(fd, parts)
    if done == total:
        return
    # A large answer did not fit the socket buffer: finish it piece by piece.
    flat = memoryview(b"".join(bytes(p) for p in parts))[done:]
    while len(flat):
        n = os.write(fd, flat)
        flat = flat[n:]


def send_frame(fd, kind, body=b""):
    writev_all(fd, [FRAME.pack(len(body), ord(kind)), body])


def send_error(fd, text):
    send_frame(fd, "E", text.encode("utf-8", "replace")[:4096])


def send_outputs(fd, outs):
    parts = [None, COUNT.pack(len(outs))]
    total = COUNT.size
    for name, arr, code in outs:
        nb = name.encode("utf-8")
        if code == BYTES:
            data = encode_bytes(arr)
        else:
            data = arr.reshape(-1).view(np.uint8)
        nbytes = len(data)
        head = THEAD.pack(code, arr.ndim, len(nb), nbytes) + \
            SHAPE[arr.ndim].pack(*arr.shape) + nb + PAD[:pad8(len(nb)) - len(nb)]
        parts.append(head)
        parts.append(data)
        total += len(head) + nbytes
        if nbytes & 7:
            parts.append(PAD[:8 - (nbytes & 7)])
            total += 8 - (nbytes & 7)
    parts[0] = FRAME.pack(total, ord("O"))
    writev_all(fd, parts, total + FRAME.size)


def last_line(exc):
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


# ---------------------------------------------------------------- outputs

def wire_code(arr):
    k = arr.dtype.kind
    if k in "USO":
        return BYTES
    if k == "b":
        return CODE["BOOL"]
    if k in "iuf":
        name = {"i": "INT", "u": "UINT", "f": "FP"}[k] + str(arr.dtype.itemsize * 8)
        if name in CODE:
            return CODE[name]
    raise ModelError("output dtype %s has no V2 datatype" % arr.dtype)


def to_wire(name, value, decl, rows):
    """(name, contiguous little-endian array, dtype code) for one output."""
    if not name or len(name.encode("utf-8")) >= 64:
        raise ModelError("output name '%s' is empty or longer than 63 bytes" % name)
    arr = np.asarray(value)
    if arr.ndim > 8:
        raise ModelError("output '%s' has %d dimensions, at most 8" % (name, arr.ndim))
    if arr.ndim == 0 or arr.shape[0] != rows:
        got = "a scalar" if arr.ndim == 0 else "%d rows" % arr.shape[0]
        raise ModelError("output '%s' has %s for %d input rows" % (name, got, rows))
    if decl is not None:
        shape = decl.get("shape")
        if shape is not None:
            if len(shape) == 1 and arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr.reshape(-1)
            if arr.ndim != len(shape) or any(d >= 0 and d != g for d, g in zip(shape, arr.shape)):
                raise ModelError("output '%s' has shape %s, declared %s"
                                 % (name, list(arr.shape), shape))
        code = CODE[decl["datatype"]]
        if code != BYTES:
            target = NP_OF[code]
            if arr.dtype != target:
                if arr.dtype.kind in "USO" or not np.can_cast(arr.dtype, target, "same_kind"):
                    raise ModelError("output '%s' is %s, declared %s"
                                     % (name, arr.dtype, decl["datatype"]))
                arr = arr.astype(target, copy=False)
    else:
        code = wire_code(arr)
        if code != BYTES:
            arr = arr.astype(NP_OF[code], copy=False)
    if code != BYTES:
        arr = np.ascontiguousarray(arr)
    return name, arr, code


# ---------------------------------------------------------------- models

def inside(dirpath, rel, what):
    path = os.path.realpath(os.path.join(dirpath, rel))
    root = os.path.realpath(dirpath)
    if os.path.isabs(rel) or not path.startswith(root + os.sep):
        raise ModelError("%s '%s' is outside the model directory" % (what, rel))
    return path


class SklearnModel:
    def __init__(self, dirpath, cfg):
        import warnings
        import joblib
        rel = cfg.get("file") or ""
        path = inside(dirpath, rel, "model.file")
        try:
            self.est = joblib.load(path)
        except Exception as e:
            raise ModelError("loading %s: %s" % (rel, last_line(e))) from None
        method = cfg.get("method") or "predict"
        self.fn = getattr(self.est, method, None)
        if not callable(self.fn):
            raise ModelError("%s: the estimator (%s) has no method '%s'"
                             % (rel, type(self.est).__name__, method))
        outs = cfg.get("outputs") or []
        if len(outs) > 1:
            raise ModelError("a sklearn model has one output; %d are declared" % len(outs))
        self.decl = outs[0] if outs else None
        self.out_name = outs[0]["name"] if outs else method
        self.names = [i["name"] for i in cfg.get("inputs") or []]
        # No declared inputs: the fitted estimator says what it takes, and
        # the server checks requests against that (docs/models.md).
        self.signature = None
        if not self.names:
            fitted = getattr(self.est, "feature_names_in_", None)
            nfeat = getattr(self.est, "n_features_in_", None)
            if fitted is not None:
                self.names = [str(c) for c in fitted]
                self.signature = [{"name": n, "datatype": "FP64", "shape": [-1]}
                                  for n in self.names]
            elif isinstance(nfeat, (int, np.integer)) and 0 < int(nfeat):
                self.signature = [{"name": "input-0", "datatype": "FP64",
                                   "shape": [-1, int(nfeat)]}]
            else:
                raise ModelError("%s: the estimator (%s) does not say which features it "
                                 "takes: declare model.inputs" % (rel, type(self.est).__name__))
            if len(self.signature) > 64:
                raise ModelError("%s: the estimator takes %d named features, at most 64 "
                                 "inputs: declare one 2-D input" % (rel, len(self.signature)))
        # An estimator fitted on a DataFrame knows its column names: give it a
        # DataFrame, in its own column order, so a pipeline that selects
        # columns by name works. Anything else gets a plain matrix.
        self.columns = None
        fitted = getattr(self.est, "feature_names_in_", None)
        if fitted is not None and len(self.names) > 1:
            self.columns = [str(c) for c in fitted]
            missing = [c for c in self.columns if c not in self.names]
            if missing:
                raise ModelError("%s: the estimator expects column '%s', which is not a "
                                 "declared input" % (rel, missing[0]))
            import pandas
            self.pandas = pandas
        warnings.filterwarnings("ignore", message="X does not have valid feature names")

    @staticmethod
    def column(arr):
        if arr.dtype == object:
            return np.array([x.decode("utf-8") for x in arr.reshape(-1)],
                            dtype=object).reshape(arr.shape)
        return arr

    def run(self, inputs, rows):
        if self.columns is not None:
            cols = {name: self.column(arr) for name, arr in inputs}
            X = self.pandas.DataFrame({c: cols[c] for c in self.columns})
        elif len(inputs) == 1:
            X = self.column(inputs[0][1])
            if X.ndim == 1:
                X = X.reshape(-1, 1)
        else:
            X = np.column_stack([self.column(arr) for _, arr in inputs])
        return [to_wire(self.out_name, self.fn(X), self.decl, rows)]


class PythonModel:
    def __init__(self, dirpath, cfg):
        import importlib.util
        entry = cfg.get("entry") or ""
        rel, sep, clsname = entry.partition(":")
        if not sep or not rel or not clsname:
            raise ModelError("model.entry '%s' is not FILE:CLASS" % entry)
        path = inside(dirpath, rel, "model.entry")
        modname = os.path.splitext(os.path.basename(rel))[0]
        # The model's own modules sit next to it.
        sys.path.insert(0, os.path.dirname(path))
        try:
            spec = importlib.util.spec_from_file_location(modname, path)
            if spec is None:
                raise ModelError("%s is not a Python file" % rel)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[modname] = mod
            spec.loader.exec_module(mod)
        except ModelError:
            raise
        except BaseException as e:
            traceback.print_exc()
            raise ModelError("importing %s: %s" % (rel, last_line(e))) from None
        cls = getattr(mod, clsname, None)
        if cls is None:
            raise ModelError("%s has no class '%s'" % (rel, clsname))
        try:
            self.obj = cls()
            if hasattr(self.obj, "load"):
                self.obj.load(dirpath)
        except BaseException as e:
            traceback.print_exc()
            raise ModelError("%s.load: %s" % (clsname, last_line(e))) from None
        self.predict = getattr(self.obj, "predict", None)
        if not callable(self.predict):
            raise ModelError("%s has no method 'predict'" % clsname)
        self.decl = cfg.get("outputs") or []

    def run(self, inputs, rows):
        res = self.predict(dict(inputs))
        if not isinstance(res, dict):
            name = self.decl[0]["name"] if self.decl else "output0"
            res = {name: res}
        if not self.decl:
            if len(res) > 64:
                raise ModelError("predict() returned %d outputs, at most 64" % len(res))
            return [to_wire(str(k), v, None, rows) for k, v in res.items()]
        outs = []
        for d in self.decl:
            if d["name"] not in res:
                raise ModelError("predict() returned no output '%s'" % d["name"])
            outs.append(to_wire(d["name"], res[d["name"]], d, rows))
        return outs


def load(dirpath, cfg):
    fmt = cfg.get("format")
    if fmt == "sklearn":
        return SklearnModel(dirpath, cfg)
    if fmt == "python":
        return PythonModel(dirpath, cfg)
    raise ModelError("model.format '%s' is not sklearn or python" % fmt)


# ---------------------------------------------------------------- serve

def serve(dirpath, cfg):
    # The protocol owns the original stdin/stdout; the model's own prints
    # and C libraries' writes to fd 1 go to stderr (the run's log).
    rfd = os.dup(0)
    wfd = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    rd = open(rfd, "rb", buffering=1 << 16)
    os.chdir(dirpath)
    try:
        model = load(dirpath, cfg)
    except BaseException as e:
        send_error(wfd, str(e) if isinstance(e, ModelError) else last_line(e))
        return 1
    import gc
    gc.collect()
    gc.freeze()
    sig = getattr(model, "signature", None)
    send_frame(wfd, "R", json.dumps({"inputs": sig}).encode() if sig else b"")
    head = bytearray(FRAME.size)
    while True:
        if not read_exact(rd, head):
            return 0    # the server closed the pipe: stop
        length, kind = FRAME.unpack_from(head)
        body = bytearray(length)
        if not read_exact(rd, memoryview(body)) or kind != ord("I"):
            sys.stderr.write("ferry model worker: malformed frame from the server\n")
            return 1
        try:
            inputs = decode_tensors(body)
            rows = inputs[0][1].shape[0] if inputs and inputs[0][1].ndim else 0
            outs = model.run(inputs, rows)
        except Exception as e:
            if not isinstance(e, ModelError):
                traceback.print_exc()
            send_error(wfd, str(e) if isinstance(e, ModelError) else last_line(e))
            continue
        try:
            send_outputs(wfd, outs)
        except ModelError as e:
            send_error(wfd, str(e))


# ---------------------------------------------------------------- drift bins

def bins(dirpath, cfg):
    import csv
    rel = cfg.get("reference") or ""
    path = inside(dirpath, rel, "model.reference")
    inputs = [i for i in cfg.get("inputs") or [] if i.get("datatype") != "BYTES"]
    two_d = len(cfg.get("inputs") or []) == 1 and len(inputs) == 1 and \
        len(inputs[0].get("shape") or []) == 2
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise ModelError("%s: no header row" % rel)
        header = [h.strip() for h in header]
        if two_d:
            width = inputs[0]["shape"][1]
            if width >= 0 and width != len(header):
                raise ModelError("%s: %d columns, input '%s' has %d"
                                 % (rel, len(header), inputs[0]["name"], width))
            names = header
        else:
            names = [i["name"] for i in inputs if len(i.get("shape") or [-1]) == 1]
            for n in names:
                if n not in header:
                    raise ModelError("%s: no column '%s'" % (rel, n))
        for n in names:
            if len(n.encode("utf-8")) >= 64:
                raise ModelError("%s: column name '%s' is longer than 63 bytes" % (rel, n))
        idx = [header.index(n) for n in names]
        cols = [[] for _ in names]
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise ModelError("%s:%d: %d fields, the header has %d"
                                 % (rel, reader.line_num, len(row), len(header)))
            for c, j in zip(cols, idx):
                try:
                    c.append(float(row[j]))
                except ValueError:
                    raise ModelError("%s:%d: column '%s': '%s' is not a number"
                                     % (rel, reader.line_num, header[j], row[j])) from None
    feats = []
    for name, c in zip(names, cols):
        a = np.asarray(c, dtype=np.float64)
        a = a[np.isfinite(a)]
        if a.size == 0:
            raise ModelError("%s: column '%s' has no numbers" % (rel, name))
        edges = np.quantile(a, np.arange(1, 10) / 10.0)
        # Bin i holds edges[i-1] < x <= edges[i] (bin 0: x <= edges[0], bin 9:
        # x > edges[8]); drift.c bins served values the same way.
        counts = np.bincount(np.searchsorted(edges, a, side="left"), minlength=10)
        feats.append({"name": name, "edges": [float(x) for x in edges],
                      "expected": [float(x) for x in counts / a.size]})
    return {"features": feats}


def main(argv):
    if len(argv) != 4 or argv[1] not in ("serve", "bins"):
        sys.stderr.write("usage: worker.py serve|bins DIR CONFIG_JSON\n")
        return 2
    dirpath = os.path.abspath(argv[2])
    cfg = json.loads(argv[3])
    if argv[1] == "serve":
        return serve(dirpath, cfg)
    try:
        out = bins(dirpath, cfg)
    except ModelError as e:
        out = {"error": str(e)}
    except Exception as e:
        out = {"error": "%s: %s" % (cfg.get("reference"), last_line(e))}
    sys.stdout.write(json.dumps(out) + "\n")
    return 1 if "error" in out else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
