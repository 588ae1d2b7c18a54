"""The baseline of bench/model.sh: the same scikit-learn model behind a
plain Flask scoring app, as a data scientist would write it, run by
gunicorn with the same worker count as ferry's model server. Each gunicorn
worker imports this module (no --preload), so the model is loaded once per
worker.

    POST /predict  {"inputs": [[5.1, 3.5, 1.4, 0.2], ...]}
                -> {"predictions": [0, ...]}

FERRY_BENCH_MODEL names the joblib file."""
import os

import joblib
import numpy as np
from flask import Flask, jsonify, request

MODEL = joblib.load(os.environ["FERRY_BENCH_MODEL"])
app = Flask(__name__)


@app.post("/predict")
def predict():
    body = request.get_json(force=True)
    X = np.asarray(body["inputs"], dtype=np.float64)
    return jsonify({"predictions": MODEL.predict(X).tolist()})
