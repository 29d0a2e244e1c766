"""``shadownet tfrecords``: a dataset (any layout of ``layouts``) -> validated, sharded TFRecords + manifest.

Flow: the layout found (``layouts.detect``) -> text checks over each of its parts -> seeded split of
train into train/validation (unless the dataset has a validation split) -> image checks and encoding
in worker processes, in order ->
records appended to ``.partial`` files -> on success, renamed into place and
``manifest.json`` written last. Nothing under a final name exists until the
whole run succeeded, and the bytes do not depend on the number of workers.

Across machines: with ``shard_index`` I of ``shards`` N, a run writes only shard I of every split (the
same contiguous block of positions a single run would give it) and a manifest part,
``.manifest-part-0000I-of-0000N.json``. ``merge_parts`` turns the N parts into the manifest a single run
with ``shards=N`` writes; whichever run finds all N parts writes it (``finish_shards``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..choices import ERROR_POLICIES, SPLITS
from ..errors import DataError, SettingError, ShadownetError
from ..fileio import PARTIAL_SUFFIX, partial_name, write_text_atomic
from ..parallel import default_workers, ordered_map
from ..progress import Progress
from .annotations import LineError
from .charset import of_dataset as charset_of_dataset
from .images import ImageError, ImageGeometry
from .layouts import Layout, LayoutOptions, detect
from .pages.page_records import PagePolicy
from .record_format import MANIFEST_FILE, SCHEMA_VERSION, shard_name
from .splits import Chunk, chunk_samples, chunks, plan_splits
from .validate import LabelPolicy, Problem, problem_of, scan_annotations, summary, write_report


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
    shard_index: int | None = None  # write only this shard of every split (one machine of several)
    layout: str | None = None  # one of layouts.LAYOUTS; None: found from what the folder holds
    csv_delimiter: str = ";"  # the csv layout's column separator
    points_outside: str = "clip"  # pages: a region's point outside its image is clamped ("clip") or a problem

    def __post_init__(self) -> None:
        if self.on_error not in ERROR_POLICIES:
            raise SettingError("on_error", f"must be one of {', '.join(ERROR_POLICIES)}, not {self.on_error!r}")
        if self.shards < 1:
            raise SettingError("shards", f"must be at least 1, not {self.shards}")
        if self.shard_index is not None and not 0 <= self.shard_index < self.shards:
            raise SettingError("shard_index", f"must be in [0, {self.shards}), not {self.shard_index}")
        if self.workers < 1:
            raise SettingError("workers", f"must be at least 1, not {self.workers}")
        if not 0.0 <= self.validation_ratio < 1.0:
            raise SettingError("validation_ratio", f"must be in [0, 1), not {self.validation_ratio}")
        LayoutOptions(self.csv_delimiter)  # SettingError when it is not one character
        PagePolicy(self.points_outside)  # SettingError when it is neither policy


def shard_of(position: int, count: int, shards: int) -> int:
    """Contiguous blocks: position p of a split of ``count`` goes to shard ``p * shards // count``."""
    return position * shards // count


def shard_bounds(shard: int, count: int, shards: int) -> tuple[int, int]:
    """The positions [start, stop) of a split of ``count`` that ``shard_of`` gives to ``shard``."""
    return -(-shard * count // shards), -(-(shard + 1) * count // shards)


def run(config: TFRecordsConfig) -> dict:
    """Validate the dataset and, with a save_dir, write the records.

    Returns the manifest, or (validation only) ``{"counts": ..., "skipped": ..., "layout": ..., "task": ...}``.

    Raises DataError when problems were found and ``on_error == "error"``.
    """
    dataset_dir = Path(config.dataset_dir)
    layout = detect(dataset_dir, config.layout, LayoutOptions(config.csv_delimiter))
    policy = task_policy(layout, config)
    scan = scan_annotations(layout, policy)
    problems = list(scan.problems)
    plan = plan_splits(scan, config.validation_ratio, config.seed)
    counts_in = scan.counts()

    def fail_if_problems():
        if problems and config.on_error == "error":
            _write_report(config, counts_in, problems)
            raise DataError(summary(problems, dataset_dir))

    # When writing, text problems stop the run before any image is opened; `validate` goes on
    # to the images so that its report lists everything.
    if config.save_dir is not None:
        fail_if_problems()
    sizes = {split: len(rows) for split, rows in plan.items()}
    # Positions this run writes, per split: all of them, or one shard's block.
    blocks = {split: (0, size) if config.shard_index is None else shard_bounds(config.shard_index, size, config.shards)
              for split, size in sizes.items()}
    writer = _ShardWriter(config.save_dir, config.shards, sizes, config.shard_index)
    total = sum(stop - start for start, stop in blocks.values())
    progress = Progress(total, "tfrecords" if config.save_dir else "validate")
    worker = functools.partial(_process_chunk, layout, policy, config.save_dir is not None)
    try:
        batches = contextlib.closing(ordered_map(worker, chunks(scan, plan, blocks), config.workers))
        with batches as stream:
            for split, start, results in stream:
                for position, result in enumerate(results, start):
                    if isinstance(result, Problem):
                        problems.append(result)
                    else:
                        writer.write(split, position, result)
                progress.update(len(results))
        progress.close()
        scan.sort(problems)
        fail_if_problems()
        counts = {split: writer.counts[split] for split in SPLITS}
        result = {"counts": counts, "skipped": len(problems), "layout": layout.kind, "task": layout.task}
        if config.save_dir is not None:
            result = _manifest(config, policy, writer, scan, counts, len(problems))
            if config.shard_index is None:
                writer.commit(result)
            else:
                text_problems = len(scan.problems)
                writer.commit_part(_part(result, config.shard_index, text_problems, len(problems) - text_problems))
    finally:
        writer.discard()
    _write_report(config, counts_in | {"splits": counts}, problems)
    return result


def task_policy(layout: Layout, config: TFRecordsConfig) -> LabelPolicy | PagePolicy:
    """What checks and encodes the samples of ``layout``'s task: text lines (the charset JSONs beside the
    samples: in the dataset folder, or in the folder of a single CSV file) or pages."""
    if layout.task == PagePolicy.task:
        return PagePolicy(config.points_outside)
    charset = charset_of_dataset(layout.dataset_dir, Path(config.dataset_dir))
    return LabelPolicy.resolve(charset, config.case, config.geometry)


def _process_chunk(layout: Layout, policy: LabelPolicy | PagePolicy, build: bool, chunk: Chunk):
    """Worker side: ``(split, start, [framed record bytes or Problem per position])``."""
    out = []
    for reader, sample in chunk_samples(layout, chunk):
        try:
            out.append(policy.record(reader, sample, build))
        except (ImageError, LineError) as exc:
            out.append(problem_of(exc, sample.file, sample.line, sample.path))
    return chunk.split, chunk.start, out


class _ShardWriter:
    """Appends framed records to ``.partial`` shard files; ``commit`` renames them into place."""

    def __init__(self, save_dir: Path | None, shards: int, sizes: dict[str, int], only: int | None = None):
        self.save_dir = Path(save_dir) if save_dir is not None else None
        self.shards, self.sizes, self.only = shards, sizes, only
        self.counts = {split: 0 for split in SPLITS}
        self.files: dict[str, dict] = {}  # final name -> {"split", "records", "bytes", "sha"}
        self._open: tuple[str, object] | None = None
        if self.save_dir is not None:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            for split in SPLITS:
                for shard in range(shards) if only is None else [only]:
                    self.files[shard_name(split, shard, shards)] = {
                        "split": split, "records": 0, "bytes": 0, "sha": hashlib.sha256()
                    }
            # Left by an interrupted run. One shard of several touches only its own: the other runs may be
            # writing theirs into the same folder right now.
            stale = (self.save_dir.glob(f".*_feature*.tfrecords{PARTIAL_SUFFIX}") if only is None
                     else (partial_name(self.save_dir / name) for name in self.files))
            for path in list(stale):
                path.unlink(missing_ok=True)

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
        for stale in self.save_dir.glob(".manifest-part-*.json"):
            stale.unlink()
        write_text_atomic(manifest_path, json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")

    def commit_part(self, part: dict) -> None:
        """One shard of several: its files into place, then its manifest part (the other runs' files are theirs)."""
        self._close()
        (self.save_dir / MANIFEST_FILE).unlink(missing_ok=True)  # it would describe an older set of files
        for name in self.files:
            partial = partial_name(self.save_dir / name)
            if not partial.exists():
                partial.touch()
            partial.replace(self.save_dir / name)
        ours = {shard_name(split, shard, self.shards) for split in SPLITS for shard in range(self.shards)}
        for stale in self.save_dir.glob("*_feature*.tfrecords"):
            if stale.name not in ours:
                stale.unlink()  # from an earlier run with another shard count
        write_text_atomic(self.save_dir / part_name(self.only, self.shards),
                          json.dumps(part, ensure_ascii=False, indent=2) + "\n")

    def discard(self) -> None:
        """Remove whatever partial files remain (after a failure, nothing is kept)."""
        self._close()
        if self.save_dir is not None:
            for name in self.files:
                partial_name(self.save_dir / name).unlink(missing_ok=True)


def _manifest(config, policy: LabelPolicy | PagePolicy, writer: _ShardWriter, scan, counts, skipped) -> dict:
    splits = {split: {"count": counts[split], "files": []} for split in SPLITS}
    for name, stats in writer.files.items():
        splits[stats["split"]]["files"].append(
            {"name": name, "records": stats["records"], "bytes": stats["bytes"], "sha256": stats["sha"].hexdigest()}
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "shadownet", "version": __version__},
        "task": policy.task,
        "source": {
            "dataset_dir": config.source or str(config.dataset_dir),
            "layout": scan.layout.kind,
            "annotations": {name: digest for part in scan.layout.parts
                            for name, digest in scan.layout.digests(part).items()},
        },
        **policy.manifest(),
        "split": {"validation_ratio": config.validation_ratio, "seed": config.seed, "shards": config.shards,
                  # "train": carved from train by the ratio; "dataset": the dataset's own validation split
                  "validation_from": "dataset" if any(p.role == "validation" for p in scan.layout.parts) else "train"},
        "counts": counts,
        "skipped": skipped,
        "on_error": config.on_error,
        "splits": splits,
    }


def part_name(shard: int, shards: int) -> str:
    return f".manifest-part-{shard:05d}-of-{shards:05d}.json"


def _part(manifest: dict, shard: int, text_problems: int, image_problems: int) -> dict:
    return {"shard_index": shard, "manifest": manifest, "text_problems": text_problems,
            "image_problems": image_problems}


def merge_parts(parts: list[dict]) -> dict:
    """The manifest of a single run with ``shards = len(parts)``, from the parts of the N shard runs.

    Everything but the files, counts and skipped samples is the same in every part (same dataset, same
    settings): the runs must agree on it, or their records do not belong together.
    """
    parts = sorted(parts, key=lambda part: part["shard_index"])
    shards = parts[0]["manifest"]["split"]["shards"]
    if [part["shard_index"] for part in parts] != list(range(shards)):
        raise ShadownetError(f"manifest parts of shards {[p['shard_index'] for p in parts]}, expected 0..{shards - 1}")
    common = {key: value for key, value in parts[0]["manifest"].items()
              if key not in ("counts", "skipped", "splits")}
    for part in parts[1:]:
        other = {key: value for key, value in part["manifest"].items() if key not in ("counts", "skipped", "splits")}
        if other != common:
            differing = sorted(k for k in set(other) | set(common) if other.get(k) != common.get(k))
            raise ShadownetError(f"shard {part['shard_index']} was written from another dataset or with other "
                                 f"settings ({', '.join(differing)} differ): rerun every shard")
    counts = {split: sum(part["manifest"]["counts"][split] for part in parts) for split in SPLITS}
    splits = {split: {"count": counts[split],
                      "files": [f for part in parts for f in part["manifest"]["splits"][split]["files"]]}
              for split in SPLITS}
    skipped = parts[0]["text_problems"] + sum(part["image_problems"] for part in parts)
    merged = dict(parts[0]["manifest"], counts=counts, skipped=skipped, splits=splits)
    return {key: merged[key] for key in parts[0]["manifest"]}  # the single run's key order


def finish_shards(save_dir: Path, shards: int) -> dict | None:
    """When every shard's part is in ``save_dir``: write the manifest and remove the parts; else None."""
    save_dir = Path(save_dir)
    parts = []
    for shard in range(shards):
        try:
            parts.append(json.loads((save_dir / part_name(shard, shards)).read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None  # still running; the last run to finish writes the manifest
    manifest = merge_parts(parts)
    # Two runs finishing at once both merge (the same bytes): each through a temporary file of its own.
    handle, temporary = tempfile.mkstemp(prefix=".manifest-merge-", suffix=PARTIAL_SUFFIX, dir=save_dir)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        os.replace(temporary, save_dir / MANIFEST_FILE)
    finally:
        Path(temporary).unlink(missing_ok=True)
    for shard in range(shards):
        (save_dir / part_name(shard, shards)).unlink(missing_ok=True)
    return manifest


def _write_report(config: TFRecordsConfig, counts: dict, problems: list[Problem]) -> None:
    if config.report is not None:
        write_report(config.report, config.source or config.dataset_dir, config.on_error, counts, problems)
