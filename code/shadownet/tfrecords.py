"""``shadownet tfrecords``: a dataset in the seed layout -> validated, sharded TFRecords + manifest.

Flow: text checks over both annotation files -> seeded split of Train into
train/validation -> image checks and encoding in worker processes, in order ->
records appended to ``.partial`` files -> on success, renamed into place and
``manifest.json`` written last. Nothing under a final name exists until the
whole run succeeded, and the bytes do not depend on the number of workers.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from . import __version__
from .annotations import TEST_FILE, TRAIN_FILE, LineError, read_sample
from .charset import Charset
from .errors import DataError, ShadownetError
from .fileio import PARTIAL_SUFFIX, partial_name, write_text_atomic
from .images import ImageError, ImageGeometry, normalize
from .parallel import default_workers, ordered_map
from .progress import Progress
from .tfrecord_format import MANIFEST_FILE, SCHEMA_VERSION, SPLITS, frame, shard_name, text_line_example
from .validate import ERROR_POLICIES, LabelPolicy, Problem, check_image, scan_annotations, summary, write_report

CHUNK_SIZE = 64


@dataclass(frozen=True)
class TFRecordsConfig:
    dataset_dir: Path
    save_dir: Path | None = None  # None: validate only, write no records
    workers: int = field(default_factory=default_workers)
    shards: int = 1
    validation_ratio: float = 0.1
    seed: int = 0
    on_error: str = "error"
    case: str = "auto"
    geometry: ImageGeometry = ImageGeometry()
    report: Path | None = None
    source: str | None = None  # the dataset as the user named it (an s3:// URL staged locally); default dataset_dir

    def __post_init__(self) -> None:
        if self.on_error not in ERROR_POLICIES:
            raise ShadownetError(f"--on-error must be one of {', '.join(ERROR_POLICIES)}, not {self.on_error!r}")
        if self.shards < 1:
            raise ShadownetError(f"--shards must be at least 1, not {self.shards}")
        if self.workers < 1:
            raise ShadownetError(f"--workers must be at least 1, not {self.workers}")
        if not 0.0 <= self.validation_ratio < 1.0:
            raise ShadownetError(f"--validation-ratio must be in [0, 1), not {self.validation_ratio}")


def shard_of(position: int, count: int, shards: int) -> int:
    """Contiguous blocks: position p of a split of ``count`` goes to shard ``p * shards // count``."""
    return position * shards // count


@dataclass(frozen=True)
class Chunk:
    """Consecutive positions of one split. Workers read the annotation lines themselves,
    so that the parent process (which shares the cores) does little more than write."""

    split: str
    start: int
    file: str
    offsets: np.ndarray
    lines: np.ndarray


def run(config: TFRecordsConfig) -> dict:
    """Validate the dataset and, with a save_dir, write the records.

    Returns the manifest, or (validation only) ``{"counts": ..., "skipped": ...}``.

    Raises DataError when problems were found and ``on_error == "error"``.
    """
    dataset_dir = Path(config.dataset_dir)
    if not dataset_dir.is_dir():
        raise DataError(f"{dataset_dir}: dataset directory not found")
    charset = Charset.load(dataset_dir)
    policy = LabelPolicy.resolve(charset, config.case, config.geometry)
    scan = scan_annotations(dataset_dir, policy)
    problems = list(scan.problems)
    plan = _plan_splits(scan.usable, config.validation_ratio, config.seed)
    counts_in = {name: {"lines": len(idx)} for name, idx in scan.indexes.items()}

    def fail_if_problems():
        if problems and config.on_error == "error":
            _write_report(config, counts_in, problems)
            raise DataError(summary(problems, dataset_dir))

    # When writing, text problems stop the run before any image is opened; `validate` goes on
    # to the images so that its report lists everything.
    if config.save_dir is not None:
        fail_if_problems()
    writer = _ShardWriter(config.save_dir, config.shards, {s: len(rows) for s, (_, rows) in plan.items()})
    total = sum(len(rows) for _, rows in plan.values())
    progress = Progress(total, "tfrecords" if config.save_dir else "validate")
    worker = functools.partial(_process_chunk, dataset_dir, policy, config.save_dir is not None)
    try:
        batches = contextlib.closing(ordered_map(worker, _chunks(scan, plan), config.workers))
        with batches as stream:
            for split, start, results in stream:
                for position, result in enumerate(results, start):
                    if isinstance(result, Problem):
                        problems.append(result)
                    else:
                        writer.write(split, position, result)
                progress.update(len(results))
        progress.close()
        problems.sort(key=lambda p: (p.file != TRAIN_FILE, p.line))
        fail_if_problems()
        counts = {split: writer.counts[split] for split in SPLITS}
        result = {"counts": counts, "skipped": len(problems)}
        if config.save_dir is not None:
            result = _manifest(config, charset, policy, writer, scan, counts, len(problems))
            writer.commit(result)
    finally:
        writer.discard()
    _write_report(config, counts_in | {"splits": counts}, problems)
    return result


def _plan_splits(usable: dict[str, np.ndarray], ratio: float, seed: int) -> dict[str, tuple[str, np.ndarray]]:
    """Rows of each annotation file per split: validation is a seeded sample of Train, train is shuffled."""
    train_rows = np.nonzero(usable[TRAIN_FILE])[0]
    order = np.random.default_rng(seed).permutation(len(train_rows))
    n_validation = int(round(ratio * len(train_rows)))
    return {
        # Shuffled once here so that training reads well-mixed records even with a small shuffle buffer.
        "train": (TRAIN_FILE, train_rows[order[n_validation:]]),
        "validation": (TRAIN_FILE, np.sort(train_rows[order[:n_validation]])),
        "test": (TEST_FILE, np.nonzero(usable[TEST_FILE])[0]),
    }


def _chunks(scan, plan) -> Iterator[Chunk]:
    for split in SPLITS:
        file_name, rows = plan[split]
        index = scan.indexes[file_name]
        for start in range(0, len(rows), CHUNK_SIZE):
            selected = rows[start : start + CHUNK_SIZE]
            yield Chunk(split, start, file_name, index.offsets[selected], index.line_numbers[selected])


def _process_chunk(dataset_dir: Path, policy: LabelPolicy, build: bool, chunk: Chunk):
    """Worker side: ``(split, start, [framed record bytes or Problem per position])``."""
    out = []
    with open(dataset_dir / chunk.file, "rb") as annotations:
        for offset, line in zip(chunk.offsets.tolist(), chunk.lines.tolist()):
            sample = read_sample(annotations, chunk.file, offset, line)
            try:
                ids, text = policy.encode(sample)  # passed the text checks already
                data, image = check_image(dataset_dir, sample, ids, text, policy)
                if not build:
                    out.append(b"")
                    continue
                encoded, width, height = normalize(data, image, policy.geometry)
            except (ImageError, LineError) as exc:
                out.append(Problem(sample.file, sample.line, exc.code, str(exc), sample.path))
                continue
            example = text_line_example(
                encoded, policy.geometry.image_format, width, height, sample.path, ids, text
            )
            out.append(frame(example))
    return chunk.split, chunk.start, out


class _ShardWriter:
    """Appends framed records to ``.partial`` shard files; ``commit`` renames them into place."""

    def __init__(self, save_dir: Path | None, shards: int, sizes: dict[str, int]):
        self.save_dir = Path(save_dir) if save_dir is not None else None
        self.shards, self.sizes = shards, sizes
        self.counts = {split: 0 for split in SPLITS}
        self.files: dict[str, dict] = {}  # final name -> {"split", "records", "bytes", "sha"}
        self._open: tuple[str, object] | None = None
        if self.save_dir is not None:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            for stale in self.save_dir.glob(f".*_feature*.tfrecords{PARTIAL_SUFFIX}"):
                stale.unlink()  # left by an interrupted run
            for split in SPLITS:
                for shard in range(shards):
                    self.files[shard_name(split, shard, shards)] = {
                        "split": split, "records": 0, "bytes": 0, "sha": hashlib.sha256()
                    }

    def write(self, split: str, position: int, record: bytes) -> None:
        self.counts[split] += 1
        if self.save_dir is None:
            return
        name = shard_name(split, shard_of(position, self.sizes[split], self.shards), self.shards)
        if self._open is None or self._open[0] != name:
            self._close()
            self._open = (name, open(partial_name(self.save_dir / name), "wb"))
        self._open[1].write(record)
        stats = self.files[name]
        stats["records"] += 1
        stats["bytes"] += len(record)
        stats["sha"].update(record)

    def _close(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None

    def commit(self, manifest: dict) -> None:
        self._close()
        manifest_path = self.save_dir / MANIFEST_FILE
        # Readers trust the manifest: drop the old one first so it never describes a mix of files.
        manifest_path.unlink(missing_ok=True)
        for name in self.files:
            partial = partial_name(self.save_dir / name)
            if not partial.exists():  # a shard that received no record
                partial.touch()
            partial.replace(self.save_dir / name)
        for stale in self.save_dir.glob("*_feature*.tfrecords"):
            if stale.name not in self.files:
                stale.unlink()  # from an earlier run with another shard count
        write_text_atomic(manifest_path, json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")

    def discard(self) -> None:
        """Remove whatever partial files remain (after a failure, nothing is kept)."""
        self._close()
        if self.save_dir is not None:
            for name in self.files:
                partial_name(self.save_dir / name).unlink(missing_ok=True)


def _manifest(config, charset: Charset, policy: LabelPolicy, writer: _ShardWriter, scan, counts, skipped) -> dict:
    splits = {split: {"count": counts[split], "files": []} for split in SPLITS}
    for name, stats in writer.files.items():
        splits[stats["split"]]["files"].append(
            {"name": name, "records": stats["records"], "bytes": stats["bytes"], "sha256": stats["sha"].hexdigest()}
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "shadownet", "version": __version__},
        "source": {
            "dataset_dir": config.source or str(config.dataset_dir),
            "annotations": {name: _sha256_file(index.path) for name, index in scan.indexes.items()},
        },
        "charset": {
            "characters": "".join(charset.characters),
            "size": charset.size,
            "blank_index": charset.blank_index,
            "num_classes": charset.num_classes,
            "sha256": charset.sha256,
        },
        "case": {"policy": config.case, "lowercase": policy.lowercase},
        "image": policy.geometry.to_dict(),
        "split": {"validation_ratio": config.validation_ratio, "seed": config.seed, "shards": config.shards},
        "counts": counts,
        "skipped": skipped,
        "on_error": config.on_error,
        "splits": splits,
    }


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_report(config: TFRecordsConfig, counts: dict, problems: list[Problem]) -> None:
    if config.report is not None:
        write_report(config.report, config.source or config.dataset_dir, config.on_error, counts, problems)
