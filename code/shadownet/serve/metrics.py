"""Prometheus metrics of the server, at ``/metrics``.

With several worker processes (``--workers``) each writes its samples to ``PROMETHEUS_MULTIPROC_DIR``
(set by the parent before they start) and ``/metrics`` in any of them sums them all.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401 (the server's /metrics type)
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 128, 256)
STAGES = ("decode", "preprocess", "queue", "model", "text")


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("shadownet_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=self.registry)
        self.latency = Histogram("shadownet_request_seconds", "Time from request to response, by route",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("shadownet_batch_size", "Images per model call", buckets=BATCH_BUCKETS,
                                    registry=self.registry)
        self.stage = Histogram("shadownet_stage_seconds", "Time per request in each stage", ["stage"],
                               buckets=LATENCY_BUCKETS, registry=self.registry)
        self.images = Counter("shadownet_images", "Images recognised", registry=self.registry)

    def request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.images.inc(size)

    def stages(self, timings: dict[str, float]) -> None:
        for name in STAGES:
            if name in timings:
                self.stage.labels(name).observe(timings[name])

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
