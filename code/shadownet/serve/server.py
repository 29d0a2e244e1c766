"""The HTTP server: every platform's routes on one aiohttp application.

Routes (``NAME`` is the export's name, ``shadownet`` by default):

* SageMaker: ``GET /ping``, ``POST /invocations`` (JSON or one raw image);
* TF Serving REST / KServe v1: ``GET /v1/models/NAME``, ``POST /v1/models/NAME:predict``;
* KServe v2: ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2``, ``/v2/models/NAME``,
  ``/v2/models/NAME/ready``, ``POST /v2/models/NAME/infer``;
* Vertex AI: its ``AIP_HEALTH_ROUTE`` and ``AIP_PREDICT_ROUTE`` (JSON or one raw image);
* ``GET /metrics`` (Prometheus).

The port listens at once; readiness (``/ping``, ``/v2/health/ready``, the Vertex health route) only
answers 200 once the model is loaded and warmed up. SIGTERM: readiness turns 503, the port closes,
requests in flight are answered, the process exits 0. Every error is JSON ``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from ..cloud.platforms import SERVING_PORT
from ..errors import ShadownetError
from . import protocols
from .batcher import Batcher
from .metrics import CONTENT_TYPE, STAGES, Metrics
from .model import InstanceError, ServingModel

clock = time.perf_counter


@dataclass(frozen=True)
class ServeConfig:
    model: Path  # local: the CLI stages s3:// and gs:// exports first
    host: str = "0.0.0.0"
    port: int = SERVING_PORT
    max_batch: int = 64
    batch_wait_ms: float = 2.0
    request_timeout: float = 30.0
    max_body_bytes: int = 8 << 20
    health_routes: tuple[str, ...] = ()  # extra readiness routes (Vertex AI's AIP_HEALTH_ROUTE)
    predict_routes: tuple[str, ...] = ()  # extra predict routes (AIP_PREDICT_ROUTE)
    drain_seconds: float = 60.0  # after SIGTERM, how long requests in flight may take
    reuse_port: bool = False  # several worker processes on one port


@dataclass
class State:
    config: ServeConfig
    metrics: Metrics = field(default_factory=Metrics)
    model: ServingModel | None = None
    batcher: Batcher | None = None
    ready: bool = False

    @property
    def name(self) -> str:
        return self.model.name if self.model else "shadownet"


def json_response(body, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=json.dumps(body, ensure_ascii=False).encode("utf-8"), status=status,
                        content_type="application/json", headers=headers)


def error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status)


# -- recognition --------------------------------------------------------------------------------


async def recognize(state: State, images: list[bytes]) -> tuple[list[str], list[float], dict[str, float]]:
    """Encoded images -> (texts, confidences, seconds per stage), or ``RequestError`` naming the first bad one."""
    if state.batcher is None:  # not `ready`: that turns false on SIGTERM, and requests in flight are answered
        raise protocols.RequestError("the model is not loaded yet", 503)
    loop = asyncio.get_running_loop()
    state.batcher.incoming += len(images)
    try:
        prepared = await asyncio.gather(*(loop.run_in_executor(None, state.model.prepare, image, clock)
                                          for image in images), return_exceptions=True)
    finally:
        state.batcher.incoming -= len(images)
    for i, item in enumerate(prepared):
        if isinstance(item, InstanceError):
            raise protocols.RequestError(f"instance {i}: {item}", item.status)
        if isinstance(item, BaseException):
            raise item
    results = await asyncio.gather(*(state.batcher.recognize(p.pixels) for p in prepared))
    start = clock()
    texts = [r.text.decode("utf-8", "replace") for r in results]
    confidences = [float(r.confidence) for r in results]
    batches = {r.batch: r.model_s for r in results}
    timings = {"decode": sum(p.decode_s for p in prepared), "preprocess": sum(p.preprocess_s for p in prepared),
               "queue": max(r.queue_s for r in results), "model": sum(batches.values()), "text": clock() - start}
    return texts, confidences, timings


def server_timing(timings: dict[str, float], total: float) -> str:
    """The W3C ``Server-Timing`` header: each stage's milliseconds."""
    parts = [f"{name};dur={timings[name] * 1000:.3f}" for name in STAGES if name in timings]
    return ", ".join(parts + [f"total;dur={total * 1000:.3f}"])


async def body_of(request: web.Request) -> bytes:
    limit = request.app["state"].config.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise protocols.RequestError(f"request body of {request.content_length:,} bytes is over the limit "
                                     f"of {limit:,}", 413)
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise protocols.RequestError(f"request body is over the limit of {limit:,} bytes", 413) from None


async def _images(request: web.Request, raw_allowed: bool) -> tuple[list[bytes], dict]:
    kind = protocols.media_type(request.headers.get("Content-Type"))
    body = await body_of(request)
    if kind in protocols.JSON_TYPES:
        return protocols.instances(body)
    if raw_allowed and (kind in protocols.IMAGE_TYPES or kind.startswith("image/")):
        return protocols.raw_image(body), {}
    accepted = "application/json" + (", " + ", ".join(protocols.IMAGE_TYPES) if raw_allowed else "")
    raise protocols.RequestError(f"unsupported Content-Type {kind!r} (use {accepted})", 415)


def predict_handler(raw_allowed: bool):
    async def handle(request: web.Request) -> web.Response:
        state = request.app["state"]
        _model_name(request)
        images, _ = await _images(request, raw_allowed)
        texts, confidences, timings = await recognize(state, images)
        request["timings"] = timings
        return json_response(protocols.predictions(texts, confidences))

    return handle


async def v2_infer(request: web.Request) -> web.Response:
    state = request.app["state"]
    _model_name(request)
    body = await body_of(request)
    images, parsed = protocols.v2_request(body, request.headers.get(protocols.BINARY_HEADER))
    texts, confidences, timings = await recognize(state, images)
    request["timings"] = timings
    return json_response(protocols.v2_response(state.name, state.model.version, texts, confidences, parsed))


# -- status -------------------------------------------------------------------------------------


def _model_name(request: web.Request) -> None:
    state = request.app["state"]
    name = request.match_info.get("name")
    if name is not None and state.model is not None and name != state.name:
        raise protocols.RequestError(f"no model {name!r} here (this server has {state.name!r})", 404)


async def readiness(request: web.Request) -> web.Response:
    state = request.app["state"]
    if not state.ready:
        return error(503, "not ready: the model is loading or the server is stopping")
    return json_response({"status": "ready", "model": state.name, "version": state.model.version})


async def liveness(request: web.Request) -> web.Response:
    return json_response({"live": True})


async def v1_status(request: web.Request) -> web.Response:
    _model_name(request)
    state = request.app["state"]
    if state.model is None:
        return error(503, "the model is loading")
    # 503 until ready (and once stopping): Vertex AI's health route in our specs is this one.
    return json_response(protocols.v1_status(state.model.version, state.ready), 200 if state.ready else 503)


async def v2_model(request: web.Request) -> web.Response:
    _model_name(request)
    state = request.app["state"]
    if state.model is None:
        return error(503, "the model is loading")
    return json_response(protocols.v2_metadata(state.name, state.model.version))


async def v2_model_ready(request: web.Request) -> web.Response:
    _model_name(request)
    return await readiness(request)


async def v2_server(request: web.Request) -> web.Response:
    from .. import __version__

    return json_response({"name": "shadownet", "version": __version__, "extensions": ["binary_tensor_data"]})


async def metrics_handler(request: web.Request) -> web.Response:
    body = request.app["state"].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


# -- the application ----------------------------------------------------------------------------


@web.middleware
async def middleware(request: web.Request, handler) -> web.StreamResponse:
    """JSON errors, the per-request timeout, ``Server-Timing``, and the metrics of every request."""
    state: State = request.app["state"]
    start = clock()
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "other"
    try:
        response = await asyncio.wait_for(handler(request), state.config.request_timeout)
    except protocols.RequestError as exc:
        response = error(exc.status, str(exc))
    except asyncio.TimeoutError:
        response = error(504, f"no answer within {state.config.request_timeout:g} s")
    except web.HTTPException as exc:  # aiohttp's own 404, 405, 413
        response = error(exc.status, exc.reason)
    except Exception as exc:  # a bug: logged, and a 500 that says so
        print(f"shadownet serve: internal error on {request.method} {request.path}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        response = error(500, f"internal error: {type(exc).__name__}")
    total = clock() - start
    timings = request.get("timings")
    if timings is not None:
        response.headers["Server-Timing"] = server_timing(timings, total)
        state.metrics.stages(timings)
    if route != "/metrics":
        state.metrics.request(route, response.status, total)
    return response


def build_app(state: State) -> web.Application:
    config = state.config
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[middleware])
    app["state"] = state
    routes = [
        web.get("/ping", readiness), web.post("/invocations", predict_handler(raw_allowed=True)),
        web.get("/v1/models/{name}", v1_status),
        web.post("/v1/models/{name:[^/:]+}:predict", predict_handler(raw_allowed=False)),
        web.get("/v2", v2_server), web.get("/v2/health/live", liveness), web.get("/v2/health/ready", readiness),
        web.get("/v2/models/{name}", v2_model), web.get("/v2/models/{name}/ready", v2_model_ready),
        web.post("/v2/models/{name}/infer", v2_infer),
        web.post("/v2/models/{name}/versions/{version}/infer", v2_infer),
        web.get("/metrics", metrics_handler),
    ]
    taken = {("GET", "/ping"), ("POST", "/invocations")}
    routes += [web.get(path, readiness) for path in config.health_routes if ("GET", path) not in taken]
    routes += [web.post(path, predict_handler(raw_allowed=True)) for path in config.predict_routes
               if ("POST", path) not in taken]
    app.add_routes(_dedupe(routes))
    return app


def _dedupe(routes: list) -> list:
    """A platform route equal to one of ours (AIP_PREDICT_ROUTE=/v1/models/shadownet:predict) is registered once."""
    seen, kept = set(), []
    for route in routes:
        key = (route.method, route.path)
        if key not in seen:
            seen.add(key)
            kept.append(route)
    return kept


async def serve(config: ServeConfig, log=lambda line: print(line, file=sys.stderr, flush=True)) -> int:
    """Listen, load and warm up the model, serve until SIGTERM or SIGINT; returns the exit status."""
    state = State(config)
    runner = web.AppRunner(build_app(state), handle_signals=False, access_log=None,
                           shutdown_timeout=config.drain_seconds)
    await runner.setup()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async def listen():
        site = web.TCPSite(runner, config.host, config.port, reuse_port=config.reuse_port or None)
        try:
            await site.start()
        except OSError as exc:
            raise ShadownetError(f"cannot listen on {config.host}:{config.port} ({exc.strerror})") from None
        log(f"listening on http://{config.host}:{config.port}")

    try:
        # One process: the port answers at once (liveness), ready once loaded. One of several on a shared
        # port: it joins once ready, so the kernel never hands a connection to a worker still loading.
        if not config.reuse_port:
            await listen()
        try:
            state.model = await loop.run_in_executor(None, ServingModel, config.model)
            await loop.run_in_executor(None, state.model.warm_up, clock)
        except ShadownetError:
            raise
        except Exception as exc:
            raise ShadownetError(f"{config.model}: cannot load the model ({type(exc).__name__}: {exc})") from None
        state.batcher = Batcher(state.model.recognize, config.max_batch, config.batch_wait_ms / 1000,
                                on_batch=state.metrics.batch)
        state.batcher.start()
        state.ready = True
        if config.reuse_port:
            await listen()
        log(f"ready: {state.name} version {state.model.version} from {state.model.path} "
            f"(max batch {config.max_batch}, wait {config.batch_wait_ms:g} ms)")
        await stop.wait()
        state.ready = False
        log("stopping: finishing the requests in flight")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await runner.cleanup()  # closes the port, then waits for the handlers still running
        if state.batcher is not None:
            await state.batcher.stop()
    log("stopped")
    return 0
