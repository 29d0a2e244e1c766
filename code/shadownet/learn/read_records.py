"""Reading records back: a ``tf.data.Dataset`` of decoded examples from a records directory.

The directory is what ``shadownet tfrecords`` wrote; its ``manifest.json`` names
the files of each split (and is written last, so its presence means complete).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf

from ..choices import SPLITS
from ..data.charset import Charset
from ..data.record_format import (
    IMAGE_ENCODED,
    IMAGE_HEIGHT,
    IMAGE_SOURCE,
    IMAGE_WIDTH,
    LABEL_IDS,
    LABEL_LENGTH,
    LABEL_TEXT,
    MANIFEST_FILE,
    SCHEMA_VERSION,
)
from ..errors import DataError

FEATURES = {
    IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
    IMAGE_WIDTH: tf.io.FixedLenFeature([], tf.int64),
    IMAGE_HEIGHT: tf.io.FixedLenFeature([], tf.int64),
    IMAGE_SOURCE: tf.io.FixedLenFeature([], tf.string, default_value=""),
    LABEL_IDS: tf.io.VarLenFeature(tf.int64),
    LABEL_LENGTH: tf.io.FixedLenFeature([], tf.int64),
    LABEL_TEXT: tf.io.FixedLenFeature([], tf.string),
}


def read_manifest(records_dir: Path, task: str | None = "recognition") -> dict:
    """The records' manifest, checked; ``task``: the task the reader handles (None: any)."""
    path = Path(records_dir) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: not found; is this a complete output of 'shadownet tfrecords'?") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: malformed JSON: {exc.msg}") from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise DataError(
            f"{path}: record schema version {manifest.get('schema_version')!r}, this shadownet reads {SCHEMA_VERSION}"
        )
    found = manifest.get("task", "recognition")  # manifests before the detection task had no "task"
    if task is not None and found != task:
        what = "pages and their text regions" if found == "detection" else "text lines"
        raise DataError(f"{path}: records of the {found} task ({what}); this command reads records of the "
                        f"{task} task")
    return manifest


def charset_of(manifest: dict) -> Charset:
    return Charset(tuple(manifest["charset"]["characters"]))


def split_files(records_dir: Path, split: str, manifest: dict | None = None) -> list[str]:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    manifest = manifest or read_manifest(records_dir, task=None)
    return [str(Path(records_dir) / f["name"]) for f in manifest["splits"][split]["files"]]


def share(manifest: dict, shard: tuple[int, int], test: bool) -> tuple[list[str], bool]:
    """(the record files worker ``shard[0]`` of ``shard[1]`` reads, whether it reads every record file of the
    train split): its part of the train files as ``raw_split`` cuts them, the validation split (every worker
    evaluates) and, with ``test``, the test split (the chief's, when it evaluates its export). With fewer
    train files than workers, each worker reads every ``count``-th record of all of them."""
    index, count = shard
    train = [f["name"] for f in manifest["splits"]["train"]["files"]]
    whole = count > 1 and len(train) < count
    names = train if whole or count == 1 else train[index::count]
    names += [f["name"] for f in manifest["splits"]["validation"]["files"]]
    if test:
        names += [f["name"] for f in manifest["splits"]["test"]["files"]]
    return names, whole


def stage_share(staging, path: str, shard: tuple[int, int], test: bool, log):
    """(the local records folder, its ``Arrivals``: the train files still on their way, or None) of worker
    ``shard[0]`` of ``shard[1]`` on object storage (``staging``: a ``cloud.storage.Staging``). It stages the
    manifest first, then the files of its ``share``; of its train files only the first, the others arrive in
    the background while it trains. With fewer train files than workers it stages them all."""
    local = staging.input_dir(path, only=lambda name: name == MANIFEST_FILE)
    manifest = read_manifest(local)
    names, whole = share(manifest, shard, test)
    train = [f["name"] for f in manifest["splits"]["train"]["files"]]
    if whole:
        log(f"records: {len(train)} train files for {shard[1]} workers: each worker reads 1 record in {shard[1]} "
            "of every file, so each stages them all (records written with --shards >= the workers: 1/N each)")
        wanted = set(names) | {MANIFEST_FILE}
        return staging.input_dir(path, only=lambda name: name in wanted), None
    mine = train[shard[0]::shard[1]]
    later = mine[1:]
    log(f"records: worker {shard[0]} of {shard[1]} stages {len(names)} of the record files (its {len(mine)} of "
        f"{len(train)} train files; it starts on the first while the other {len(later)} arrive)")
    now = (set(names) - set(later)) | {MANIFEST_FILE}
    return staging.input_dir_then(path, lambda name: name in now, later)


def parse_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """One serialized Example -> decoded tensors.

    ``image``: uint8 [height, width, 3] RGB; ``label``: int64 [length];
    ``label_length``, ``width``, ``height``: int64 scalars; ``text``, ``source``: string scalars.
    """
    parsed = tf.io.parse_single_example(serialized, FEATURES)
    image = tf.io.decode_image(parsed[IMAGE_ENCODED], channels=3, expand_animations=False)
    return {
        "image": image,
        "label": tf.sparse.to_dense(parsed[LABEL_IDS]),
        "label_length": parsed[LABEL_LENGTH],
        "text": parsed[LABEL_TEXT],
        "width": parsed[IMAGE_WIDTH],
        "height": parsed[IMAGE_HEIGHT],
        "source": parsed[IMAGE_SOURCE],
    }


def raw_split(records_dir: Path, split: str, *, deterministic: bool = True, interleave: int = 4,
              shard: tuple[int, int] = (0, 1), ready: Callable[[str], None] | None = None) -> tf.data.Dataset:
    """Serialized examples of one split (cheap to shuffle before decoding).

    ``shard=(index, count)``: only part ``index`` of ``count`` disjoint parts (a worker's share of the
    records when several machines train): every ``count``-th file when there are at least ``count``
    files, else every ``count``-th record.
    ``ready(path)``: blocks until that file is there (files still being staged). The files are then read
    one after the other, each opened once ``ready`` returns for it, so that reading goes on in the files at
    hand (an interleave would wait to open all of its cycle first).
    """
    files = split_files(records_dir, split)
    index, count = shard
    by_record = count > 1 and len(files) < count
    if count > 1 and not by_record:
        files = files[index::count]
    if ready is not None:
        def arrived(path):
            ready(path.numpy().decode())
            return path

        raw = tf.data.Dataset.from_tensor_slices(files).map(
            lambda path: tf.ensure_shape(tf.py_function(arrived, [path], tf.string), [])).flat_map(
            tf.data.TFRecordDataset)
    elif len(files) == 1:
        raw = tf.data.TFRecordDataset(files)
    else:
        raw = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(interleave, len(files)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
    if by_record:
        raw = raw.shard(count, index)
    options = tf.data.Options()
    options.deterministic = deterministic
    return raw.with_options(options)


def load_split(records_dir: Path, split: str, *, deterministic: bool = True) -> tf.data.Dataset:
    """All examples of one split, decoded (see ``parse_example``), in file order when deterministic."""
    raw = raw_split(records_dir, split, deterministic=deterministic)
    return raw.map(parse_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)


def inspect(records_dir: Path, name: str, show: int = 3, out=print) -> None:
    """Read every split back through tf.data and check it against the manifest: the counts, and that the
    label ids of the first ``show`` examples per split spell their text. Prints a summary to ``out``."""
    manifest = read_manifest(records_dir)
    charset = charset_of(manifest)
    out(f"{name}: schema {manifest['schema_version']}, {charset.size} characters "
        f"(blank {charset.blank_index}), images {manifest['image']}")
    for split, expected in manifest["counts"].items():
        count, widths = 0, []
        for example in load_split(records_dir, split).as_numpy_iterator():
            if count < show:
                text = example["text"].decode()
                if charset.decode(example["label"]) != text:
                    raise DataError(f"{split}: label ids of {example['source'].decode()} do not spell {text!r}")
                out(f"  {split}: {example['source'].decode()} {example['image'].shape} {text!r}")
            count += 1
            widths.append(int(example["width"]))
        if count != expected:
            raise DataError(f"{split}: read {count} records, the manifest says {expected}")
        mean_width = sum(widths) / len(widths) if widths else 0
        out(f"{split}: {count} records read back, mean width {mean_width:.0f} px")
