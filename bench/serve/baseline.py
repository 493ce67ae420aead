"""The Python baseline for Sluice's serving benchmark: the same model served the way a
typical Python deployment serves it, FastAPI under uvicorn with scikit-learn.

It loads the bundle a Sluice run published (SLUICE_BUNDLE: the model file of a version
in the model repository), rebuilds it as a scikit-learn pipeline — StandardScaler with the
bundle's means and standard deviations, LogisticRegression with its weights and bias —
and answers TF Serving's `:predict` row format exactly as `sluice serve` does.

    SLUICE_BUNDLE=.../models/breast-cancer/1/model uvicorn baseline:app --workers 2
"""

import json
import os

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def load(path):
    with open(path) as f:
        bundle = json.load(f)
    if bundle.get("format") != "sluice-logistic-bundle/v1":
        raise SystemExit(f"{path} is not a sluice-logistic-bundle/v1")
    model, stats = bundle["model"], bundle["normalization"]
    if stats["method"] != "zscore":
        raise SystemExit("the baseline rebuilds z-score normalisation only")
    by_name = {c["name"]: c for c in stats["columns"]}
    columns = [by_name[f] for f in model["features"]]
    scaler = StandardScaler()
    scaler.mean_ = np.array([c["mean"] for c in columns])
    scaler.scale_ = np.array([c["std"] if c["std"] != 0 else 1.0 for c in columns])
    scaler.var_ = scaler.scale_**2
    scaler.n_features_in_ = len(columns)
    scaler.n_samples_seen_ = stats["rows"]
    classifier = LogisticRegression()
    classifier.coef_ = np.array([model["weights"]])
    classifier.intercept_ = np.array([model["bias"]])
    classifier.classes_ = np.array([bundle["negative"], model["positive"]])
    classifier.n_features_in_ = len(columns)
    return make_pipeline(scaler, classifier), model, bundle["negative"]


pipeline, MODEL, NEGATIVE = load(os.environ["SLUICE_BUNDLE"])
WIDTH = len(MODEL["features"])
app = FastAPI()


@app.get("/v1/models/breast-cancer")
def status():
    return {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                      "status": {"error_code": "OK", "error_message": ""}}]}


@app.post("/v1/models/breast-cancer:predict")
async def predict(request: Request):
    try:
        body = await request.json()
        rows = np.asarray(body["instances"], dtype=np.float64)
    except Exception as e:
        raise HTTPException(status_code=400, detail=f"bad request: {e}")
    if rows.ndim != 2 or rows.shape[1] != WIDTH:
        raise HTTPException(status_code=400, detail=f"expected [-1, {WIDTH}], got {list(rows.shape)}")
    probabilities = pipeline.predict_proba(rows)[:, 1]
    threshold = MODEL["threshold"]
    return {"predictions": [
        {"label": MODEL["positive"] if p >= threshold else NEGATIVE, "probability": float(p)}
        for p in probabilities
    ]}
