"""`docker run IMAGE serve` in the CPU image, as each platform starts it, checked from outside over HTTP on
127.0.0.1: SageMaker hosting (/opt/ml/model, SAGEMAKER_BIND_TO_PORT), KServe (/mnt/models, v1 and v2), TF
Serving's REST API, Vertex AI (AIP_*, the model from gs:// on a GCS emulator); answers equal `shadownet predict`
on the same images; bad input; `docker stop` with requests in flight loses none."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import DOCKER, docker, image_name, run_cli
from serving import Server, b64, free_port, instances
from shadownet.learn import export
from test_serve import BAD, assert_same

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_root(lively_dir) -> Path:
    """A folder as a training job leaves /opt/ml/model: shadownet/1/..."""
    root = lively_dir.parent / "opt-ml-model"
    export.export(lively_dir, root)
    return root


@pytest.fixture(scope="module")
def expected(model_root, images) -> list[dict]:
    result = run_cli("predict", "--model", model_root / "shadownet", "--json", *[p for p, _ in images], check=True)
    return [json.loads(line) for line in result.stdout.splitlines()]


def container(*flags: str, env: dict | None = None, mounts: dict | None = None, args=()) -> tuple[Server, str]:
    name = f"shadownet-serve-{uuid.uuid4().hex[:8]}"
    command = [DOCKER, "run", "--rm", "--init", "--network", "host", "--name", name]
    for key, value in (env or {}).items():
        command += ["-e", f"{key}={value}"]
    for inside, host in (mounts or {}).items():
        command += ["-v", f"{host}:{inside}"]
    port = int((env or {}).get("SAGEMAKER_BIND_TO_PORT") or (env or {}).get("AIP_HTTP_PORT") or 0) or None
    if port is None:
        port = free_port()
        args = (*args, "--port", str(port))
    return Server(command + [*flags, image_name("train-cpu"), "serve", *args], port), name


def stop(name: str, server: Server) -> int:
    docker("stop", "--time", "60", name, check=False)
    return server.process.wait(timeout=90)


def test_sagemaker_hosting_contract(cpu_image, model_root, images, expected):
    """As SageMaker starts it: `serve`, the model unpacked in /opt/ml/model, its port and worker variables."""
    port = free_port()
    server, name = container(env={"SAGEMAKER_BIND_TO_PORT": str(port), "SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
                             mounts={"/opt/ml/model:ro": model_root})
    try:
        server.wait_ready()
        data = [d for _, d in images]
        status, body = server.post_json("/invocations", instances(data))
        assert status == 200
        assert_same(body["predictions"], expected)
        status, _, raw = server.request("POST", "/invocations", data[1], "image/jpeg")
        assert status == 200 and json.loads(raw)["predictions"][0]["text"] == expected[1]["text"]
        status, _, answer = server.request("POST", "/invocations", b"not an image", "application/x-image")
        assert status == 400 and json.loads(answer)["error"] == "instance 0: not a decodable image " \
                                                                 "(JPEG, PNG, GIF, BMP or WebP)"
        for route, bad, content_type, code, words in BAD:  # each bad input; the next good one is answered right
            got, headers, answer = server.request("POST" if route != "/nowhere" else "GET", route, bad, content_type)
            assert got == code and words in json.loads(answer)["error"], (route, answer)
            status, raw = server.post_json("/invocations", instances([data[0]]))
            assert status == 200 and raw["predictions"][0]["text"] == expected[0]["text"]
        assert server.request("GET", "/ping")[0] == 200
    finally:
        assert stop(name, server) == 0


def test_kserve_and_tf_serving_rest_as_the_kubernetes_user(cpu_image, model_root, images, expected):
    """KServe's custom container: the model in /mnt/models, run as 10001; v2 infer and TF Serving's REST API."""
    server, name = container("--user", "10001:10001", mounts={"/mnt/models:ro": model_root})
    try:
        server.wait_ready(path="/v2/health/ready")
        data = [d for _, d in images]
        assert server.request("GET", "/v2/health/live")[0] == 200
        status, body = server.post_json("/v1/models/shadownet:predict", instances(data))
        assert status == 200
        assert_same(body["predictions"], expected)
        request = {"inputs": [{"name": "image_bytes", "datatype": "BYTES", "shape": [len(data)],
                               "data": [b64(d) for d in data]}]}
        status, body = server.post_json("/v2/models/shadownet/infer", request)
        assert status == 200
        outputs = {o["name"]: o for o in body["outputs"]}
        assert outputs["text"]["data"] == [e["text"] for e in expected]
        assert outputs["confidence"]["datatype"] == "FP32" and outputs["confidence"]["shape"] == [len(data)]
        status, body = server.post_json("/v2/models/shadownet/infer", {"inputs": []})
        assert status == 400 and "expected" in body["error"]
        assert json.loads(server.request("GET", "/v1/models/shadownet")[2])["model_version_status"][0]["state"] \
            == "AVAILABLE"
    finally:
        assert stop(name, server) == 0


def test_docker_stop_answers_every_request_in_flight(cpu_image, model_root, images, expected):
    server, name = container(mounts={"/opt/ml/model:ro": model_root})
    server.wait_ready()
    body = json.dumps(instances([d for _, d in images] * 4)).encode()
    answers = []

    def client():
        status, _, answer = server.request("POST", "/invocations", body, "application/json", timeout=120)
        answers.append((status, json.loads(answer)))

    threads = [threading.Thread(target=client) for _ in range(10)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # all ten sent and being answered
    stopped = threading.Thread(target=lambda: answers.append(("exit", stop(name, server))))
    stopped.start()
    for thread in threads + [stopped]:
        thread.join(timeout=150)
    assert ("exit", 0) in answers
    served = [answer for status, answer in answers if status == 200]
    assert len(served) == 10
    for answer in served:
        assert [p["text"] for p in answer["predictions"]] == [e["text"] for e in expected] * 4


def test_vertex_ai_prediction_contract(cpu_image, model_root, images, expected, gcs, gcs_bucket):
    """As Vertex AI starts it: AIP_HTTP_PORT, its routes, and the model from AIP_STORAGE_URI (gs://, here the GCS
    emulator on the host's loopback, through STORAGE_EMULATOR_HOST), as the Kubernetes user."""
    gcs.upload(model_root, f"gs://{gcs_bucket}/models/run-1")
    port = free_port()
    health, predict = "/v1/endpoints/123/deployedModels/456", "/v1/endpoints/123/deployedModels/456:predict"
    env = {"AIP_HTTP_PORT": str(port), "AIP_HEALTH_ROUTE": health, "AIP_PREDICT_ROUTE": predict,
           "AIP_STORAGE_URI": f"gs://{gcs_bucket}/models/run-1", **gcs.env()}
    server, name = container("--user", "10001:10001", env=env)
    try:
        server.wait_ready(path=health)
        data = [d for _, d in images]
        status, body = server.post_json(predict, {**instances(data), "parameters": {"decoder": "greedy"}})
        assert status == 200
        assert_same(body["predictions"], expected)
        status, _, raw = server.request("POST", predict, data[3], "image/png" if images[3][0].suffix == ".png"
                                        else "image/jpeg")
        assert status == 200 and json.loads(raw)["predictions"][0]["text"] == expected[3]["text"]
        status, body = server.post_json(predict, {"instances": [{"b64": b64(data[0])}, {"b64": b64(b"%PDF-1.4")}]})
        assert status == 400 and body["error"].startswith("instance 1: not a decodable image")
    finally:
        assert stop(name, server) == 0
