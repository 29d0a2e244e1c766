"""Load on ``shadownet serve``: single-image requests from 1, 8, 16 and 32 concurrent clients, with and
without dynamic batching, on 127.0.0.1.

The server runs in the CPU image (``--image``, what the goal is about) or, without it, from this checkout.
The model is ``--model EXPORT``, or one made here with default settings (``shadownet_small``, keep_ratio,
max width 256; trained for one step: the speed does not depend on the weights). The images are
``shadownet synth --kind lines`` JPEGs (seed 1), each request ``POST /invocations`` with one of them.

For each server (``--max-batch 64`` and ``--max-batch 1``) and client count: a warm-up, then requests for
``--seconds`` (at most ``--requests``); images/s, latency p50/p95/p99, errors, the mean batch the server ran
(from ``/metrics``) and the mean of each stage of ``Server-Timing``; and, as the reference, one client sending
64 images a request (the batch-64 figure). Prints one JSON object.

    python benchmarks/serve.py [--image shadownet/train-cpu:0.1.0] [--model EXPORT] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp

STAGES = ("decode", "preprocess", "queue", "model", "text", "total")


def shadownet(*args) -> None:
    subprocess.run([sys.executable, "-m", "shadownet", *map(str, args)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def prepare(work: Path) -> tuple[Path, list[bytes]]:
    data, export = work / "lines", work / "export"
    if not (data / "Test" / "sample.txt").exists():
        shadownet("synth", "--out", data, "--count", 600, "--kind", "lines", "--seed", 1, "--test-ratio", 0.5)
    if not export.exists():
        shadownet("tfrecords", "--dataset-dir", data, "--save-dir", work / "records")
        shadownet("train", "--tfrecords-dir", work / "records", "--model-dir", work / "run", "--train-steps", 1,
                  "--eval-every", 1, "--checkpoint-every", 1)
        shadownet("export", "--model-dir", work / "run", "--export-dir", export)
    lines = (data / "Test" / "sample.txt").read_text(encoding="utf-8").splitlines()
    images = [(data / line.split(" ", 1)[0].lstrip("/")).read_bytes() for line in lines if line.strip()]
    return export, images


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(export: Path, image: str | None, max_batch: int, port: int) -> subprocess.Popen:
    flags = ["serve", "--host", "127.0.0.1", "--port", str(port), "--max-batch", str(max_batch)]
    if image:
        command = ["docker", "run", "--rm", "--init", "--network", "host", "-v", f"{export.resolve()}:/models:ro",
                   image, *flags, "--model", "/models"]
    else:
        command = [sys.executable, "-m", "shadownet", *flags, "--model", str(export)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited {process.returncode}: {process.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            pass
        time.sleep(0.5)
    process.kill()
    raise SystemExit("the server was not ready within 180 s")


def batch_totals(port: int) -> tuple[float, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    total = re.search(r"^shadownet_batch_size_sum (\S+)$", text, re.M)
    count = re.search(r"^shadownet_batch_size_count (\S+)$", text, re.M)
    return float(total.group(1)) if total else 0.0, float(count.group(1)) if count else 0.0


def json_bodies(images: list[bytes], per_request: int) -> list[bytes]:
    """Requests of ``per_request`` images each (``{"instances": [{"b64": ...}]}``)."""
    groups = [images[i : i + per_request] for i in range(0, len(images) - per_request + 1, per_request)]
    return [json.dumps({"instances": [{"b64": base64.b64encode(i).decode()} for i in g]}).encode() for g in groups]


async def load(port: int, images: list[bytes], clients: int, seconds: float, requests: int,
               per_request: int = 1) -> dict:
    url = f"http://127.0.0.1:{port}/invocations"
    bodies = images if per_request == 1 else json_bodies(images, per_request)
    content_type = "image/jpeg" if per_request == 1 else "application/json"
    latencies, stages, errors = [], {s: [] for s in STAGES}, 0
    sent = 0
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        deadline = time.perf_counter() + seconds

        async def client():
            nonlocal sent, errors
            while time.perf_counter() < deadline and sent < requests:
                body = bodies[sent % len(bodies)]
                sent += 1
                start = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers={"Content-Type": content_type}) as response:
                        await response.read()
                        ok, timing = response.status == 200, response.headers.get("Server-Timing", "")
                except aiohttp.ClientError:
                    ok, timing = False, ""
                latencies.append(time.perf_counter() - start)
                if not ok:
                    errors += 1
                    continue
                for part in timing.split(","):
                    name, _, duration = part.strip().partition(";dur=")
                    if name in stages:
                        stages[name].append(float(duration))

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(p):
        return round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000, 2)

    return {"clients": clients, "images_per_request": per_request, "requests": len(latencies), "errors": errors,
            "images_per_s": round((len(latencies) - errors) * per_request / elapsed, 1),
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "stage_ms_mean": {s: round(statistics.fmean(v), 3) for s, v in stages.items() if v}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/shadownet-bench-serve"))
    parser.add_argument("--model", type=Path, help="an export (default: one made in --work)")
    parser.add_argument("--image", help="run the server in this image (e.g. shadownet/train-cpu:0.1.0)")
    parser.add_argument("--clients", default="1,8,16,32")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--batching", default="64,1", help="--max-batch values of the servers compared")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    export, images = prepare(args.work)
    export = args.model or export
    results = {"server": args.image or "checkout", "model": str(export), "images": len(images),
               "cpus": os.cpu_count(), "seconds": args.seconds, "runs": []}
    for max_batch in (int(b) for b in args.batching.split(",")):
        port = free_port()
        server = start_server(export, args.image, max_batch, port)
        try:
            asyncio.run(load(port, images, 4, 2.0, 10**9))  # warm-up
            for clients in (int(c) for c in args.clients.split(",")):
                before = batch_totals(port)
                run = asyncio.run(load(port, images, clients, args.seconds, args.requests))
                after = batch_totals(port)
                batches = after[1] - before[1]
                run.update(max_batch=max_batch, mean_batch=round((after[0] - before[0]) / batches, 2) if batches else 0)
                results["runs"].append(run)
                print(json.dumps(run), file=sys.stderr, flush=True)
            if max_batch >= 64:  # the reference: one client sending 64 images a request
                run = asyncio.run(load(port, images, 1, args.seconds, args.requests, per_request=64))
                results["batch_64_request"] = run
                print(json.dumps(run), file=sys.stderr, flush=True)
        finally:
            server.terminate()
            server.wait(timeout=120)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
