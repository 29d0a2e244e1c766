"""Benchmark: training speed (fp32 vs mixed precision), input pipeline speed, exported-model serving speed.

In one run, on synthetic ``lines`` records (100x32, ``input_mode=fixed``, full ShadowNet):

1. training images/s with float32 and with mixed precision (bfloat16), same batches;
2. the training input pipeline alone (decode, augment, batch), images/s and per core;
3. the exported SavedModel (serving signature: encoded JPEG bytes in, text out): batch-1 latency
   (median of many calls) and batch-64 throughput, for float32 and bfloat16 exports.

Each measurement runs in a fresh process. Prints one JSON line.

    python benchmarks/train.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORES = len(os.sched_getaffinity(0))


def shadownet(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "shadownet", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def child(kind: str, work: Path, option: str) -> dict:
    """Runs in a fresh process."""
    import numpy as np
    import tensorflow as tf

    records_dir = work / "records"
    if kind == "train":
        from shadownet.config import TrainConfig
        from shadownet.learn import pipeline, read_records
        from shadownet.learn.tasks import RecognitionTask
        from shadownet.learn.trainer import Trainer

        config = TrainConfig(model="shadownet", input_mode="fixed", batch_size=64, mixed_precision=option,
                             augment=False)
        charset = read_records.charset_of(read_records.read_manifest(records_dir))
        trainer = Trainer(config, RecognitionTask(charset), work / f"m-{option}")
        batches = [b for b in pipeline.train_dataset(records_dir, config).take(4)]
        for inputs, targets in batches[:2]:  # trace and warm up
            trainer.train_step(inputs, targets)
        rates = []
        for _ in range(3):  # best of three windows: other tenants only ever slow a window down
            start = time.perf_counter()
            for inputs, targets in batches:
                float(trainer.train_step(inputs, targets))
            rates.append(len(batches) * config.batch_size / (time.perf_counter() - start))
        return {"images_per_s": round(max(rates), 1), "batch_size": config.batch_size}
    if kind == "pipeline":
        from shadownet.config import TrainConfig
        from shadownet.learn import pipeline

        config = TrainConfig(batch_size=64)  # keep_ratio, augmentation on: the default training input
        dataset = pipeline.train_dataset(records_dir, config)
        iterator = iter(dataset)
        for _ in range(20):
            next(iterator)
        best = 0.0
        for _ in range(3):
            count, start = 0, time.perf_counter()
            for _ in range(150):
                count += int(next(iterator)[0]["width"].shape[0])
            best = max(best, count / (time.perf_counter() - start))
        return {"images_per_s": round(best, 1), "images_per_s_per_core": round(best / CORES, 1)}
    if kind == "serve":
        serving = tf.saved_model.load(str(work / f"export-{option}" / "shadownet" / "1")).signatures["serving_default"]
        import cv2

        images = sorted((work / "dataset" / "images").rglob("*.jpg"))[:64]
        data = [cv2.imencode(".jpg", cv2.resize(cv2.imread(str(p)), (100, 32)))[1].tobytes() for p in images]
        one = tf.constant(data[:1])
        batch = tf.constant(data)
        for _ in range(5):
            serving(image_bytes=one)
            serving(image_bytes=batch)
        latencies = []
        for _ in range(200):
            start = time.perf_counter()
            serving(image_bytes=one)["text"].numpy()
            latencies.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(5):
            serving(image_bytes=batch)["text"].numpy()
        throughput = 5 * len(data) / (time.perf_counter() - start)
        return {"batch1_latency_ms_median": round(1000 * statistics.median(latencies), 2),
                "batch1_latency_ms_p90": round(1000 * float(np.percentile(latencies, 90)), 2),
                "batch64_images_per_s": round(throughput, 1)}
    raise ValueError(kind)


def measure(kind: str, work: Path, option: str = "") -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--work", str(work), "--option", option],
                         check=True, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    return json.loads(out.stdout.strip().splitlines()[-1])


def prepare(work: Path, count: int) -> None:
    shadownet("synth", "--out", str(work / "dataset"), "--count", str(count), "--seed", "0")
    shadownet("tfrecords", "--dataset-dir", str(work / "dataset"), "--save-dir", str(work / "records"))
    model_dir = work / "serve"
    shadownet("train", "--tfrecords-dir", str(work / "records"), "--model-dir", str(model_dir),
              "--model", "shadownet", "--train-steps", "1", "--batch-size", "8", "--eval-every", "1000")
    for precision in ("off", "bfloat16"):
        shadownet("export", "--model-dir", str(model_dir), "--export-dir", str(work / f"export-{precision}"),
                  "--checkpoint", "latest", "--precision", "float32" if precision == "off" else precision)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="synthetic images to build records from")
    parser.add_argument("--parts", default="train,pipeline,serve",
                        help="comma-separated subset of train, pipeline, serve (goals are judged on what ran)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--option", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.work, args.option)))
        return
    work = Path(tempfile.mkdtemp(prefix="shadownet-train-bench-"))
    try:
        prepare(work, args.count)
        parts = set(args.parts.split(","))
        report: dict = {"benchmark": "train", "cores": CORES, "model": "shadownet"}
        goals = {}
        if "train" in parts:
            report["train_fp32"] = measure("train", work, "off")
            report["train_mixed_bfloat16"] = measure("train", work, "bfloat16")
            report["mixed_precision_speedup"] = round(
                report["train_mixed_bfloat16"]["images_per_s"] / report["train_fp32"]["images_per_s"], 2)
            goals["mixed_precision_speedup>=1.7"] = report["mixed_precision_speedup"] >= 1.7
        if "pipeline" in parts:
            report["input_pipeline"] = measure("pipeline", work)
            goals["input_pipeline_per_core>=2000"] = report["input_pipeline"]["images_per_s_per_core"] >= 2000
        if "serve" in parts:
            report["serving_fp32"] = measure("serve", work, "off")
            report["serving_bfloat16"] = serving = measure("serve", work, "bfloat16")
            goals["batch1_latency_ms<=10"] = serving["batch1_latency_ms_median"] <= 10
            goals["batch64_images_per_s>=300"] = serving["batch64_images_per_s"] >= 300
        report["goals_met"] = goals
        print(json.dumps(report))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
