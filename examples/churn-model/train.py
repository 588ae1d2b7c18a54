"""Train the churn classifier: synthetic customers, a fixed seed, scikit-learn.

Writes model.joblib (the estimator ferry serves) and reference.csv (a sample
of the training inputs, header row = input names, which ferry compares the
served inputs with to measure drift). Run with the Python that has
scikit-learn:  /usr/bin/python3 train.py
"""
import csv
import os
import sys

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

FEATURES = ["tenure_months", "monthly_spend", "support_tickets"]
HERE = os.path.dirname(os.path.abspath(__file__))


def synthetic_customers(n, rng):
    tenure = rng.integers(1, 72, n).astype(np.float64)
    spend = np.round(rng.gamma(4.0, 15.0, n), 2)
    tickets = rng.poisson(1.5, n).astype(np.float64)
    # Churn grows with spend and tickets and falls with tenure.
    logit = -1.2 - 0.04 * tenure + 0.015 * spend + 0.35 * tickets
    churned = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return np.column_stack([tenure, spend, tickets]), churned


def main(out_dir):
    rng = np.random.default_rng(8)
    x, y = synthetic_customers(5000, rng)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=8)
    model = LogisticRegression(max_iter=1000).fit(x_train, y_train)
    auc = roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])
    joblib.dump(model, os.path.join(out_dir, "model.joblib"))
    with open(os.path.join(out_dir, "reference.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FEATURES)
        w.writerows(x_train[:1000].tolist())
    print(f"model.joblib, reference.csv written; hold-out AUC {auc:.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else HERE)
