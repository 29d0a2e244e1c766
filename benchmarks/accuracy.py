"""Accuracy with default settings on datasets shadownet did not make (see ``external_datasets``).

For each dataset: write it in the seed layout, ``shadownet charset build``, ``shadownet tfrecords``,
``shadownet train --max-train-seconds SECONDS`` with every other setting at its default,
``shadownet evaluate --split test``, ``shadownet export``, then the exported SavedModel on the test
split's original image files. Prints one JSON line per dataset:

    dataset, source, train_images, test_images, settings, max_train_seconds, train_seconds, steps,
    images_per_sec, precision, model, word_accuracy, char_error_rate (evaluate, test split),
    export_word_accuracy, export_differs (test images whose text differs between export and evaluate),
    export_accuracy_ignoring_case_and_spaces, init_from, machine ({cpu, cores}: the figures are bound to it;
    ``precision`` says whether it trained in bfloat16), and peers: {peer: figures} (see ``peers``)

    pip install -r benchmarks/requirements-accuracy.txt   # or: make bench-accuracy
    pip install --no-deps -r benchmarks/requirements-peers.txt
    python benchmarks/accuracy.py [--datasets captcha,digits,words] [--seconds 900] [--work DIR]
    python benchmarks/accuracy.py --datasets long_lines,captcha2 [--init-from RUN] [--peers paddle,tesseract]
    python benchmarks/accuracy.py --datasets long_lines --train-args "--max-width 800"   # not the defaults

The default datasets are captcha, digits, words and mixed (docs/performance.md measures the first three);
``long_lines`` and ``captcha2`` are named with ``--datasets``. ``--peers`` (default ``auto``: both peers on
``long_lines`` and ``captcha2``, none on the others; or a list of ``paddle``, ``tesseract``, or ``none``) adds
other recognisers' figures on the same test images. ``--init-from RUN`` fine-tunes from RUN (``shadownet train
--init-from``) instead of training from scratch: RUN must never have seen the benchmark's DejaVu/STIX faces
(see ``external_datasets``).

Not a test: the figures go into docs/performance.md. Each dataset takes about SECONDS + 2 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import external_datasets  # noqa: E402  (beside this script)
import peers as peer_runs  # noqa: E402  (beside this script)

PEERS_BY_DEFAULT = ("long_lines", "captcha2")  # --peers auto: the kinds that get both peers


def machine() -> dict:
    """The CPU the figures were measured on: its model name (``/proc/cpuinfo``) and the cores this process
    may use."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        cpu = names[0].strip() if names else cpu
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0))}


def shadownet(*args, capture: bool = False) -> str:
    """Run the command; its output goes to stderr (stdout holds only the JSON lines), or is returned."""
    result = subprocess.run([sys.executable, "-m", "shadownet", *map(str, args)], text=True,
                            stdout=subprocess.PIPE if capture else sys.stderr)
    if result.returncode:
        raise SystemExit(f"shadownet {' '.join(map(str, args))} exited {result.returncode}")
    return result.stdout or ""


def run(kind: str, work: Path, train: int, test: int, seconds: float, seed: int, init_from: str = "",
        peers: tuple[str, ...] = (), train_args: tuple[str, ...] = ()) -> dict:
    data, records, model, export = (work / kind / name for name in ("data", "records", "model", "export"))
    if not (data / "Test" / "sample.txt").is_file():
        external_datasets.make(kind, data, train, test, seed)
    if not (data / "char_dict.json").is_file():
        shadownet("charset", "build", "--dataset-dir", data)
    if not (records / "manifest.json").is_file():
        shadownet("tfrecords", "--dataset-dir", data, "--save-dir", records)
    if (model / "config.json").exists():
        raise SystemExit(f"{model} holds a run already: remove it (or pass another --work) to train anew")
    began = time.monotonic()
    fine_tune = ("--init-from", init_from) if init_from else ()
    log = shadownet("train", "--tfrecords-dir", records, "--model-dir", model, "--max-train-seconds", seconds,
                    *fine_tune, *train_args, capture=True)
    train_seconds = time.monotonic() - began
    sys.stderr.write(log)
    first = log.splitlines()[0]
    rates = [float(v) for v in re.findall(r"images_per_sec=(\S+)", log)]
    steps = int(re.search(r"^trained to step (\d+)", log, re.M).group(1))
    report_path = work / kind / "evaluation-test.json"
    shadownet("evaluate", "--tfrecords-dir", records, "--model-dir", model, "--split", "test",
              "--report", report_path, "--worst", test)
    report = json.loads(report_path.read_text())
    shadownet("export", "--model-dir", model, "--export-dir", export, "--version", 1)
    export_accuracy, differs, loose_accuracy = parity(export / "shadownet" / "1", data, report)
    config = json.loads((model / "config.json").read_text())
    images, labels = peer_runs.test_split(data)
    return {
        "dataset": kind, "source": external_datasets.SOURCES[kind], "train_images": train, "test_images": test,
        "settings": " ".join(train_args) or "defaults", "max_train_seconds": seconds,
        "train_seconds": round(train_seconds, 1), "steps": steps,
        "images_per_sec": round(sum(rates[1:] or rates) / len(rates[1:] or rates), 1) if rates else None,
        "precision": re.search(r"mixed_precision=(\S+)", first).group(1), "model": config["model"],
        "batch_size": config["batch_size"],
        "word_accuracy": report["word_accuracy"], "char_error_rate": report["char_error_rate"],
        "export_word_accuracy": export_accuracy, "export_differs": differs,
        "export_accuracy_ignoring_case_and_spaces": loose_accuracy, "init_from": init_from, "machine": machine(),
        "peers": {peer: peer_runs.run(peer, images, labels) for peer in peers},
    }


def parity(saved_model: Path, data: Path, report: dict) -> tuple[float, int, float]:
    """The export's word accuracy on the test images' files, how many texts differ from ``evaluate``'s, and
    the export's accuracy ignoring case and spaces (the peers' second figure)."""
    from shadownet.data.annotations import TEST_FILE, AnnotationIndex
    from shadownet.learn.predict import load

    wrong = {example["source"]: example["prediction"] for example in report["worst_examples"]}
    if len(wrong) != report["num_samples"] - report["num_correct"]:
        raise SystemExit("the report does not list every wrong sample: evaluate --worst was too small")
    samples = [sample for _, sample in AnnotationIndex(data, TEST_FILE)]
    predicted = load(saved_model).predict([(data / s.path).read_bytes() for s in samples])
    correct = differs = loose = 0
    for sample, result in zip(samples, predicted, strict=True):
        correct += result["text"] == sample.label
        differs += result["text"] != wrong.get(sample.path, sample.label)
        loose += peer_runs.loose(result["text"]) == peer_runs.loose(sample.label)
    return round(correct / len(samples), 6), differs, round(loose / len(samples), 6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # photo is the fine-tuning benchmark's small set (benchmarks/finetune.py); any kind can be named here
    parser.add_argument("--datasets", default="captcha,digits,words,mixed",
                        help=f"a list of {', '.join(external_datasets.KINDS)}")
    parser.add_argument("--train", type=int, default=8000, help="training images per dataset")
    parser.add_argument("--test", type=int, default=500, help="test images per dataset")
    parser.add_argument("--seconds", type=float, default=900, help="--max-train-seconds of each run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("bench-accuracy"))
    parser.add_argument("--init-from", default="", metavar="RUN",
                        help="fine-tune from this run (shadownet train --init-from) instead of from scratch")
    parser.add_argument("--peers", default="auto",
                        help=f"auto (both on {', '.join(PEERS_BY_DEFAULT)}), none, or a list of "
                             f"{', '.join(peer_runs.PEERS)}")
    parser.add_argument("--train-args", default="", metavar="ARGS",
                        help="more flags of shadownet train, e.g. '--max-width 512' (the report's settings)")
    args = parser.parse_args()
    kinds = args.datasets.split(",")
    for kind in kinds:
        if kind not in external_datasets.KINDS:
            parser.error(f"unknown dataset {kind!r}; known: {', '.join(external_datasets.KINDS)}")
    try:
        chosen = None if args.peers == "auto" else peer_runs.parse_peers(args.peers)
    except ValueError as error:
        parser.error(str(error))
    if args.init_from and "://" not in args.init_from and not (Path(args.init_from) / "config.json").is_file():
        parser.error(f"--init-from {args.init_from}: no config.json there (a --model-dir of shadownet train)")
    for kind in kinds:
        peers = chosen if chosen is not None else peer_runs.PEERS if kind in PEERS_BY_DEFAULT else ()
        print(json.dumps(run(kind, args.work, args.train, args.test, args.seconds, args.seed, args.init_from,
                             peers, tuple(shlex.split(args.train_args)))), flush=True)


if __name__ == "__main__":
    main()
