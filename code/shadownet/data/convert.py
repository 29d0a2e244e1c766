"""``shadownet convert``: a dataset in any layout -> the same samples as an LMDB tree or in the seed layout.

Flow: the layout found -> the text checks (as ``validate``) -> image checks in worker processes, in
order -> samples appended to the new layout under ``.OUT.partial`` -> charset JSONs -> renamed to
``OUT``. Each split keeps its samples in the order of the input (train, the dataset's own validation
split when it has one, test); images are stored as their original bytes, labels as written (the case
policy only decides what passes validation). Nothing exists under ``OUT`` until the whole run succeeded.

Written layouts (those whose declaration has a ``writer``): ``lmdb`` gives ``OUT/Train``, ``OUT/Test``
(``OUT/Validation``) environments with the keys of ``lmdb_tree``; ``seed`` gives ``OUT/Train/sample.txt`` with
images in ``OUT/Train/images/`` (numbered from 1), and the same for Test (and Validation).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..choices import ERROR_POLICIES, SPLITS
from ..errors import DataError, SettingError, ShadownetError
from ..fileio import partial_name
from ..parallel import default_workers, ordered_map
from ..progress import Progress
from .annotations import LineError
from .charset import of_dataset
from .images import ImageError, ImageGeometry
from .layouts import CONVERT_TARGETS, REGISTRY, Layout, LayoutOptions, detect
from .splits import chunk_samples, chunks, rows_of
from .validate import LabelPolicy, Problem, check_image, scan_annotations, summary, write_report

FOLDERS = {"train": "Train", "validation": "Validation", "test": "Test"}


@dataclass(frozen=True)
class ConvertConfig:
    dataset_dir: Path
    out: Path
    to: str
    workers: int = field(default_factory=default_workers)
    on_error: str = "error"
    case: str = "auto"
    geometry: ImageGeometry = ImageGeometry()
    report: Path | None = None
    source: str | None = None  # the dataset as the user named it
    layout: str | None = None
    csv_delimiter: str = ";"  # the csv layout's column separator

    def __post_init__(self) -> None:
        if self.to not in CONVERT_TARGETS:
            raise SettingError("to", f"must be one of {', '.join(CONVERT_TARGETS)}, not {self.to!r}")
        if self.on_error not in ERROR_POLICIES:
            raise SettingError("on_error", f"must be one of {', '.join(ERROR_POLICIES)}, not {self.on_error!r}")
        if self.workers < 1:
            raise SettingError("workers", f"must be at least 1, not {self.workers}")
        LayoutOptions(self.csv_delimiter)  # SettingError when it is not one character


def run(config: ConvertConfig) -> dict:
    """Convert; returns ``{"layout", "to", "counts", "skipped"}``. DataError when problems stop it."""
    dataset_dir, out = Path(config.dataset_dir), Path(config.out)
    layout = detect(dataset_dir, config.layout, LayoutOptions(config.csv_delimiter))
    if layout.task != "recognition":
        raise DataError(f"{dataset_dir}: pages with text regions ({layout.kind} layout); convert writes text-line "
                        f"datasets from text-line datasets only")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ShadownetError(f"{out}: exists and is not an empty folder; convert writes a new one")
    charset = of_dataset(layout.dataset_dir, dataset_dir)  # beside the samples (the folder of a single CSV file)
    policy = LabelPolicy.resolve(charset, config.case, config.geometry)
    scan = scan_annotations(layout, policy)
    problems = list(scan.problems)
    counts_in = scan.counts()

    def fail_if_problems():
        if problems and config.on_error == "error":
            _report(config, counts_in, problems)
            raise DataError(summary(problems, dataset_dir))

    fail_if_problems()
    roles = [role for role in SPLITS if role != "validation" or any(p.role == role for p in layout.parts)]
    plan = {role: rows_of(scan, role) for role in SPLITS}
    blocks = {role: (0, len(plan[role]) if role in roles else 0) for role in SPLITS}
    staging = partial_name(out)
    shutil.rmtree(staging, ignore_errors=True)  # left by an interrupted run
    staging.mkdir(parents=True)
    writers = {role: REGISTRY[config.to].writer(staging, FOLDERS[role]) for role in roles}
    progress = Progress(sum(stop for _, stop in blocks.values()), "convert")
    worker = functools.partial(_check_chunk, layout, policy, config.to)
    try:
        with contextlib.closing(ordered_map(worker, chunks(scan, plan, blocks), config.workers)) as stream:
            for role, _, results in stream:
                for result in results:
                    if isinstance(result, Problem):
                        problems.append(result)
                    else:
                        writers[role].add(*result)
                progress.update(len(results))
        progress.close()
        scan.sort(problems)
        fail_if_problems()
        for writer in writers.values():
            writer.close()
        charset.save(staging)
        if out.exists():
            out.rmdir()  # empty (checked above), e.g. the folder staging made for an s3:// output
        os.replace(staging, out)
    except BaseException:
        for writer in writers.values():
            writer.abort()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    counts = {role: writers[role].count if role in writers else 0 for role in SPLITS}
    _report(config, counts_in | {"splits": counts}, problems)
    return {"layout": layout.kind, "to": config.to, "counts": counts, "skipped": len(problems)}


def _check_chunk(layout: Layout, policy: LabelPolicy, to: str, chunk):
    """Worker side: ``(split, start, [(image bytes, label) or Problem per position])``."""
    out = []
    for reader, sample in chunk_samples(layout, chunk):
        try:
            ids, text = policy.encode(sample)
            data, _ = check_image(reader, sample, ids, text, policy)
            if to == "seed" and ("\n" in sample.label or sample.label.endswith("\r")):
                raise LineError("unstorable_label", f"label {sample.label!r} holds a line break, which a "
                                                    "sample.txt line cannot")
        except (ImageError, LineError) as exc:
            out.append(Problem(sample.file, sample.line, exc.code, str(exc), sample.path))
            continue
        out.append((data, sample.label))
    return chunk.split, chunk.start, out


def _report(config: ConvertConfig, counts: dict, problems: list[Problem]) -> None:
    if config.report is not None:
        write_report(config.report, config.source or config.dataset_dir, config.on_error, counts, problems)
