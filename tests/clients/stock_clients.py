"""Predicts the same rows through stock clients of both serving protocols and prints what
each got back, as JSON, for the Sluice test suite to compare with the evaluation step.

    python stock_clients.py HOST:PORT MODEL ROWS_CSV

ROWS_CSV holds raw feature rows, comma-separated, no header. The clients are used as
their users use them, with their defaults: Triton's `tritonclient.http` (the Open
Inference Protocol, with its binary tensor extension on by default, once more with JSON
tensors, and with gzip and deflate request bodies), KServe's `InferenceRESTClient` (v2
with `InferRequest`, binary and JSON, which names the model in the body; and v1), and
`requests` against TF Serving's documented REST API (row and column formats).
"""

import asyncio
import json
import sys

import numpy as np
import requests
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig


async def kserve(address, model, features):
    """KServe's own REST client, v2 then v1, as its documentation uses it."""
    results = {}
    url = f"http://{address}"
    v2 = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
    assert await v2.is_server_live(url) and await v2.is_server_ready(url)
    assert await v2.is_model_ready(url, model)
    for binary in (True, False):
        tensor = InferInput(name="features", shape=list(features.shape), datatype="FP64")
        tensor.set_data_from_numpy(features, binary_data=binary)
        request = InferRequest(model_name=model, infer_inputs=[tensor], request_id="kserve")
        answer = await v2.infer(url, request, model_name=model)
        assert answer.model_name == model and answer.id == "kserve", answer
        outputs = {o.name: o.as_numpy() for o in answer.outputs}
        labels = [l.decode() if isinstance(l, bytes) else str(l) for l in outputs["label"]]
        results["kserve_v2_binary" if binary else "kserve_v2_json"] = [
            [float(p), l] for p, l in zip(outputs["probability"], labels)
        ]
    await v2.close()
    v1 = InferenceRESTClient(RESTConfig(protocol="v1", retries=0))
    assert await v1.is_server_live(url)
    assert await v1.is_model_ready(url, model)
    answer = await v1.infer(url, {"instances": features.tolist()}, model_name=model)
    results["kserve_v1"] = [[p["probability"], p["label"]] for p in answer["predictions"]]
    await v1.close()
    return results


def main():
    address, model, rows_csv = sys.argv[1:4]
    with open(rows_csv) as f:
        rows = [[float(x) for x in line.split(",")] for line in f if line.strip()]
    features = np.array(rows, dtype=np.float64)
    results = {}

    client = triton.InferenceServerClient(address)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(model)
    metadata = client.get_model_metadata(model)
    assert metadata["inputs"][0]["name"] == "features", metadata

    for binary in (True, False):
        tensor = triton.InferInput("features", list(features.shape), "FP64")
        tensor.set_data_from_numpy(features, binary_data=binary)
        outputs = [
            triton.InferRequestedOutput("probability", binary_data=binary),
            triton.InferRequestedOutput("label", binary_data=binary),
        ]
        answer = client.infer(model, [tensor], outputs=outputs, request_id="stock")
        assert answer.get_response()["id"] == "stock"
        labels = [
            l.decode() if isinstance(l, bytes) else str(l) for l in answer.as_numpy("label")
        ]
        results["triton_binary" if binary else "triton_json"] = [
            [float(p), l] for p, l in zip(answer.as_numpy("probability"), labels)
        ]
    # tritonclient's defaults: no outputs named, so every output comes back binary.
    tensor = triton.InferInput("features", list(features.shape), "FP64")
    tensor.set_data_from_numpy(features)
    answer = client.infer(model, [tensor])
    results["triton_defaults"] = [
        [float(p), l.decode()]
        for p, l in zip(answer.as_numpy("probability"), answer.as_numpy("label"))
    ]

    for algorithm in ("gzip", "deflate"):
        tensor = triton.InferInput("features", list(features.shape), "FP64")
        tensor.set_data_from_numpy(features)
        answer = client.infer(model, [tensor], request_compression_algorithm=algorithm)
        results[f"triton_{algorithm}"] = [
            [float(p), l.decode()]
            for p, l in zip(answer.as_numpy("probability"), answer.as_numpy("label"))
        ]

    results.update(asyncio.run(kserve(address, model, features)))

    base = f"http://{address}/v1/models/{model}"
    status = requests.get(base, timeout=30).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE", status
    row = requests.post(f"{base}:predict", json={"instances": rows}, timeout=30)
    row.raise_for_status()
    results["tfs_row"] = [[p["probability"], p["label"]] for p in row.json()["predictions"]]
    column = requests.post(f"{base}:predict", json={"inputs": {"features": rows}}, timeout=30)
    column.raise_for_status()
    outputs = column.json()["outputs"]
    results["tfs_column"] = [list(pair) for pair in zip(outputs["probability"], outputs["label"])]

    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
