"""Typed training configuration: defaults here, then a YAML/JSON file, then ``--key value`` overrides.

Cloud platforms hand every hyperparameter over as a string (SageMaker even JSON-encodes some
twice: ``"\\"adam\\""``), so every value is coerced to its field's declared type; unknown keys and
values that do not fit are rejected with a message naming the key and what it expects.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import ShadownetError

CHOICES: dict[str, tuple[str, ...]] = {
    "model": ("shadownet", "shadownet_small"),
    "input_mode": ("keep_ratio", "fixed"),
    "optimizer": ("adam", "adadelta"),
    "lr_schedule": ("cosine", "constant"),
    "mixed_precision": ("auto", "off", "bfloat16", "float16"),
    "best_metric": ("word_accuracy", "char_error_rate", "loss"),
}

HELP: dict[str, str] = {
    "mixed_precision": "auto: bfloat16 on GPUs of compute capability >= 8.0 and on CPUs with AMX or "
                       "AVX512-BF16, float16 (with loss scaling) on older GPUs, else off (float32)",
    "eval_every_seconds": "also evaluate on the validation split when this many seconds have passed since the "
                          "last evaluation; 0 (default): a tenth of max_train_seconds when that is set, else never",
    "max_train_seconds": "time budget: stop early enough to evaluate the final state within it, and fit the "
                         "learning-rate schedule (warm-up, cosine decay) to the steps that fit; 0: no limit",
    "batch_size": "examples per replica (per GPU); a step trains on the global batch of batch_size x replicas",
    "scale_learning_rate": "multiply learning_rate by the number of replicas (linear scaling for the larger "
                           "global batch); default false",
    "worker_timeout_seconds": "several workers: fail a collective that waits longer than this for the others "
                              "(default 0: off; a worker that dies or freezes is noticed by TensorFlow's heartbeats "
                              "within seconds anyway). Costs one thread per collective, kept this long",
}


@dataclass(frozen=True)
class TrainConfig:
    # -- what is trained
    model: str = "shadownet_small"  # a quarter of the original's compute: more steps in a CPU budget
    input_mode: str = "keep_ratio"
    max_width: int = 256  # training images wider than this are squeezed to it (keep_ratio mode)
    # -- how long
    train_steps: int = 20_000
    max_train_seconds: float = 0.0  # 0: no limit; else checkpoint, save and exit 0 when spent
    batch_size: int = 64  # per replica; a step trains on batch_size x replicas examples
    # -- optimisation
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    scale_learning_rate: bool = False  # multiply learning_rate by the number of replicas
    lr_schedule: str = "cosine"
    warmup_steps: int = 500
    clip_norm: float = 5.0  # global gradient norm; 0 disables clipping
    weight_decay: float = 0.0
    # -- input pipeline
    shuffle_buffer: int = 4096
    augment: bool = True
    seed: int = 0
    # -- speed
    mixed_precision: str = "auto"  # bfloat16 / float16 where the hardware runs it fast, else off (precision.py)
    xla: bool = False
    # -- several workers
    worker_timeout_seconds: float = 0.0  # fail a collective that waits longer for the other workers; 0: off
    # -- bookkeeping
    log_every: int = 50
    eval_every: int = 500
    eval_every_seconds: float = 0.0  # also evaluate after this long; 0: max_train_seconds / 10 when that is set
    eval_max_samples: int = 0  # 0: the whole validation split
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    best_metric: str = "word_accuracy"

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ShadownetError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        positive = ("train_steps", "batch_size", "max_width", "log_every", "eval_every", "checkpoint_every",
                    "keep_checkpoints", "shuffle_buffer")
        for name in positive:
            if getattr(self, name) < 1:
                raise ShadownetError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("learning_rate",):
            if not getattr(self, name) > 0:
                raise ShadownetError(f"{name} must be > 0, not {getattr(self, name)}")
        for name in ("max_train_seconds", "warmup_steps", "clip_norm", "weight_decay", "eval_max_samples",
                     "worker_timeout_seconds", "eval_every_seconds"):
            value = getattr(self, name)
            if value < 0 or (isinstance(value, float) and math.isnan(value)):
                raise ShadownetError(f"{name} must be >= 0, not {value}")
        if self.max_width < 8 or self.max_width % 4:
            raise ShadownetError(f"max_width must be a multiple of 4 and at least 8, not {self.max_width}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def field_types() -> dict[str, type]:
    return {f.name: type(f.default) for f in fields(TrainConfig)}


def coerce(key: str, value: Any, source: str = "config") -> Any:
    """``value`` (perhaps a string from a platform) as the type of field ``key``."""
    types = field_types()
    if key not in types:
        raise ShadownetError(f"unknown setting {key!r} in {source}; known settings: {', '.join(sorted(types))}")
    kind = types[key]
    if isinstance(value, str):
        value = _unquote(value.strip())
    try:
        if kind is bool:
            return _to_bool(value)
        if kind is int:
            if isinstance(value, bool):
                raise ValueError
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            return int(number)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if not isinstance(value, str):
            raise ValueError
        return value
    except (TypeError, ValueError):
        raise ShadownetError(
            f"{source}: {key} must be {_describe(kind)}, not {value!r}"
        ) from None


def load(path: Path | None = None, overrides: dict[str, Any] | None = None,
         platform: dict[str, Any] | None = None, platform_source: str = "platform") -> TrainConfig:
    """Defaults < the file at ``path`` (YAML or JSON) < ``platform`` settings < ``overrides`` (the flags)."""
    values: dict[str, Any] = {}
    if path is not None:
        values.update({k: coerce(k, v, str(path)) for k, v in _read_file(Path(path)).items()})
    for key, value in (platform or {}).items():
        values[key] = coerce(key, value, platform_source)
    for key, value in (overrides or {}).items():
        values[key] = coerce(key, value, "command line")
    return TrainConfig(**values)


def save(config: TrainConfig, path: Path) -> None:
    from .fileio import write_text_atomic

    write_text_atomic(Path(path), json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ShadownetError(f"{path}: cannot read config ({exc.strerror})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark else ""
            raise ShadownetError(f"{path}{where}: malformed YAML ({getattr(exc, 'problem', exc)})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ShadownetError(f"{path}:{exc.lineno}: malformed JSON: {exc.msg}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ShadownetError(f"{path}: expected a mapping of settings, found {type(data).__name__}")
    return data


def _unquote(text: str) -> Any:
    # SageMaker's Python SDK JSON-encodes string hyperparameters a second time.
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "no", "off", "0"):
        return False
    raise ValueError(value)


def _describe(kind: type) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "text"}[kind]
