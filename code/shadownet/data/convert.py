"""``shadownet convert``: a dataset in any layout -> the same samples as an LMDB tree or in the seed layout.

Flow: the layout found -> the text checks (as ``validate``) -> image checks in worker processes, in
order -> samples appended to the new layout under ``.OUT.partial`` -> charset JSONs -> renamed to
``OUT``. Each split keeps its samples in the order of the input (train, the dataset's own validation
split when it has one, test); images are stored as their original bytes, labels as written (the case
policy only decides what passes validation). Nothing exists under ``OUT`` until the whole run succeeded.

Written layouts: ``lmdb`` gives ``OUT/Train``, ``OUT/Test`` (``OUT/Validation``) environments with the
keys of ``lmdb_tree``; ``seed`` gives ``OUT/Train/sample.txt`` with images in ``OUT/Train/images/``
(numbered from 1), and the same for Test (and Validation).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..choices import CONVERT_TARGETS, ERROR_POLICIES, SPLITS
from ..errors import DataError, ShadownetError
from ..fileio import partial_name
from ..parallel import default_workers, ordered_map
from ..progress import Progress
from .annotations import LineError
from .charset import of_dataset
from .images import ImageError, ImageGeometry
from .layouts import Layout, detect
from .lmdb_tree import LmdbWriter
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

    def __post_init__(self) -> None:
        if self.to not in CONVERT_TARGETS:
            raise ShadownetError(f"--to must be one of {', '.join(CONVERT_TARGETS)}, not {self.to!r}")
        if self.on_error not in ERROR_POLICIES:
            raise ShadownetError(f"--on-error must be one of {', '.join(ERROR_POLICIES)}, not {self.on_error!r}")
        if self.workers < 1:
            raise ShadownetError(f"--workers must be at least 1, not {self.workers}")


def run(config: ConvertConfig) -> dict:
    """Convert; returns ``{"layout", "to", "counts", "skipped"}``. DataError when problems stop it."""
    dataset_dir, out = Path(config.dataset_dir), Path(config.out)
    layout = detect(dataset_dir, config.layout)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ShadownetError(f"{out}: exists and is not an empty folder; convert writes a new one")
    charset = of_dataset(dataset_dir)
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
    writers = {role: _writer(config.to, staging, FOLDERS[role]) for role in roles}
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


def _writer(to: str, root: Path, folder: str):
    return LmdbWriter(root / folder) if to == "lmdb" else SeedWriter(root, folder)


class SeedWriter:
    """``FOLDER/sample.txt`` and ``FOLDER/images/000000001.jpg`` ...; paths in sample.txt are relative to root."""

    def __init__(self, root: Path, folder: str):
        self.root, self.folder, self.count = root, folder, 0
        (root / folder / "images").mkdir(parents=True)
        self.lines = open(root / folder / "sample.txt", "w", encoding="utf-8", newline="\n")  # noqa: SIM115

    def add(self, image: bytes, label: str) -> None:
        self.count += 1
        relative = f"{self.folder}/images/{self.count:09d}.{extension(image)}"
        (self.root / relative).write_bytes(image)
        # A label with a tab needs the tab-separated form (the first tab splits); any other, a space.
        self.lines.write(f"{relative}{chr(9) if chr(9) in label else ' '}{label}\n")

    def close(self) -> None:
        self.lines.close()

    def abort(self) -> None:
        self.lines.close()


def extension(data: bytes) -> str:
    """The file name extension of encoded image bytes (what decodes them does not depend on it)."""
    for magic, ext in ((b"\xff\xd8", "jpg"), (b"\x89PNG", "png"), (b"BM", "bmp"), (b"GIF8", "gif"),
                       (b"II*\x00", "tif"), (b"MM\x00*", "tif")):
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "img"


def _report(config: ConvertConfig, counts: dict, problems: list[Problem]) -> None:
    if config.report is not None:
        write_report(config.report, config.source or config.dataset_dir, config.on_error, counts, problems)
