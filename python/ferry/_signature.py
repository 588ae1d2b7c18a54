"""V2 tensor signatures: inferred from a sample, and requests built
against the signature an endpoint reports."""
import re

import numpy as np

from ._cli import Error

# docs/manifest.md, "A tensor entry": 1-63 characters, no leading . or -
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")
MAX_INPUTS = 64

_KIND = {"b": "BOOL", "O": "BYTES", "U": "BYTES", "S": "BYTES"}
_SIZED = {
    ("i", 1): "INT8", ("i", 2): "INT16", ("i", 4): "INT32", ("i", 8): "INT64",
    ("u", 1): "UINT8", ("u", 2): "UINT16", ("u", 4): "UINT32", ("u", 8): "UINT64",
    ("f", 2): "FP16", ("f", 4): "FP32", ("f", 8): "FP64",
}
NUMPY = {"BOOL": np.bool_, "BYTES": object, "INT8": np.int8, "INT16": np.int16,
         "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16,
         "UINT32": np.uint32, "UINT64": np.uint64, "FP16": np.float16,
         "FP32": np.float32, "FP64": np.float64}


def datatype(dtype, what):
    dtype = np.dtype(dtype)
    if dtype.kind in _KIND:
        return _KIND[dtype.kind]
    dt = _SIZED.get((dtype.kind, dtype.itemsize))
    if dt is None:
        raise Error("ferry: %s: dtype %s has no V2 datatype" % (what, dtype))
    return dt


def _is_frame(x):
    return type(x).__name__ == "DataFrame" and hasattr(x, "columns")


def infer(sample):
    """The `inputs` of ferry.yaml for a DataFrame or an array sample.

    A DataFrame whose column names are all valid V2 names gives one 1-D
    input per column (sklearn's columns, in order, each with its dtype);
    other names (spaces, brackets, numbers as names) or more than 64
    columns give one 2-D input `input-0` of whole rows, as an array does."""
    if _is_frame(sample):
        names = [str(c) for c in sample.columns]
        if not names:
            raise Error("ferry: inputs: the DataFrame has no columns")
        if (all(NAME_RE.match(n) for n in names) and len(set(names)) == len(names)
                and len(names) <= MAX_INPUTS):
            return [{"name": n, "datatype": datatype(sample[c].dtype, "column '%s'" % n),
                     "shape": [-1]} for n, c in zip(names, sample.columns)]
        kinds = {datatype(t, "DataFrame") for t in sample.dtypes}
        if len(kinds) != 1 or "BYTES" in kinds:
            bad = [n for n in names if not NAME_RE.match(n)]
            why = ("'%s' is not a V2 input name" % bad[0]) if bad else \
                ("%d columns, over %d named inputs" % (len(names), MAX_INPUTS))
            raise Error("ferry: inputs: %s, and the columns are not all of one numeric "
                        "type for a 2-D input: rename the columns or pass inputs=[...]" % why)
        return [{"name": "input-0", "datatype": kinds.pop(), "shape": [-1, len(names)]}]
    arr = np.asarray(sample)
    if arr.ndim == 1:
        return [{"name": "input-0", "datatype": datatype(arr.dtype, "inputs"), "shape": [-1]}]
    if arr.ndim == 2:
        return [{"name": "input-0", "datatype": datatype(arr.dtype, "inputs"),
                 "shape": [-1, int(arr.shape[1])]}]
    raise Error("ferry: inputs: an array of %d dimensions; give rows (2-D) or a DataFrame"
                % arr.ndim)


def _tensor(name, arr, dt):
    arr = np.asarray(arr)
    if dt == "BYTES":
        data = [str(v) for v in arr.reshape(-1)]
    else:
        data = arr.astype(NUMPY[dt]).reshape(-1).tolist()
    return {"name": name, "datatype": dt, "shape": list(arr.shape), "data": data}


def request(signature, data):
    """A V2 inference request for `data` (a DataFrame, an array, or a dict
    of name -> column) against an endpoint's input signature."""
    if not signature:
        raise Error("ferry: predict: the endpoint reports no inputs")
    frame = _is_frame(data)
    if len(signature) == 1 and len(signature[0]["shape"]) == 2:
        s = signature[0]
        if isinstance(data, dict):
            data = data.get(s["name"]) if s["name"] in data else np.column_stack(list(data.values()))
        arr = np.asarray(data.to_numpy() if frame else data)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        return {"inputs": [_tensor(s["name"], arr, s["datatype"])]}
    cols = []
    if frame or isinstance(data, dict):
        keys = [str(c) for c in (data.columns if frame else data.keys())]
        lookup = dict(zip(keys, data.columns if frame else data.keys()))
        for s in signature:
            if s["name"] not in lookup:
                raise Error("ferry: predict: no column '%s' in the data (the model takes %s)"
                            % (s["name"], ", ".join(x["name"] for x in signature)))
            col = data[lookup[s["name"]]]
            cols.append(col.to_numpy() if hasattr(col, "to_numpy") else col)
    else:
        arr = np.asarray(data)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1) if len(signature) > 1 else arr
        if arr.ndim == 1:
            cols = [arr]
        elif arr.ndim == 2 and arr.shape[1] == len(signature):
            cols = [arr[:, i] for i in range(arr.shape[1])]
        else:
            raise Error("ferry: predict: data of shape %s for a model of %d inputs"
                        % (list(arr.shape), len(signature)))
    return {"inputs": [_tensor(s["name"], c, s["datatype"]) for s, c in zip(signature, cols)]}


def outputs(doc):
    """name -> numpy array of a V2 response."""
    out = {}
    for o in doc.get("outputs") or []:
        dt = o.get("datatype")
        arr = np.array(o.get("data"), dtype=NUMPY.get(dt, None) if dt != "FP64" else np.float64)
        out[o["name"]] = arr.reshape(o.get("shape") or arr.shape)
    return out
