"""Where a dataset's samples are: every layout, behind one interface (``layout_base``), and finding a folder's.

=========  =====================================================  ==========================================
layout     what the folder holds                                  parts (role)
=========  =====================================================  ==========================================
seed       ``Train/sample.txt``, ``Test/sample.txt``, images      Train → train, Test → test,
                                                                  ``Validation/sample.txt`` (optional)
lmdb       ``Train/``, ``Test/`` (``Validation/``) or the          every ``data.mdb`` under each, sorted
           release names ``training/``, ``validation/``,
           ``evaluation/``, each an LMDB environment or folders
mjsynth    ``annotation_{train,val,test}.txt``, ``lexicon.txt``   each annotation file present
csv        ``train.csv`` (``validation.csv``, ``test.csv``), or    each CSV file present; one file: train
           one ``.csv`` file given as the dataset
named      image files named by their labels, in ``Train/``,      each folder present; else the folder
           ``Test/`` (``Validation/``) or in the folder itself    itself, a seeded tenth to test
=========  =====================================================  ==========================================

The detection task's layouts, pages with their text regions (``icdar2015``, ``paddle_det``), are in
``pages/page_layouts.py``.

This module imports every layout's module, so that their declarations fill the registry
(``layout_base.REGISTRY``); the choices of ``--layout`` and ``convert --to`` are read from it here.
Adding a layout: a module of ``data/`` with one subclass of ``layout_base.Layout``, imported below.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError, SettingError
from . import csv_table, lmdb_tree, mjsynth, named_images, seed_layout  # noqa: F401  (their layouts register)
from .layout_base import (
    REGISTRY,
    Layout,
    LayoutOptions,
    Part,
    PartReader,
    iter_samples,
    location,
    ordered,
    read_image_file,
    sha256_file,
)
from .pages import page_layouts  # noqa: F401  (the detection task's layouts register)
from .seed_layout import SEED_PARTS, SEED_REQUIRED, SeedLayout, TextReader

__all__ = ["CONVERT_TARGETS", "LAYOUTS", "REGISTRY", "SEED_PARTS", "SEED_REQUIRED", "Layout", "LayoutOptions", "Part",
           "PartReader", "SeedLayout", "TextReader", "detect", "iter_samples", "location", "read_image_file",
           "sha256_file"]

# `--layout`: every registered layout, in the order detect() tries them.
LAYOUTS = tuple(cls.kind for cls in ordered())
# `convert --to`: the layouts that can be written, alphabetical.
CONVERT_TARGETS = tuple(sorted(cls.kind for cls in ordered() if cls.writer is not None))

NOT_FOUND = ("{}: no dataset found: expected Train/sample.txt (seed layout), Train/.../data.mdb or "
             "training/.../data.mdb (LMDB), or annotation_train.txt (MJSynth); --layout names one; also read: "
             "train.csv (csv), image files named by their labels (named), and pages: train_images/ with "
             "train_gts/ (icdar2015), Train/label.txt of PaddleOCR detection labels (paddle_det)")


def detect(dataset_dir: Path, layout: str | None = None, options: LayoutOptions | None = None) -> Layout:
    """The layout of ``dataset_dir``: ``layout`` when given, else the first registered layout (by rank) that is
    present. ``dataset_dir`` is a folder, or a file that a layout reads (one ``.csv`` file)."""
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir() and not (dataset_dir.is_file() and any(cls.present(dataset_dir)
                                                                       for cls in ordered())):
        raise DataError(f"{dataset_dir}: dataset directory not found")
    if layout is not None:
        if layout not in REGISTRY:
            raise SettingError("layout", f"must be one of {', '.join(LAYOUTS)}, not {layout!r}")
        return REGISTRY[layout].find(dataset_dir, options)
    for cls in ordered():
        if cls.present(dataset_dir):
            return cls.find(dataset_dir, options)
    raise DataError(NOT_FOUND.format(dataset_dir))


def dataset_folder(dataset_dir: Path) -> Path:
    """The folder of a dataset named by ``--dataset-dir``: itself, or the folder of a dataset file (a CSV);
    the charset JSONs are there."""
    dataset_dir = Path(dataset_dir)
    return dataset_dir.parent if dataset_dir.is_file() else dataset_dir
