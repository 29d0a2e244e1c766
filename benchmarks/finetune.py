"""Fine-tuning against training from scratch, on a small mixed-case set in fonts the pretraining never saw.

1. Pretrain: ``shadownet synth --kind lines`` (lowercase labels: the synthetic charset has no capitals;
   Pillow's built-in font and, with ``--pretrain-fonts computer-modern`` (the default), matplotlib's five
   Computer Modern faces), ``tfrecords``, ``train --max-train-seconds PRETRAIN`` with default settings.
2. The small set (``--dataset``): ``external_datasets`` ``photo`` (the default: wordfreq words in lower case,
   Capitalised or UPPER CASE, and numbers, in matplotlib's 16 DejaVu/STIX faces, as a phone photo of a label
   shows them) or ``mixed`` (the same texts printed clean in 10 of those faces), with the 62-class charset of
   digits and ASCII letters: TRAIN images to train on (10 % of them held out for validation), TEST held out.
3. ``train --init-from PRETRAINED --max-train-seconds SECONDS`` against ``train --max-train-seconds SECONDS``
   from scratch, both with default settings otherwise, on the same records.
4. Word accuracy of both on the held-out mixed-case images, and of the fine-tuned model on the
   pretraining's own lowercase test split (how much it forgot; case-insensitive, since the synthetic
   images show capitals too, labelled in lower case).

    python benchmarks/finetune.py [--work DIR] [--pretrain-seconds 900] [--seconds 300] [--dataset photo]

A rerun in the same ``--work`` reuses what is there (the synthetic set, the pretrained run, the small set).
Prints one JSON object. Needs ``benchmarks/requirements-accuracy.txt`` (``make bench-finetune`` installs it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import external_datasets  # noqa: E402
from shadownet.data.charset import Charset  # noqa: E402

# --pretrain-fonts computer-modern: the synthetic lines also in these faces (matplotlib ships them; the
# small sets use only its DejaVu and STIX faces).
PRETRAIN_FONTS = ("cmr10.ttf", "cmb10.ttf", "cmti10.ttf", "cmss10.ttf", "cmtt10.ttf")


def shadownet(*args) -> str:
    result = subprocess.run([sys.executable, "-m", "shadownet", *map(str, args)], text=True,
                            stdout=subprocess.PIPE)
    sys.stderr.write(result.stdout)
    if result.returncode != 0:
        raise SystemExit(f"shadownet {' '.join(map(str, args))} exited {result.returncode}")
    return result.stdout


def records(data: Path, out: Path, *flags) -> Path:
    if not (out / "manifest.json").exists():
        shadownet("tfrecords", "--dataset-dir", data, "--save-dir", out, *flags)
    return out


def train(name: str, records_dir: Path, model: Path, seconds: float, *flags) -> dict:
    start = time.monotonic()
    log = shadownet("train", "--tfrecords-dir", records_dir, "--model-dir", model, "--max-train-seconds", seconds,
                    *flags)
    steps = int(log.split("trained to step ")[1].split()[0])
    return {"run": name, "steps": steps, "seconds": round(time.monotonic() - start, 1)}


def accuracy(records_dir: Path, model: Path, report: Path, key: str = "word_accuracy") -> float:
    shadownet("evaluate", "--tfrecords-dir", records_dir, "--model-dir", model, "--split", "test", "--report", report)
    return json.loads(report.read_text())[key]


def lowercase_test_set(synthetic: Path, out: Path) -> Path:
    """The pretraining's Test split under the 62-class charset (labels lowercased, as the pretraining read them)."""
    if not (out / "Test" / "sample.txt").exists():
        for split in ("Train", "Test"):
            (out / split).mkdir(parents=True, exist_ok=True)
        lines = (synthetic / "Test" / "sample.txt").read_text(encoding="utf-8").splitlines(keepends=True)
        (out / "Test" / "sample.txt").write_text("".join(lines), encoding="utf-8")
        train = (synthetic / "Train" / "sample.txt").read_text(encoding="utf-8").splitlines(keepends=True)
        (out / "Train" / "sample.txt").write_text("".join(train[:8]), encoding="utf-8")  # a few: not read
        if not (out / "images").exists():
            os.symlink((synthetic / "images").resolve(), out / "images")
        Charset.from_text(external_datasets.MIXED_CHARSET).save(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("bench-finetune"))
    parser.add_argument("--pretrain-count", type=int, default=40_000)
    parser.add_argument("--pretrain-seconds", type=float, default=900)
    parser.add_argument("--train", type=int, default=1000, help="mixed-case images to fine-tune on")
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=300, help="budget of the fine-tuning and scratch runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain-fonts", choices=("builtin", "computer-modern"), default="computer-modern",
                        help="the pretraining's faces: Pillow's built-in font only, or with 5 Computer Modern faces")
    parser.add_argument("--dataset", choices=("photo", "mixed"), default="photo",
                        help="the small set (external_datasets): photographed labels, or clean prints")
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)

    synthetic = work / "synthetic"
    fonts = [f for name in PRETRAIN_FONTS for f in ("--font", external_datasets.font_path(name))] \
        if args.pretrain_fonts == "computer-modern" else []
    if not (synthetic / "Test" / "sample.txt").exists():
        shadownet("synth", "--kind", "lines", "--count", args.pretrain_count, "--seed", args.seed + 1,
                  "--out", synthetic, *fonts)
    pretrain_records = records(synthetic, work / "synthetic-records", "--validation-ratio", "0.02")
    pretrained = work / "pretrained"
    runs = []
    if not (pretrained / "best.json").exists():
        shutil.rmtree(pretrained, ignore_errors=True)
        runs.append(train("pretrain", pretrain_records, pretrained, args.pretrain_seconds))

    mixed = work / args.dataset
    if not (mixed / "Test" / "sample.txt").exists():
        external_datasets.make(args.dataset, mixed, args.train, args.test, args.seed)
        Charset.from_text(external_datasets.MIXED_CHARSET).save(mixed)
    mixed_records = records(mixed, work / f"{args.dataset}-records")
    old_records = records(lowercase_test_set(synthetic, work / "lowercase"), work / "lowercase-records",
                          "--case", "lower", "--validation-ratio", "0")

    results = {}
    for name, flags in (("finetuned", ("--init-from", pretrained)), ("scratch", ())):
        model = work / name
        shutil.rmtree(model, ignore_errors=True)
        runs.append(train(name, mixed_records, model, args.seconds, *flags))
        results[name] = accuracy(mixed_records, model, work / f"{name}-mixed.json")
    # The synthetic images show capitals too (labelled in lower case): case-insensitive is what was forgotten.
    results["finetuned_on_lowercase"] = accuracy(old_records, work / "finetuned", work / "finetuned-lowercase.json",
                                                 "word_accuracy_case_insensitive")
    if (pretrained / "charset.json").exists():
        results["pretrained_on_lowercase"] = accuracy(
            records(synthetic, pretrain_records), pretrained, work / "pretrained-lowercase.json")
    print(json.dumps({
        "dataset": {"pretrain": f"shadownet synth --kind lines, {args.pretrain_count} images (seed {args.seed + 1}), "
                                f"fonts: {args.pretrain_fonts}",
                    "fine-tune": external_datasets.SOURCES[args.dataset], "train": args.train, "test": args.test},
        "settings": "defaults; --max-train-seconds as below",
        "pretrain_seconds": args.pretrain_seconds, "seconds": args.seconds, "runs": runs,
        "word_accuracy": results,
        "gain_points": round(100 * (results["finetuned"] - results["scratch"]), 1),
    }, indent=2))


if __name__ == "__main__":
    main()
