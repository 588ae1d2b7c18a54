"""bench/model.sh's models: an iris classifier (scikit-learn logistic
regression) saved with joblib, and a format: python identity model for the
server-overhead figure.  python3 train.py OUT_DIR"""
import os
import sys

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

out = sys.argv[1]
X, y = load_iris(return_X_y=True)
os.makedirs(os.path.join(out, "iris"), exist_ok=True)
joblib.dump(LogisticRegression(max_iter=1000).fit(X, y), os.path.join(out, "iris", "model.joblib"))

os.makedirs(os.path.join(out, "identity"), exist_ok=True)
with open(os.path.join(out, "identity", "serve.py"), "w") as f:
    f.write("class Model:\n"
            "    def load(self, d):\n"
            "        pass\n\n"
            "    def predict(self, inputs):\n"
            "        return {\"y\": inputs[\"x\"]}\n")
