"""One server process, or several on one port (``SO_REUSEPORT``: the kernel spreads the connections).

With ``workers > 1`` this process only supervises: it starts the workers (each loads the model),
passes SIGTERM and SIGINT on to them, and exits with the worst of their statuses. Their metrics go
to one ``PROMETHEUS_MULTIPROC_DIR``, so ``/metrics`` in any of them counts all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import signal
import sys
import tempfile
import time

from .server import ServeConfig


def serve_command(args, input_dir) -> int:
    """``shadownet serve``: the flags, then what the hosting platform says (``platforms.hosting``), then defaults.
    ``input_dir`` stages an ``s3://`` or ``gs://`` export (the CLI's ``Staging.input_dir``)."""
    from pathlib import Path

    from ..cloud.platforms import SERVING_PORT, hosting
    from ..errors import ShadownetError
    from .model import find_export

    platform = hosting(os.environ, Path("/"))
    model = args.model or platform.model
    if model is None:
        raise ShadownetError("no model to serve: pass --model EXPORT")
    config = ServeConfig(find_export(input_dir(model)), host=args.host, port=args.port or platform.port or SERVING_PORT,
                         max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms,
                         request_timeout=args.request_timeout, max_body_bytes=int(args.max_body_mb * (1 << 20)),
                         health_routes=platform.health_routes, predict_routes=platform.predict_routes)
    return run(config, args.workers or platform.workers or 1)


def run(config: ServeConfig, workers: int = 1) -> int:
    if workers <= 1:
        from .server import serve

        return asyncio.run(serve(config))
    with tempfile.TemporaryDirectory(prefix="shadownet-metrics-") as metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # before any worker imports prometheus_client
        context = multiprocessing.get_context("spawn")
        config = dataclasses.replace(config, reuse_port=True)
        processes = [context.Process(target=_worker, args=(config,), name=f"serve-{i}") for i in range(workers)]

        def forward(signum, frame):
            for process in processes:
                if process.pid is not None and process.exitcode is None:
                    os.kill(process.pid, signum)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, forward)
        for process in processes:
            process.start()
        print(f"started {workers} server processes on port {config.port}", file=sys.stderr, flush=True)
        first = None  # the status of the first worker that failed by itself
        while any(process.exitcode is None for process in processes):
            # One worker failed (the model, the port): the others stop too, so the platform sees the failure.
            if first is None:
                first = next((process.exitcode for process in processes if process.exitcode), None)
                if first is not None:
                    forward(signal.SIGTERM, None)
            time.sleep(0.2)
        if first is None:  # all ended together (or after a signal to this process)
            first = next((process.exitcode for process in processes if process.exitcode), 0)
        return first if first >= 0 else 128 - first


def _worker(config: ServeConfig) -> None:
    from ..errors import ShadownetError
    from .server import serve

    try:
        sys.exit(asyncio.run(serve(config)))
    except ShadownetError as exc:
        print(f"shadownet: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(exc.exit_code)
