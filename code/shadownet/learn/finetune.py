"""Fine-tuning: a new run whose weights start from another run's checkpoint, also onto another charset.

* ``inherit``: the architecture settings (``config.ARCHITECTURE``) come from the parent; one given explicitly
  with another value is refused, naming both.
* ``Parent.load``: the parent's settings, charset and float32 model from its ``best`` or ``latest`` checkpoint;
  anything missing, unreadable or of another shape is one error naming the setting (``init_from``), what and
  where, with a bad-data exit status (1).
* ``transfer``: every layer's weights copied; the output layer rebuilt by character, not by index: rows of the
  characters both charsets hold are copied, those of new characters are initialised afresh (so that they start
  less likely than the parent's best reading, see ``_rebuild_output``), those of dropped characters go, and the
  blank's row is carried over wherever its index moved.

The optimizer is not carried: the run starts at step 0 with a fresh schedule. What the run came from is
recorded in its config.json (``run_dir.write_run``), and a rerun of it resumes its own checkpoints.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ..config import ARCHITECTURE, TrainConfig
from ..data.charset import Charset
from ..errors import DataError, SettingError, ShadownetError
from . import model as shadownet_model
from . import run_dir
from .precision import set_precision

OUTPUT_LAYER = "logits"


@dataclass
class Parent:
    run: str  # as given: a folder, s3:// or gs:// prefix
    config: TrainConfig
    charset: Charset
    model: keras.Model
    step: int

    @classmethod
    def load(cls, local_dir: Path, run: str, checkpoint: str) -> "Parent":
        """The parent run staged at ``local_dir`` (``run`` names it in messages and in the record)."""
        try:
            config, charset = run_dir.read_run(local_dir)
            path = run_dir.checkpoint_path(local_dir, checkpoint)
        except ShadownetError as exc:
            raise SettingError("init_from", f"{run}: {str(exc).replace(str(local_dir), run)}",
                               DataError.exit_code) from None
        set_precision("off")  # the parent's weights as float32, whatever this process ran before
        model = shadownet_model.build(config.model, charset.num_classes)
        try:
            tf.train.Checkpoint(model=model).restore(path).expect_partial().assert_existing_objects_matched()
        except (AssertionError, ValueError, IndexError, tf.errors.OpError) as exc:  # IndexError: a short file
            reason = str(exc).strip().splitlines()[0][:300]
            raise SettingError("init_from", f"{run}: checkpoint {Path(path).name} does not hold a {config.model} "
                               f"with {charset.num_classes} outputs, or cannot be read ({reason})",
                               DataError.exit_code) from None
        match = re.search(r"ckpt-(\d+)$", path)
        return cls(run, config, charset, model, int(match.group(1)) if match else 0)

    def record(self, checkpoint: str) -> dict:
        return {"run": self.run, "checkpoint": checkpoint, "step": self.step,
                "charset_sha256": self.charset.sha256}


def inherit(config: TrainConfig, explicit: frozenset[str], parent: TrainConfig, parent_name: str) -> TrainConfig:
    """``config`` with the parent's architecture settings; an explicit other value is refused."""
    for key in ARCHITECTURE:
        mine, theirs = getattr(config, key), getattr(parent, key)
        if key in explicit and mine != theirs:
            raise ShadownetError(f"{key}: {parent_name} is a {key}={theirs} run, and this run sets {key}={mine}; "
                                 f"a fine-tuned run keeps its parent's {key} (leave it out)")
    return dataclasses.replace(config, **{key: getattr(parent, key) for key in ARCHITECTURE})


def transfer(parent: Parent, model: keras.Model, charset: Charset) -> dict:
    """Copy the parent's weights into ``model`` (built for ``charset``); returns what the output layer kept."""
    for layer in model.layers:
        if not layer.weights:
            continue
        source = parent.model.get_layer(layer.name).get_weights()
        if layer.name == OUTPUT_LAYER:
            source = _rebuild_output(source, layer.get_weights(), parent.charset, charset)
        layer.set_weights(source)
    kept = [c for c in charset.characters if c in parent.charset]
    return {"kept": len(kept), "added": [c for c in charset.characters if c not in parent.charset],
            "dropped": [c for c in parent.charset.characters if c not in charset]}


def _rebuild_output(source: list[np.ndarray], fresh: list[np.ndarray], old: Charset, new: Charset) -> list:
    """Kernel [features, classes] and bias [classes] for ``new``: by character from ``source``. A new
    character starts from the row of its other case when the parent has that (``A`` from ``a``: a parent
    trained on lowercase labels reads both cases as one), else from the mean of the old classes' rows; either
    with the bias one lower, plus a small part of its fresh initial row (L1 norm 0.5), which tells the new
    characters apart.

    The features are the last BiLSTM's outputs, each within (-1, 1), so the fresh part moves a new class's
    score by less than 0.5: it starts below the score of the row it came from (the mean of the old scores is
    below the best one), and the parent's readings of images it could read are unchanged until training
    teaches the new characters.
    """
    kernel, bias = (array.copy() for array in fresh)
    old_kernel, old_bias = source
    mean_row, mean_bias = old_kernel[:, :old.blank_index].mean(axis=1), old_bias[:old.blank_index].mean()
    index = {char: i for i, char in enumerate(old.characters)}
    for j, char in enumerate(new.characters):
        if char in index:
            kernel[:, j], bias[j] = old_kernel[:, index[char]], old_bias[index[char]]
            continue
        part = fresh[0][:, j] * (0.5 / max(float(np.abs(fresh[0][:, j]).sum()), 1e-12))
        sibling = index.get(char.swapcase()) if char.swapcase() != char else None
        if sibling is not None:
            kernel[:, j], bias[j] = old_kernel[:, sibling] + part, old_bias[sibling] - 1.0
        else:
            kernel[:, j], bias[j] = mean_row + part, mean_bias - 1.0
    kernel[:, new.blank_index], bias[new.blank_index] = old_kernel[:, old.blank_index], old_bias[old.blank_index]
    return [kernel, bias]


def describe(kept: dict) -> str:
    """``kept 36 classes, added 26, dropped 0`` and up to 10 of the added and dropped characters."""
    def some(chars: list[str]) -> str:
        return " ".join(repr(c) for c in chars[:10]) + (" ..." if len(chars) > 10 else "")

    line = f"kept {kept['kept']} classes, added {len(kept['added'])}, dropped {len(kept['dropped'])}"
    for name in ("added", "dropped"):
        if kept[name]:
            line += f"; {name}: {some(kept[name])}"
    return line
