"""Benchmark: the exports of one trained run side by side — SavedModel float32 / bfloat16, ONNX float32 / int8.

In one run it
1. exports ``--model-dir`` twice: SavedModel float32 + ``model.onnx`` + ``model.int8.onnx`` (version 1), and
   a bfloat16 SavedModel (version 2);
2. for each of the four, in a fresh process: batch-1 latency (median and p90 of 200 calls) and batch-64
   throughput, end to end (JPEG bytes in, text out: the same decoding, resizing and CTC decoding for all),
   and the network alone (preprocessed images in, per-step scores out: ``predict_images`` / the ONNX session);
3. reads the held-out split (``--split`` of ``--tfrecords-dir``, up to ``--max-samples`` images) with each and
   reports word accuracy and the share of texts equal to the float32 SavedModel's.

Prints one JSON line. Needs shadownet[onnx].

    python benchmarks/export.py --model-dir RUN --tfrecords-dir RECORDS [--split test]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {  # name -> (version folder, file to load)
    "savedmodel_float32": ("1", ""),
    "savedmodel_bfloat16": ("2", ""),
    "onnx_float32": ("1", "model.onnx"),
    "onnx_int8": ("1", "model.int8.onnx"),
}


def held_out(records_dir: Path, split: str, limit: int) -> tuple[list[bytes], list[str]]:
    import tensorflow as tf

    from shadownet.data.record_format import IMAGE_ENCODED, LABEL_TEXT
    from shadownet.learn import read_records

    features = {k: read_records.FEATURES[k] for k in (IMAGE_ENCODED, LABEL_TEXT)}
    images, labels = [], []
    for raw in read_records.raw_split(records_dir, split).take(limit):
        parsed = tf.io.parse_single_example(raw, features)
        images.append(parsed[IMAGE_ENCODED].numpy())
        labels.append(parsed[LABEL_TEXT].numpy().decode())
    return images, labels


def timed(fn, calls: int) -> list[float]:
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


def child(variant: str, export_base: Path, records_dir: Path, split: str, limit: int) -> dict:
    """Runs in a fresh process: one export, timed and read over the held-out split."""
    import numpy as np
    import tensorflow as tf

    from shadownet.learn import predict

    version, file = VARIANTS[variant]
    predictor = predict.load(export_base / version / file if file else export_base / version)
    images, labels = held_out(records_dir, split, limit)
    one, batch = images[:1], images[:64]
    if file:  # the network alone: onnxruntime on preprocessed images
        pixels, widths = (t.numpy() for t in predictor._preprocess(tf.constant(one)))
        pixels64, widths64 = (t.numpy() for t in predictor._preprocess(tf.constant(batch)))
        network_one = lambda: predictor.scores(pixels, widths)  # noqa: E731
        network_batch = lambda: predictor.scores(pixels64, widths64)  # noqa: E731
    else:  # the predict_images signature on the same preprocessed images
        from shadownet.learn.export import preprocess

        mode, max_width = predictor.metadata["input"]["mode"], predictor.metadata["config"]["max_width"]
        signature = predictor._loaded.signatures["predict_images"]
        inputs = preprocess(tf.constant(one), mode, max_width)
        inputs64 = preprocess(tf.constant(batch), mode, max_width)
        network_one = lambda: signature(images=inputs[0], widths=inputs[1])["text"].numpy()  # noqa: E731
        network_batch = lambda: signature(images=inputs64[0], widths=inputs64[1])["text"].numpy()  # noqa: E731
    for _ in range(5):  # trace and warm up
        predictor.predict(one), predictor.predict(batch), network_one(), network_batch()
    latency = timed(lambda: predictor.predict(one), 200)
    throughput = max(len(batch) / s for s in timed(lambda: predictor.predict(batch, batch_size=64), 5))
    network_latency = timed(network_one, 200)
    network_throughput = max(len(batch) / s for s in timed(network_batch, 5))
    texts = [r["text"] for r in predictor.predict(images)]
    return {
        "batch1_latency_ms_median": round(1000 * statistics.median(latency), 2),
        "batch1_latency_ms_p90": round(1000 * float(np.percentile(latency, 90)), 2),
        "batch64_images_per_s": round(throughput, 1),
        "network_batch1_ms_median": round(1000 * statistics.median(network_latency), 2),
        "network_batch64_images_per_s": round(network_throughput, 1),
        "word_accuracy": round(float(np.mean([t == label for t, label in zip(texts, labels, strict=True)])), 4),
        "texts": texts,
    }


def run_child(variant: str, export_base: Path, args) -> dict:
    command = [sys.executable, __file__, "--child", variant, "--export-base", str(export_base),
               "--tfrecords-dir", str(args.tfrecords_dir), "--split", args.split,
               "--max-samples", str(args.max_samples), "--model-dir", str(args.model_dir)]
    done = subprocess.run(command, check=True, capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="a trained run")
    parser.add_argument("--tfrecords-dir", type=Path, required=True, help="records with the held-out split")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-samples", type=int, default=2000)
    parser.add_argument("--work-dir", type=Path, help="where the exports go (default: a temporary folder)")
    parser.add_argument("--child", choices=tuple(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--export-base", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.export_base, args.tfrecords_dir, args.split, args.max_samples)))
        return

    from shadownet.learn.export import export

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="shadownet-bench-export-"))
    base = work / "exports"
    started = time.perf_counter()
    export(args.model_dir, base, name="shadownet", version=1, formats=("savedmodel", "onnx"), quantize="int8")
    export_seconds = round(time.perf_counter() - started, 1)
    export(args.model_dir, base, name="shadownet", version=2, precision="bfloat16")
    results = {variant: run_child(variant, base / "shadownet", args) for variant in VARIANTS}
    reference = results["savedmodel_float32"]["texts"]
    for result in results.values():
        texts = result.pop("texts")
        result["texts_equal_to_savedmodel_float32"] = round(
            sum(a == b for a, b in zip(texts, reference, strict=True)) / len(reference), 4)
    sizes = {name: (base / "shadownet" / "1" / name).stat().st_size for name in ("model.onnx", "model.int8.onnx")}
    report = {
        "benchmark": "export",
        "model_dir": str(args.model_dir),
        "model": json.loads((args.model_dir / "config.json").read_text())["model"],
        "held_out": {"tfrecords_dir": str(args.tfrecords_dir), "split": args.split, "images": len(reference)},
        "cores": len(os.sched_getaffinity(0)),
        "onnx_export_seconds": export_seconds,
        "onnx_bytes": sizes["model.onnx"],
        "onnx_int8_bytes": sizes["model.int8.onnx"],
        **results,
        "int8_word_accuracy_change": round(results["onnx_int8"]["word_accuracy"]
                                           - results["onnx_float32"]["word_accuracy"], 4),
    }
    report["goals_met"] = {"onnx_texts_equal>=0.99": results["onnx_float32"]["texts_equal_to_savedmodel_float32"]
                           >= 0.99}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
