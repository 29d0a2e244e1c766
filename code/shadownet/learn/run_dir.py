"""The model dir: what a training run folder holds, and the one way to read a trained model back.

Layout::

    config.json             the resolved TrainConfig this run trains with
    charset.json            its characters, in class order
    checkpoints/ckpt-N.*    model, optimizer and step (tf.train.CheckpointManager, keep N)
    best/ckpt-N.*           the checkpoint with the best validation metric so far
    best.json               that metric, its value and step
    logs/                   TensorBoard scalars and decoded validation images
    evaluation-SPLIT.json   `shadownet evaluate`'s report (and .png, its grid of samples)

Train writes it, evaluate and export read it, the CLI syncs it to object storage: each through this
module. TensorFlow is imported only to load a model.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import TrainConfig
from ..config import load as load_config
from ..config import save as save_config
from ..data.charset import Charset
from ..errors import ShadownetError
from ..fileio import write_text_atomic

CONFIG_FILE = "config.json"
CHARSET_FILE = "charset.json"
BEST_FILE = "best.json"
CHECKPOINTS_DIR = "checkpoints"
BEST_DIR = "best"
LOGS_DIR = "logs"
# What a reader of a run trusts (CheckpointManager's state files, the best checkpoint's record): synced last.
STATE_FILES = ("checkpoint", BEST_FILE)


def report_name(split: str) -> str:
    """The file name of the evaluation report of ``split`` in a model dir."""
    return f"evaluation-{split}.json"


def report_path(model_dir: str | Path, split: str) -> str | Path:
    """The default report of ``split``: next to the run, in a local folder or under an s3:// prefix."""
    if isinstance(model_dir, Path):
        return model_dir / report_name(split)
    return f"{str(model_dir).rstrip('/')}/{report_name(split)}"


def write_run(model_dir: Path, config: TrainConfig, charset: Charset) -> None:
    """The run's settings and charset, written when it starts (the chief's)."""
    save_config(config, model_dir / CONFIG_FILE)
    write_text_atomic(model_dir / CHARSET_FILE, json.dumps({"characters": "".join(charset.characters)},
                                                           ensure_ascii=False) + "\n")


def check_same_run(model_dir: Path, config: TrainConfig, charset: Charset) -> None:
    """Resuming with another model or charset would load mismatched weights: refuse with a clear message."""
    previous = model_dir / CHARSET_FILE
    if previous.exists():
        old = json.loads(previous.read_text(encoding="utf-8"))["characters"]
        if old != "".join(charset.characters):
            raise ShadownetError(f"{model_dir} holds a run with another charset; use a new --model-dir")
    config_path = model_dir / CONFIG_FILE
    if config_path.exists():
        old_model = json.loads(config_path.read_text(encoding="utf-8")).get("model")
        if old_model != config.model:
            raise ShadownetError(f"{model_dir} holds a {old_model} run, not {config.model}; use a new --model-dir")


def read_best(model_dir: Path) -> dict | None:
    path = model_dir / BEST_FILE
    return json.loads(path.read_text()) if path.exists() else None


def write_best(model_dir: Path, best: dict) -> None:
    write_text_atomic(model_dir / BEST_FILE, json.dumps(best, indent=2) + "\n")


def read_run(model_dir: Path) -> tuple[TrainConfig, Charset]:
    """The settings and charset of a finished (or running) training run."""
    model_dir = Path(model_dir)
    if not (model_dir / CONFIG_FILE).exists():
        raise ShadownetError(f"{model_dir}: no {CONFIG_FILE}; is this the --model-dir of a training run?")
    config = load_config(model_dir / CONFIG_FILE)
    charset = Charset(tuple(json.loads((model_dir / CHARSET_FILE).read_text(encoding="utf-8"))["characters"]))
    return config, charset


def load_model(model_dir: Path, which: str = "best"):
    """(keras model in float32, TrainConfig, Charset) of a run, restored from its ``best`` or ``latest``
    checkpoint (for inference; ``best`` falls back to the newest when none was kept yet)."""
    import tensorflow as tf

    from . import model as shadownet_model
    from .trainer import set_precision

    model_dir = Path(model_dir)
    config, charset = read_run(model_dir)
    set_precision("off")  # whatever a training run in this process left behind
    model = shadownet_model.build(config.model, charset.num_classes)
    path = tf.train.latest_checkpoint(str(model_dir / (BEST_DIR if which == "best" else CHECKPOINTS_DIR)))
    if path is None and which == "best":
        path = tf.train.latest_checkpoint(str(model_dir / CHECKPOINTS_DIR))
    if path is None:
        raise ShadownetError(f"{model_dir}: no checkpoint found")
    tf.train.Checkpoint(model=model).restore(path).expect_partial()
    return model, config, charset
