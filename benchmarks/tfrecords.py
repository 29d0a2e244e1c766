"""Benchmark: ``shadownet tfrecords`` against the original writer, on the same synthetic images.

In one run it
1. generates ``--count`` (and ``--rss-count``) synthetic ``lines`` images with ``shadownet synth``;
2. times the original way of writing records, as CRNN_Tensorflow's ``write_text_features.py`` did it:
   OpenCV read, resize to 100x32, raw pixel bytes, every image held in memory, one file per split,
   ``tf.train.Example`` + ``tf.io.TFRecordWriter`` in a single process;
3. times ``shadownet tfrecords`` with 1 worker and with every core;
4. times ``shadownet tfrecords`` (every core) on the same images in the two other layouts it reads: an
   LMDB tree (written by ``shadownet convert --to lmdb``) and an MJSynth tree (the images hard-linked
   under ``<n>_<word>_<n>.jpg`` names, with annotation files and a lexicon);
5. measures the peak RSS of the whole process tree (parent + workers) for ``--count`` and
   ``--rss-count`` images, to show that memory does not grow with the dataset.

Each measurement runs in a fresh process (so imports and caches do not leak between them) and
times only the writing, not the interpreter start or imports. Prints one JSON line.

    python benchmarks/tfrecords.py --count 10000 --rss-count 100000
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from shadownet.parallel import default_workers


# -- the original writer, reproduced ------------------------------------------------------------
def original_writer(dataset_dir: Path, save_dir: Path, validation_ratio: float = 0.1, seed: int = 0) -> int:
    import cv2
    import numpy as np
    import tensorflow as tf

    char_dict = json.loads((dataset_dir / "char_dict.json").read_text())
    ord_map = json.loads((dataset_dir / "ord_map.json").read_text())
    index_of = {v: int(k) for k, v in ord_map.items()}
    del char_dict  # the original loaded it too, for decoding

    def load(split):
        # As the original data provider: read every image into one in-memory array.
        info = [line.split(" ", 1) for line in (dataset_dir / split / "sample.txt").read_text().splitlines()]
        images = np.array([cv2.resize(cv2.imread(str(dataset_dir / p.lstrip("/")), cv2.IMREAD_COLOR), (100, 32))
                           for p, _ in info])
        labels = [[index_of[str(ord(c))] for c in label.lower()] for _, label in info]
        names = [p for p, _ in info]
        return images, labels, names

    def write(path, images, labels, names):
        with tf.io.TFRecordWriter(str(path)) as writer:
            for image, label, name in zip(images, labels, names, strict=True):
                features = tf.train.Features(feature={
                    "labels": tf.train.Feature(int64_list=tf.train.Int64List(value=label)),
                    "images": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
                    "imagenames": tf.train.Feature(bytes_list=tf.train.BytesList(value=[name.encode()])),
                })
                writer.write(tf.train.Example(features=features).SerializeToString())

    save_dir.mkdir(parents=True, exist_ok=True)
    images, labels, names = load("Train")
    order = np.random.default_rng(seed).permutation(len(images))
    n_val = int(round(validation_ratio * len(images)))
    val, train = order[:n_val], order[n_val:]
    write(save_dir / "train_feature.tfrecords", images[train], [labels[i] for i in train], [names[i] for i in train])
    write(save_dir / "validation_feature.tfrecords", images[val], [labels[i] for i in val], [names[i] for i in val])
    test_images, test_labels, test_names = load("Test")
    write(save_dir / "test_feature.tfrecords", test_images, test_labels, test_names)
    return len(images) + len(test_images)


def ours(dataset_dir: Path, save_dir: Path, workers: int) -> int:
    from shadownet.data.write_records import TFRecordsConfig, run

    counts = run(TFRecordsConfig(dataset_dir, save_dir, workers=workers))["counts"]
    return sum(counts.values())


def measure(kind: str, dataset_dir: Path, save_dir: Path, workers: int) -> dict:
    """Runs in the child process: the writing alone, timed."""
    if kind == "original":
        import cv2  # noqa: F401  imports are not part of the writer's time
        import tensorflow  # noqa: F401
    else:
        import shadownet.data.write_records  # noqa: F401
    start = time.perf_counter()
    images = original_writer(dataset_dir, save_dir) if kind == "original" else ours(dataset_dir, save_dir, workers)
    seconds = time.perf_counter() - start
    total_bytes = sum(p.stat().st_size for p in save_dir.glob("*.tfrecords"))
    return {"images": images, "seconds": round(seconds, 3), "images_per_s": round(images / seconds, 1),
            "bytes_per_record": round(total_bytes / images, 1)}


# -- measuring a process tree --------------------------------------------------------------------
def _tree_rss_bytes(root: int) -> int:
    """Sum of VmRSS over ``root`` and all its descendants (Linux /proc)."""
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            with open(f"/proc/{pid}/task/{pid}/children") as children:
                stack.extend(int(c) for c in children.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def run_measured(kind: str, dataset_dir: Path, save_dir: Path, workers: int) -> dict:
    shutil.rmtree(save_dir, ignore_errors=True)
    command = [sys.executable, __file__, "--measure", kind, "--dataset-dir", str(dataset_dir),
               "--save-dir", str(save_dir), "--workers", str(workers)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = 0

    def sample():
        nonlocal peak
        while process.poll() is None:
            peak = max(peak, _tree_rss_bytes(process.pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out, _ = process.communicate()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{kind} writer failed (exit {process.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = round(peak / 2**20, 1)
    return result


def run_repeated(kind: str, dataset_dir: Path, save_dir: Path, workers: int, repeat: int) -> dict:
    """Best and median of ``repeat`` runs.

    Other tenants of a shared VM only ever slow a run down, so the best run is the truest
    figure (as timeit reports its minimum); the median is kept to show the spread.
    Peak RSS is the highest seen.
    """
    runs = sorted((run_measured(kind, dataset_dir, save_dir, workers) for _ in range(repeat)),
                  key=lambda r: r["images_per_s"])
    best = dict(runs[-1])
    best["images_per_s_median"] = runs[len(runs) // 2]["images_per_s"]
    best["images_per_s_all_runs"] = [r["images_per_s"] for r in runs]
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return best


def synthesize(out: Path, count: int, seed: int) -> Path:
    marker = out / "Train" / "sample.txt"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "shadownet", "synth", "--out", str(out), "--count", str(count),
                        "--seed", str(seed)], check=True, stderr=subprocess.DEVNULL)
    return out


def as_lmdb(seed_dir: Path, out: Path) -> Path:
    if not (out / "Train" / "data.mdb").exists():
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "shadownet", "convert", "--dataset-dir", str(seed_dir), "--to", "lmdb",
                        "--out", str(out)], check=True, stderr=subprocess.DEVNULL)
    return out


def as_mjsynth(seed_dir: Path, out: Path) -> Path:
    """The seed dataset's images as an MJSynth tree: ``<dir>/<n>_<word>_<n>.jpg`` (spaces dropped from the
    word, as MJSynth words have none), annotation_train.txt / annotation_test.txt and lexicon.txt."""
    if (out / "lexicon.txt").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    lexicon = []
    for split, name in (("Train", "annotation_train.txt"), ("Test", "annotation_test.txt")):
        lines = []
        for line in (seed_dir / split / "sample.txt").read_text(encoding="utf-8").splitlines():
            path, label = line.split(" ", 1)
            n = len(lexicon)
            lexicon.append(label.replace(" ", ""))
            relative = f"{n // 1000}/{n % 7}/{n}_{lexicon[-1]}_{n}.jpg"
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            (out / relative).hardlink_to(seed_dir / path.lstrip("/"))
            lines.append(f"./{relative} {n}\n")
        (out / name).write_text("".join(lines), encoding="utf-8")
    (out / "lexicon.txt").write_text("".join(f"{word}\n" for word in lexicon), encoding="utf-8")
    for charset_file in ("char_dict.json", "ord_map.json"):
        shutil.copy(seed_dir / charset_file, out / charset_file)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rss-count", type=int, default=100_000, help="0 to skip the memory-scaling run")
    parser.add_argument("--work-dir", type=Path, help="keeps the synthetic datasets between runs")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--repeat", type=int, default=5, help="runs per configuration (best and median reported)")
    parser.add_argument("--measure", choices=("original", "ours"), help=argparse.SUPPRESS)
    parser.add_argument("--dataset-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--save-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.dataset_dir, args.save_dir, args.workers)))
        return

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="shadownet-bench-"))
    data = synthesize(work / f"lines-{args.count}", args.count, seed=0)
    original = run_repeated("original", data, work / "out-original", 1, args.repeat)
    one = run_repeated("ours", data, work / "out-1", 1, args.repeat)
    every = run_repeated("ours", data, work / "out-all", args.workers, args.repeat)
    lmdb = run_repeated("ours", as_lmdb(data, work / f"lmdb-{args.count}"), work / "out-lmdb", args.workers,
                        args.repeat)
    mjsynth = run_repeated("ours", as_mjsynth(data, work / f"mjsynth-{args.count}"), work / "out-mjsynth",
                           args.workers, args.repeat)
    report = {
        "benchmark": "tfrecords",
        "images": args.count,
        "cores": default_workers(),
        "workers": args.workers,
        "repeat": args.repeat,
        "original": original,
        "shadownet_1_worker": one,
        "shadownet_all_cores": every,
        # The same images read from the other layouts, every core: images/s against the seed layout.
        "layouts": {
            "lmdb": lmdb,
            "mjsynth": mjsynth,
            "lmdb_vs_seed": round(lmdb["images_per_s"] / every["images_per_s"], 2),
            "mjsynth_vs_seed": round(mjsynth["images_per_s"] / every["images_per_s"], 2),
        },
        "speedup_1_worker": round(one["images_per_s"] / original["images_per_s"], 2),
        "speedup_all_cores": round(every["images_per_s"] / original["images_per_s"], 2),
        "speedup_all_cores_median": round(every["images_per_s_median"] / original["images_per_s_median"], 2),
        "size_ratio": round(every["bytes_per_record"] / original["bytes_per_record"], 3),
    }
    if args.rss_count:
        big = synthesize(work / f"lines-{args.rss_count}", args.rss_count, seed=0)
        large = run_measured("ours", big, work / "out-big", args.workers)
        report["memory"] = {
            f"peak_rss_mb_{args.count}": every["peak_rss_mb"],
            f"peak_rss_mb_{args.rss_count}": large["peak_rss_mb"],
            "ratio": round(large["peak_rss_mb"] / every["peak_rss_mb"], 3),
            f"images_per_s_{args.rss_count}": large["images_per_s"],
        }
        # LMDB is read through a memory map: workers open it per chunk and close it after, so the pages
        # they touched do not pile up in their resident set.
        large_lmdb = run_measured("ours", as_lmdb(big, work / f"lmdb-{args.rss_count}"), work / "out-big",
                                  args.workers)
        report["memory"].update({
            f"lmdb_peak_rss_mb_{args.count}": lmdb["peak_rss_mb"],
            f"lmdb_peak_rss_mb_{args.rss_count}": large_lmdb["peak_rss_mb"],
            "lmdb_ratio": round(large_lmdb["peak_rss_mb"] / lmdb["peak_rss_mb"], 3),
        })
    report["goals_met"] = {
        "speedup_all_cores>=1.8": report["speedup_all_cores"] >= 1.8,
        "size_ratio<=0.5": report["size_ratio"] <= 0.5,
    }
    if "memory" in report:
        report["goals_met"]["rss_ratio<=1.2"] = report["memory"]["ratio"] <= 1.2
        report["goals_met"]["lmdb_rss_ratio<=1.2"] = report["memory"]["lmdb_ratio"] <= 1.2
    for name in ("out-original", "out-1", "out-all", "out-lmdb", "out-mjsynth", "out-big"):
        shutil.rmtree(work / name, ignore_errors=True)
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
