"""The request and response bodies of each serving contract (no TensorFlow here).

* TF Serving REST / KServe v1 / Vertex AI / SageMaker JSON: ``{"instances": [{"b64": "..."}, ...],
  "parameters": {...}}`` (or ``{"image_bytes": {"b64": ...}}`` per instance, the signature's input by
  name, or TF Serving's columnar ``{"inputs": [...]}``) -> ``{"predictions": [{"text", "confidence"}]}``.
* One raw image as the body (``/invocations`` and Vertex AI's route): ``image/png``, ``image/jpeg``,
  ``application/x-image`` (and the other ``image/*`` types ``decode_image`` reads).
* KServe v2 (Open Inference Protocol): one BYTES input of encoded images, its elements base64 text in
  JSON, or raw with the binary tensor extension (``Inference-Header-Content-Length``); outputs ``text``
  (BYTES) and ``confidence`` (FP32).

Every problem is a ``RequestError``: an HTTP status and one line naming the instance.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

INPUT_NAME = "image_bytes"  # the export's serving_default input
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp", "application/x-image")
JSON_TYPES = ("application/json", "")  # no Content-Type: read as JSON, as TF Serving does
DECODERS = ("greedy",)  # what an export's graph decodes (beam search and lexicons need its logits)
BINARY_HEADER = "inference-header-content-length"


class RequestError(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_json(body: bytes) -> Any:
    if not body:
        raise RequestError("empty request body (expected JSON or an image)")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"malformed JSON: {exc}") from None


def instances(body: bytes) -> tuple[list[bytes], dict]:
    """A TF Serving / Vertex AI JSON body -> (encoded images, parameters)."""
    request = parse_json(body)
    if not isinstance(request, dict):
        raise RequestError('the request must be a JSON object: {"instances": [{"b64": "<base64 image>"}]}')
    if "instances" in request:
        items = request["instances"]
    elif "inputs" in request:  # TF Serving's columnar form
        items = request["inputs"]
        items = items.get(INPUT_NAME) if isinstance(items, dict) and INPUT_NAME in items else items
    else:
        raise RequestError('no "instances" in the request (expected {"instances": [{"b64": "<base64 image>"}]})')
    if not isinstance(items, list):
        items = [items]
    if not items:
        raise RequestError('"instances" is empty')
    return [_instance(item, i) for i, item in enumerate(items)], check_parameters(request.get("parameters"))


def _instance(item: Any, index: int) -> bytes:
    if isinstance(item, dict) and set(item) == {INPUT_NAME}:
        item = item[INPUT_NAME]
    if not (isinstance(item, dict) and set(item) == {"b64"} and isinstance(item["b64"], str)):
        raise RequestError(f'instance {index}: expected {{"b64": "<base64 image>"}}, got {_show(item)}')
    return b64(item["b64"], f"instance {index}")


def b64(text: str, where: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{where}: not valid base64") from None
    if not data:
        raise RequestError(f"{where}: empty image")
    return data


def check_parameters(parameters: Any) -> dict:
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise RequestError('"parameters" must be a JSON object')
    unknown = sorted(set(parameters) - {"decoder"})
    if unknown:
        raise RequestError(f"unknown parameters: {', '.join(unknown)} (this server takes: decoder)")
    decoder = parameters.get("decoder", "greedy")
    if decoder not in DECODERS:
        raise RequestError(f"decoder {decoder!r}: this export decodes {', '.join(DECODERS)} only (in its graph)")
    return dict(parameters)


def raw_image(body: bytes) -> list[bytes]:
    if not body:
        raise RequestError("empty request body (expected an image)")
    return [body]


def predictions(texts: list[str], confidences: list[float]) -> dict:
    return {"predictions": [{"text": t, "confidence": c} for t, c in zip(texts, confidences, strict=True)]}


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


# -- KServe v2 ----------------------------------------------------------------------------------


def v2_request(body: bytes, header_length: str | None) -> tuple[list[bytes], dict]:
    """An Open Inference Protocol infer request -> (encoded images, the request's ``id`` and output names)."""
    raw = b""
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise RequestError(f"Inference-Header-Content-Length {header_length!r} is not a number") from None
        if not 0 < size <= len(body):
            raise RequestError(f"Inference-Header-Content-Length {size} is outside the body ({len(body)} bytes)")
        body, raw = body[:size], body[size:]
    request = parse_json(body)
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or not request["inputs"]:
        raise RequestError('expected {"inputs": [{"name": "image_bytes", "datatype": "BYTES", "shape": [N], '
                           '"data": ["<base64 image>", ...]}]}')
    if len(request["inputs"]) != 1:
        raise RequestError(f"one input expected ({INPUT_NAME}), got {len(request['inputs'])}")
    tensor = request["inputs"][0]
    if not isinstance(tensor, dict) or tensor.get("datatype") != "BYTES":
        raise RequestError(f"input {INPUT_NAME}: datatype must be BYTES (encoded images)")
    shape = tensor.get("shape")
    if not (isinstance(shape, list) and len(shape) == 1 and isinstance(shape[0], int) and shape[0] > 0):
        raise RequestError(f"input {INPUT_NAME}: shape must be [N], N >= 1, not {_show(shape)}")
    binary_size = (tensor.get("parameters") or {}).get("binary_data_size")
    images = _binary_elements(raw, shape[0]) if binary_size is not None else _json_elements(tensor, shape[0])
    outputs = [o.get("name") for o in request.get("outputs") or [] if isinstance(o, dict)]
    unknown = [name for name in outputs if name not in ("text", "confidence")]
    if unknown:
        raise RequestError(f"unknown outputs: {', '.join(map(str, unknown))} (this model has text, confidence)")
    return images, {"id": request.get("id"), "outputs": outputs or ["text", "confidence"]}


def _json_elements(tensor: dict, count: int) -> list[bytes]:
    data = tensor.get("data")
    if not isinstance(data, list) or len(data) != count:
        raise RequestError(f"input {INPUT_NAME}: data must be a list of {count} base64 strings")
    if not all(isinstance(item, str) for item in data):
        raise RequestError(f"input {INPUT_NAME}: each element must be a base64 string of an encoded image")
    return [b64(item, f"instance {i}") for i, item in enumerate(data)]


def _binary_elements(raw: bytes, count: int) -> list[bytes]:
    """The binary tensor extension's BYTES layout: each element a 4-byte little-endian length, then its bytes."""
    images, offset = [], 0
    for i in range(count):
        if offset + 4 > len(raw):
            raise RequestError(f"instance {i}: binary data ends before its length")
        size = int.from_bytes(raw[offset : offset + 4], "little")
        offset += 4
        if size == 0 or offset + size > len(raw):
            raise RequestError(f"instance {i}: binary element of {size} bytes does not fit the body")
        images.append(raw[offset : offset + size])
        offset += size
    if offset != len(raw):
        raise RequestError(f"{len(raw) - offset} bytes after the {count} binary elements")
    return images


def v2_response(name: str, version: int, texts: list[str], confidences: list[float], request: dict) -> dict:
    tensors = {"text": {"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts},
               "confidence": {"name": "confidence", "datatype": "FP32", "shape": [len(texts)], "data": confidences}}
    response = {"model_name": name, "model_version": str(version),
                "outputs": [tensors[o] for o in request["outputs"]]}
    if request.get("id") is not None:
        response["id"] = request["id"]
    return response


def v2_metadata(name: str, version: int) -> dict:
    return {"name": name, "versions": [str(version)], "platform": "tensorflow_savedmodel",
            "inputs": [{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
            "outputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]},
                        {"name": "confidence", "datatype": "FP32", "shape": [-1]}]}


def v1_status(version: int, ready: bool) -> dict:
    """TF Serving's GetModelStatus answer."""
    state = "AVAILABLE" if ready else "LOADING"
    return {"model_version_status": [{"version": str(version), "state": state,
                                      "status": {"error_code": "OK", "error_message": ""}}]}
