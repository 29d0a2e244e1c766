"""The model dir: what a training run folder holds, and the one way to read a trained model back.

Layout::

    config.json             the resolved TrainConfig this run trains with (and, fine-tuned, its "parent")
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

from ..architectures import task_of
from ..config import TrainConfig, coerce
from ..data.charset import Charset
from ..errors import DataError, ShadownetError
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


def has_checkpoints(model_dir: Path) -> bool:
    """Whether the run has checkpoints of its own (a rerun resumes from them)."""
    return (Path(model_dir) / CHECKPOINTS_DIR / "checkpoint").is_file()


def write_run(model_dir: Path, config: TrainConfig, charset: Charset | None, parent: dict | None = None) -> None:
    """The run's settings and charset (a detector has none), written when it starts (the chief's); ``parent``:
    the run it was initialised from (``run``, ``checkpoint``, ``step``, ``charset_sha256``), kept from an earlier
    start."""
    values = config.to_dict()
    parent = parent or read_parent(model_dir)
    if parent:
        values["parent"] = parent
    plan = read_regularization(model_dir)  # a resumed run keeps what it decided
    if plan:
        values[REGULARIZATION_KEY] = plan
    write_text_atomic(model_dir / CONFIG_FILE, json.dumps(values, indent=2, sort_keys=True) + "\n")
    if charset is not None:
        write_text_atomic(model_dir / CHARSET_FILE, json.dumps({"characters": "".join(charset.characters)},
                                                               ensure_ascii=False) + "\n")


def check_same_run(model_dir: Path, config: TrainConfig, charset: Charset | None) -> None:
    """Resuming with another model or charset would load mismatched weights: refuse with a clear message."""
    previous = model_dir / CHARSET_FILE
    if charset is None and previous.exists():
        raise ShadownetError(f"{model_dir} holds a text recogniser's run; a detector needs a new --model-dir")
    if previous.exists():
        old = json.loads(previous.read_text(encoding="utf-8"))["characters"]
        if old != "".join(charset.characters):
            raise ShadownetError(f"{model_dir} holds a run with another charset; use a new --model-dir")
    config_path = model_dir / CONFIG_FILE
    if config_path.exists():
        recorded = json.loads(config_path.read_text(encoding="utf-8"))
        old_model = recorded.get("model")
        if old_model != config.model:
            raise ShadownetError(f"{model_dir} holds a {old_model} run, not {config.model}; use a new --model-dir")
        if has_checkpoints(model_dir):
            _check_same_trial(model_dir, config, recorded)


# What a hyperparameter tuner varies between trials: a run resumes its checkpoints only under the same values,
# so that no trial ever continues another one's training (two trials given one --model-dir by mistake).
TRIAL_SETTINGS = ("learning_rate", "warmup_steps", "batch_size", "optimizer", "lr_schedule", "weight_decay",
                  "clip_norm", "augment", "seed", "freeze", "init_from", "regularization")


def _check_same_trial(model_dir: Path, config: TrainConfig, recorded: dict) -> None:
    defaults = TrainConfig()
    changed = [(key, recorded.get(key, getattr(defaults, key)), getattr(config, key)) for key in TRIAL_SETTINGS
               if coerce(key, recorded.get(key, getattr(defaults, key)), CONFIG_FILE) != getattr(config, key)]
    if changed:
        key, old, new = changed[0]
        raise ShadownetError(
            f"{model_dir} holds the checkpoints of a run with {key}={old!r}, not {new!r}"
            + (f" (and {len(changed) - 1} more settings)" if len(changed) > 1 else "")
            + ": a run resumes only with its own settings (each tuning trial needs its own --model-dir)")


def read_best(model_dir: Path) -> dict | None:
    path = model_dir / BEST_FILE
    return json.loads(path.read_text()) if path.exists() else None


def write_best(model_dir: Path, best: dict) -> None:
    write_text_atomic(model_dir / BEST_FILE, json.dumps(best, indent=2) + "\n")


def read_parent(model_dir: Path) -> dict | None:
    """The run this one was initialised from, as its config.json records it (None: trained from scratch)."""
    path = Path(model_dir) / CONFIG_FILE
    return _read_json(path).get("parent") if path.is_file() else None


REGULARIZATION_KEY = "regularization_plan"  # config.json: the regime the run decided (learn/regime.py)


def write_regularization(model_dir: Path, plan: dict) -> None:
    """Record the regime the run decided in its config.json (the chief's)."""
    path = Path(model_dir) / CONFIG_FILE
    values = _read_json(path)
    values[REGULARIZATION_KEY] = plan
    write_text_atomic(path, json.dumps(values, indent=2, sort_keys=True) + "\n")


def read_regularization(model_dir: Path) -> dict | None:
    """The regime a run decided, as its config.json records it (None: not decided yet)."""
    path = Path(model_dir) / CONFIG_FILE
    return _read_json(path).get(REGULARIZATION_KEY) if path.is_file() else None


def read_run(model_dir: Path) -> tuple[TrainConfig, Charset | None]:
    """The settings and charset of a finished (or running) training run (a detector's: no charset)."""
    model_dir = Path(model_dir)
    path = model_dir / CONFIG_FILE
    if not path.is_file():
        raise ShadownetError(f"{model_dir}: no {CONFIG_FILE}; is this the --model-dir of a training run?")
    values = _read_json(path)
    values.pop("parent", None)
    values.pop(REGULARIZATION_KEY, None)
    config = TrainConfig(**{key: coerce(key, value, str(path)) for key, value in values.items()})
    if task_of(config.model) == "detection":
        return config, None
    characters = _read_json(model_dir / CHARSET_FILE).get("characters")
    if not isinstance(characters, str):
        raise DataError(f"{model_dir / CHARSET_FILE}: expected {{\"characters\": \"...\"}}")
    return config, Charset(tuple(characters))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def checkpoint_path(model_dir: Path, which: str = "best") -> str:
    """The ``best`` or ``latest`` checkpoint of a run (``best`` falls back to the newest when none was kept)."""
    import tensorflow as tf

    path = tf.train.latest_checkpoint(str(Path(model_dir) / (BEST_DIR if which == "best" else CHECKPOINTS_DIR)))
    if path is None and which == "best":
        path = tf.train.latest_checkpoint(str(Path(model_dir) / CHECKPOINTS_DIR))
    if path is None:
        raise ShadownetError(f"{model_dir}: no checkpoint found")
    return path


def load_model(model_dir: Path, which: str = "best"):
    """(keras model in float32, TrainConfig, Charset) of a run, restored from its ``best`` or ``latest``
    checkpoint (for inference; ``best`` falls back to the newest when none was kept yet)."""
    import tensorflow as tf

    from . import model as shadownet_model
    from .precision import set_precision

    model_dir = Path(model_dir)
    config, charset = read_run(model_dir)
    if charset is None:
        raise ShadownetError(f"{model_dir}: a text detector's run ({config.model}); export and predict of a "
                             "detector are not built yet (evaluate reads it)")
    set_precision("off")  # whatever a training run in this process left behind
    model = shadownet_model.build(config.model, charset.num_classes)
    tf.train.Checkpoint(model=model).restore(checkpoint_path(model_dir, which)).expect_partial()
    return model, config, charset


def load_detector(model_dir: Path, which: str = "best"):
    """(keras model in float32, TrainConfig) of a detector's run, restored like ``load_model``'s."""
    import tensorflow as tf

    from .detection import model as db_model
    from .precision import set_precision

    model_dir = Path(model_dir)
    config, charset = read_run(model_dir)
    if charset is not None:
        raise ShadownetError(f"{model_dir}: a text recogniser's run ({config.model}), not a detector's")
    set_precision("off")
    model = db_model.build(config.model)
    tf.train.Checkpoint(model=model).restore(checkpoint_path(model_dir, which)).expect_partial()
    return model, config
