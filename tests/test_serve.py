"""``shadownet serve`` over HTTP on 127.0.0.1: every contract's answers equal ``predict``'s, bad input, SIGTERM,
metrics, worker processes; the batcher, the protocols and the hosting contracts on their own."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import encoded_text, run_cli
from serving import Server, b64, instances
from shadownet.cloud.platforms import Hosting, hosting
from shadownet.errors import ShadownetError
from shadownet.learn import export
from shadownet.serve import protocols
from shadownet.serve.batcher import Batcher

STAGES = ("decode", "preprocess", "queue", "model", "text", "total")


@pytest.fixture(scope="module")
def model(lively_dir) -> Path:
    """The lively run (varied texts) exported under the default name."""
    return export.export(lively_dir, lively_dir.parent / "serve-export")


@pytest.fixture(scope="module")
def expected(model, images) -> list[dict]:
    result = run_cli("predict", "--model", model, "--json", *[p for p, _ in images], check=True)
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    """One server with Vertex AI's routes too (AIP_*: the hosting contract adds them)."""
    log = open(tmp_path_factory.mktemp("serve-log") / "stderr", "w")
    server = Server.local(model, env={"AIP_HEALTH_ROUTE": "/health", "AIP_PREDICT_ROUTE": "/predict",
                                                  "AIP_HTTP_PORT": "1"}, log=log)
    server.wait_ready()
    yield server
    assert server.stop() == 0
    assert "stopped" in server.stderr()


def assert_same(predictions: list[dict], expected: list[dict]) -> None:
    assert [p["text"] for p in predictions] == [e["text"] for e in expected]
    assert [p["confidence"] for p in predictions] == pytest.approx([e["confidence"] for e in expected], abs=1e-4)
    assert len({p["text"] for p in predictions}) > 3  # the lively model reads varied strings: parity means something


@pytest.mark.slow
def test_every_contract_answers_as_predict(server, images, expected):
    data = [d for _, d in images]
    assert server.request("GET", "/ping")[0] == 200 and server.request("GET", "/health")[0] == 200
    assert server.request("GET", "/v2/health/live")[0] == 200 and server.request("GET", "/v2/health/ready")[0] == 200
    status, body = server.post_json("/v1/models/shadownet:predict", instances(data))
    assert status == 200
    assert_same(body["predictions"], expected)
    named = {"instances": [{"image_bytes": {"b64": b64(d)}} for d in data], "parameters": {"decoder": "greedy"}}
    for route in ("/invocations", "/predict", "/v1/models/shadownet:predict"):
        status, body = server.post_json(route, named)
        assert status == 200, body
        assert_same(body["predictions"], expected)
    for route in ("/invocations", "/predict"):  # one raw image per request
        raw = []
        for (path, d) in images:
            status, headers, body = server.request("POST", route, d, "image/png" if path.suffix == ".png"
                                                   else "image/jpeg")
            assert status == 200
            raw += json.loads(body)["predictions"]
        assert_same(raw, expected)

    v2 = {"id": "r1", "inputs": [{"name": "image_bytes", "datatype": "BYTES", "shape": [len(data)],
                                  "data": [b64(d) for d in data]}]}
    status, body = server.post_json("/v2/models/shadownet/infer", v2)
    assert status == 200 and body["id"] == "r1" and body["model_name"] == "shadownet"
    texts, confidences = ({o["name"]: o["data"] for o in body["outputs"]}[k] for k in ("text", "confidence"))
    assert_same([{"text": t, "confidence": c} for t, c in zip(texts, confidences, strict=True)], expected)

    header = json.dumps({"inputs": [{"name": "image_bytes", "datatype": "BYTES", "shape": [len(data)],
                                     "parameters": {"binary_data_size": sum(4 + len(d) for d in data)}}],
                         "outputs": [{"name": "text"}]}).encode()
    raw = b"".join(struct.pack("<I", len(d)) + d for d in data)
    status, _, body = server.request("POST", "/v2/models/shadownet/infer", header + raw, "application/octet-stream",
                                     {"Inference-Header-Content-Length": str(len(header))})
    assert status == 200
    outputs = json.loads(body)["outputs"]
    assert [o["name"] for o in outputs] == ["text"] and outputs[0]["data"] == [e["text"] for e in expected]

    status, _, body = server.request("GET", "/v1/models/shadownet")
    assert json.loads(body)["model_version_status"][0] == {"version": "1", "state": "AVAILABLE",
                                                           "status": {"error_code": "OK", "error_message": ""}}
    meta = json.loads(server.request("GET", "/v2/models/shadownet")[2])
    assert meta["versions"] == ["1"] and meta["inputs"][0] == {"name": "image_bytes", "datatype": "BYTES",
                                                               "shape": [-1]}
    assert server.request("GET", "/v1/models/other")[0] == 404


BAD = [  # (route, body, content type, status, words the error must contain)
    ("/invocations", b"\x89PNG not really", "image/png", 400, "instance 0: not a decodable image"),
    ("/invocations", json.dumps(instances([b"just some text"])).encode(), "application/json", 400,
     "instance 0: not a decodable image"),
    ("/v1/models/shadownet:predict", b'{"instances": [', "application/json", 400, "malformed JSON"),
    ("/v1/models/shadownet:predict", b'{"images": []}', "application/json", 400, 'no "instances"'),
    ("/v1/models/shadownet:predict", b'{"instances": [{"b64": "@@@"}]}', "application/json", 400,
     "instance 0: not valid base64"),
    ("/v1/models/shadownet:predict", b'{"instances": ["raw text"]}', "application/json", 400,
     'instance 0: expected {"b64"'),
    ("/invocations", b"", "image/jpeg", 400, "empty request body"),
    ("/invocations", b"", "application/json", 400, "empty request body"),
    ("/invocations", b"hello", "text/plain", 415, "unsupported Content-Type 'text/plain'"),
    ("/v1/models/shadownet:predict", b"\xff\xd8", "image/jpeg", 415, "unsupported Content-Type"),
    ("/invocations", encoded_text("x", 3), "image/jpeg", 400, "instance 0: image of"),  # too small
    ("/invocations", encoded_text("wide " * 40, 16), "image/jpeg", 400, "too wide"),
    ("/v1/models/shadownet:predict", json.dumps({"instances": [{"b64": "AAAA"}], "parameters": {"decoder": "beam"}})
     .encode(), "application/json", 400, "decoder 'beam'"),
    ("/v2/models/shadownet/infer", b'{"inputs": [{"name": "image_bytes", "datatype": "FP32", "shape": [1], '
                                   b'"data": [1]}]}', "application/json", 400, "datatype must be BYTES"),
    ("/v2/models/shadownet/infer", b'{"inputs": [{"name": "x", "datatype": "BYTES", "shape": [2], "data": ["AAAA"]}]}',
     "application/json", 400, "data must be a list of 2"),
    ("/nowhere", b"", None, 404, "Not Found"),
]


@pytest.mark.slow
def test_bad_input_is_a_json_4xx_and_the_server_stays_healthy(server, images, expected):
    good = instances([images[0][1]])
    for route, body, content_type, status, words_ in BAD:
        got, headers, answer = server.request("POST" if route != "/nowhere" else "GET", route, body, content_type)
        assert got == status, (route, body[:40], answer)
        assert headers["content-type"].startswith("application/json")
        assert words_ in json.loads(answer)["error"], (route, answer)
        status_, answer_ = server.post_json("/invocations", good)
        assert status_ == 200 and answer_["predictions"][0]["text"] == expected[0]["text"]
    # The first bad image of several is named by its index; the good ones around it are not answered wrongly.
    mixed = instances([images[0][1], b"not an image", images[1][1]])
    status, answer = server.post_json("/invocations", mixed)
    assert status == 400 and answer["error"].startswith("instance 1: not a decodable image")
    assert server.request("GET", "/ping")[0] == 200


@pytest.mark.slow
def test_body_limit_timing_and_metrics(model, images):
    server = Server.local(model, "--max-body-mb", "0.01").wait_ready()
    try:
        status, headers, answer = server.request("POST", "/invocations", b"\xff" * 20000, "image/jpeg")
        assert status == 413 and "over the limit" in json.loads(answer)["error"]
        for _, data in images[:5]:
            status, headers, _ = server.request("POST", "/invocations", data, "image/jpeg")
            assert status == 200
            timing = dict(re.findall(r"(\w+);dur=([\d.]+)", headers["server-timing"]))
            assert list(timing) == list(STAGES) and float(timing["total"]) >= float(timing["model"]) > 0
        metrics = server.request("GET", "/metrics")[2].decode()
        assert 'shadownet_requests_total{route="/invocations",status="200"} 5.0' in metrics
        assert 'shadownet_requests_total{route="/invocations",status="413"} 1.0' in metrics
        assert re.search(r"^shadownet_batch_size_count (\d+)\.0$", metrics, re.M).group(1) == "5"
        assert re.search(r'^shadownet_stage_seconds_count\{stage="model"\} 5\.0$', metrics, re.M)
    finally:
        assert server.stop() == 0


@pytest.mark.slow
def test_sigterm_answers_every_request_in_flight(model, images, expected):
    server = Server.local(model).wait_ready()
    body = json.dumps(instances([d for _, d in images] * 4)).encode()  # 48 images a request
    answers, finished = [], []

    def client():
        status, _, answer = server.request("POST", "/invocations", body, "application/json", timeout=120)
        answers.append((status, json.loads(answer)))
        finished.append(time.monotonic())

    threads = [threading.Thread(target=client) for _ in range(12)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=120)
    assert server.process.wait(timeout=60) == 0
    assert len(answers) == 12 and all(status == 200 for status, _ in answers)
    assert sum(t > signalled for t in finished) >= 1  # some were still being answered after the signal
    for _, answer in answers:
        assert [p["text"] for p in answer["predictions"]] == [e["text"] for e in expected] * 4
    with pytest.raises(OSError):
        server.request("GET", "/ping", timeout=5)


@pytest.mark.slow
def test_two_worker_processes_share_the_port(model, images, expected):
    server = Server.local(model, "--workers", "2").wait_ready()
    try:
        for _ in range(3):
            status, answer = server.post_json("/invocations", instances([images[2][1]]))
            assert status == 200 and answer["predictions"][0]["text"] == expected[2]["text"]
        time.sleep(1)  # both workers ready (the port answered for one)
        metrics = server.request("GET", "/metrics")[2].decode()
        assert re.search(r'shadownet_requests_total\{route="/invocations",status="200"\} 3\.0', metrics)
    finally:
        assert server.stop() == 0


def test_serve_refuses_what_it_cannot_serve(tmp_path):
    result = run_cli("serve", "--model", tmp_path / "missing")
    assert result.returncode == 2 and result.stderr.strip().endswith("no such export (expected <export_dir>/<name> "
                                                                     "or <name>/<version>)")
    if Path("/opt/ml/model").is_dir() or Path("/mnt/models").is_dir():
        pytest.skip("this host has a hosting platform's model folder")
    # No hosting platform's variables (CI sets SAGEMAKER_SDK_PYTHON, which names no endpoint: kept)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIP_")
           and k not in ("SAGEMAKER_BIND_TO_PORT", "SAGEMAKER_MODEL_SERVER_WORKERS")}
    result = run_cli("serve", cwd=tmp_path, env=dict(env, SAGEMAKER_SDK_PYTHON="python3"))
    assert result.returncode == 2 and "no model to serve: pass --model EXPORT" in result.stderr


# -- without a server ----------------------------------------------------------------------------


def test_batcher_groups_concurrent_images_and_never_holds_one_back():
    seen = []

    def recognize(batch):
        seen.append(len(batch))
        time.sleep(0.02)
        return [bytes([int(p[0])]) for p in batch], [float(p[0]) for p in batch]

    async def scenario():
        batcher = Batcher(recognize, max_batch=8, max_wait=0.5)
        batcher.start()
        alone = time.perf_counter()
        first = await batcher.recognize(np.array([7]))
        alone = time.perf_counter() - alone
        results = await asyncio.gather(*(batcher.recognize(np.array([i])) for i in range(20)))
        await batcher.stop()
        return first, alone, results

    first, alone, results = asyncio.run(scenario())
    assert first.text == b"\x07" and alone < 0.4  # nothing else was coming: no 0.5 s wait
    assert [r.confidence for r in results] == [float(i) for i in range(20)]
    assert seen[0] == 1 and max(seen) == 8 and sum(seen) == 21 and len(seen) <= 5


def test_v2_binary_and_json_parsing():
    images = [b"abc", b"defgh"]
    raw = b"".join(struct.pack("<I", len(i)) + i for i in images)
    header = json.dumps({"inputs": [{"name": "image_bytes", "datatype": "BYTES", "shape": [2],
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    assert protocols.v2_request(header + raw, str(len(header)))[0] == images
    with pytest.raises(protocols.RequestError, match="instance 1: binary element of 99 bytes"):
        protocols.v2_request(header + raw[:7] + struct.pack("<I", 99) + b"x", str(len(header)))
    with pytest.raises(protocols.RequestError, match="outside the body"):
        protocols.v2_request(header, "100000")
    request = {"inputs": [{"name": "image_bytes", "datatype": "BYTES", "shape": [1], "data": [b64(b"xyz")]}],
               "outputs": [{"name": "score"}]}
    with pytest.raises(protocols.RequestError, match="unknown outputs: score"):
        protocols.v2_request(json.dumps(request).encode(), None)
    assert protocols.instances(b'{"inputs": {"image_bytes": [{"b64": "eHl6"}]}}') == ([b"xyz"], {})


def test_hosting_contracts(tmp_path):
    assert hosting({}, tmp_path) == Hosting("local")
    assert hosting({"SAGEMAKER_SDK_PYTHON": "python3", "SAGEMAKER_ROLE": "r"}, tmp_path) == Hosting("local")
    (tmp_path / "opt/ml/model").mkdir(parents=True)
    sagemaker = hosting({"SAGEMAKER_BIND_TO_PORT": "9090", "SAGEMAKER_MODEL_SERVER_WORKERS": "3"}, tmp_path)
    assert (sagemaker.name, sagemaker.model, sagemaker.port, sagemaker.workers) == (
        "sagemaker", str(tmp_path / "opt/ml/model"), 9090, 3)
    vertex = hosting({"AIP_HTTP_PORT": "7080", "AIP_HEALTH_ROUTE": "/h", "AIP_PREDICT_ROUTE": "/p",
                      "AIP_STORAGE_URI": "gs://b/m"}, tmp_path)
    assert vertex == Hosting("vertex", model="gs://b/m", port=7080, health_routes=("/h",), predict_routes=("/p",))
    (tmp_path / "opt/ml/model").rmdir()
    (tmp_path / "mnt/models").mkdir(parents=True)
    assert hosting({}, tmp_path) == Hosting("kserve", model=str(tmp_path / "mnt/models"))
    with pytest.raises(ShadownetError, match="SAGEMAKER_BIND_TO_PORT='x'"):
        hosting({"SAGEMAKER_BIND_TO_PORT": "x"}, tmp_path)


@pytest.mark.slow
def test_serves_an_export_from_s3_and_times_out_slow_requests(s3, bucket, model, images, expected):
    """``--model s3://...`` (staged like ``predict --model``); a request over ``--request-timeout`` is a 504."""
    client = s3.client()
    for path in sorted(p for p in model.parent.parent.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"exports/{path.relative_to(model.parent.parent).as_posix()}")
    server = Server.local(f"s3://{bucket}/exports", "--request-timeout", "0.25", env=s3.env()).wait_ready()
    try:
        status, _, answer = server.request("POST", "/invocations", images[4][1], "image/jpeg")
        assert status == 200 and json.loads(answer)["predictions"][0]["text"] == expected[4]["text"]
        status, answer = server.post_json("/invocations", instances([d for _, d in images] * 40))  # ~1 s of work
        assert status == 504 and answer == {"error": "no answer within 0.25 s"}
        assert server.request("GET", "/ping")[0] == 200
    finally:
        assert server.stop() == 0


@pytest.mark.slow
def test_workers_that_cannot_listen_fail_the_server(model):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = Server.local(model, "--workers", "2", port=port)
        assert server.process.wait(timeout=180) == 2
        assert f"cannot listen on 127.0.0.1:{port}" in server.process.stderr.read()
