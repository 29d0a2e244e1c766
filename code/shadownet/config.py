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

from . import choices
from .errors import ShadownetError
from .geometry import FIXED_WIDTH, HEIGHT, MIN_WIDTH, WIDTH_DOWNSAMPLE

# The settings that take one of a list of values (the lists live in choices.py).
CHOICES: dict[str, tuple[str, ...]] = {
    "model": choices.MODELS,
    "input_mode": choices.INPUT_MODES,
    "optimizer": choices.OPTIMIZERS,
    "lr_schedule": choices.LR_SCHEDULES,
    "mixed_precision": choices.MIXED_PRECISION,
    "best_metric": choices.BEST_METRICS,
    "init_checkpoint": choices.CHECKPOINTS,
    "freeze": choices.FREEZE,
    "hpo_metric": choices.HPO_METRICS,
    "regularization": choices.REGULARIZATION,
}
# What a fine-tuned run takes from the run it starts from (learn/finetune.py): what shapes the weights and
# what the weights learned to read.
ARCHITECTURE = ("model", "input_mode", "max_width")

# Each setting's description: `train --help` shows it, and docs/training.md's settings table is generated from it
# (settings_table; `make docs`, checked by tests/test_configs.py).
HELP: dict[str, str] = {
    "model": "the architecture: shadownet_small (a quarter of the original's compute: more steps in a CPU budget) "
             "or shadownet (the original's widths; for large datasets and GPUs); for page records, a detector: "
             "dbnet_small (taken when model names a recogniser by default) or dbnet (ResNet-18 widths; GPUs)",
    "input_mode": f"keep_ratio: height {HEIGHT}, width by aspect ratio, batches bucketed by width; fixed: "
                  f"{FIXED_WIDTH}x{HEIGHT} as the original",
    "max_width": f"training images wider than this are squeezed to it (keep_ratio); a multiple of "
                 f"{WIDTH_DOWNSAMPLE}, at least {MIN_WIDTH}",
    "page_size": "detectors: the side of the square crops training reads, and the longer side validation scales "
                 "a page to (padded to a multiple of 32); a multiple of 32, at least 64",
    "init_from": "fine-tune: start from the weights of this run (a --model-dir: folder, s3:// or gs:// prefix); "
                 "its model, input_mode and max_width are taken, the output layer is rebuilt by character when "
                 "the charsets differ, the optimizer starts afresh; empty: from scratch",
    "init_checkpoint": "which checkpoint of init_from",
    "freeze": "conv: train only the recurrent and output layers (batch-norm statistics stay fixed)",
    "train_steps": "stop after this many steps (a rerun resumes and stops at exactly this step)",
    "max_train_seconds": "time budget: stop early enough to evaluate the final state within it, and fit the "
                         "learning-rate schedule (warm-up, cosine decay) to the steps that fit; 0: no limit",
    "batch_size": "examples per replica (per GPU); a step trains on the global batch of batch_size x replicas",
    "optimizer": "adam, or adadelta (the original's; it wants a learning rate near 1)",
    "learning_rate": "peak learning rate, reached after the warm-up",
    "scale_learning_rate": "multiply learning_rate by the number of replicas (linear scaling for the larger "
                           "global batch)",
    "lr_schedule": "cosine: decay from the peak to a small floor by the last step; constant: the peak throughout",
    "warmup_steps": "steps of linear warm-up from 0 (capped at a tenth of a time-boxed run)",
    "clip_norm": "clip gradients to this global norm; 0: no clipping",
    "weight_decay": "decoupled weight decay on the kernels (Adam only), in place of the regularization "
                    "regime's; 0: the regime's",
    "regularization": "none: no dropout, weight decay or added augmentation; auto: they grow with the epochs the "
                      "run plans (none below 4, light, medium from 12, strong from 30), switched on at the first "
                      "validation with CER <= 0.5 (not measured enough to be the default yet); or light, medium, "
                      "strong",
    "shuffle_buffer": "training examples shuffled together",
    "augment": "random augmentation of training images: a horizontal stretch, contrast, brightness, noise, and "
               "what the regularization regime adds (slant, rotation, vertical shift and scale, blur, inversion)",
    "seed": "seed of initialisation, shuffling and augmentation",
    "mixed_precision": "auto: bfloat16 on GPUs of compute capability >= 8.0 and on CPUs with AMX or "
                       "AVX512-BF16, float16 (with loss scaling) on older GPUs, else off (float32)",
    "xla": "compile the train step with XLA (one device only)",
    "worker_timeout_seconds": "several workers: fail a collective that waits longer than this for the others "
                              "(0: off; a worker that dies or freezes is noticed by TensorFlow's heartbeats "
                              "within seconds anyway). Costs one thread per collective, kept this long",
    "log_every": "print a training line every this many steps",
    "eval_every": "evaluate on the validation split every this many steps",
    "eval_every_seconds": "also evaluate when this many seconds have passed since the last evaluation; "
                          "0: a tenth of max_train_seconds when that is set, else never",
    "eval_max_samples": "validation samples per evaluation; 0: the whole validation split",
    "checkpoint_every": "checkpoint every this many steps (and at the end, and on SIGTERM)",
    "keep_checkpoints": "checkpoints kept in checkpoints/ (the best one is kept apart in best/)",
    "best_metric": "what makes a checkpoint the best one (a detector's: hmean, precision or recall; hmean where "
                   "a recogniser's metric is left at its default)",
    "hpo_metric": "the validation metric reported to a tuner's metric file (Vertex AI's cloudml-hypertune file)",
}


@dataclass(frozen=True)
class TrainConfig:
    # -- what is trained
    model: str = "shadownet_small"  # a quarter of the original's compute: more steps in a CPU budget
    input_mode: str = "keep_ratio"
    max_width: int = 256  # training images wider than this are squeezed to it (keep_ratio mode)
    page_size: int = 640  # detectors: training crops of page_size x page_size; validation's longer side
    # -- where the weights start: empty, from scratch; else a run folder or s3:// prefix (fine-tuning)
    init_from: str = ""
    init_checkpoint: str = "best"
    freeze: str = "none"
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
    weight_decay: float = 0.0  # 0: the regularization regime's
    regularization: str = "none"  # learn/regime.py: auto (from the planned epochs), or a regime by name
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
    hpo_metric: str = "word_accuracy"  # the tag of the reports to CLOUD_ML_HP_METRIC_FILE (Vertex AI tuning)

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
        if self.page_size < 64 or self.page_size % 32:
            raise ShadownetError(f"page_size must be a multiple of 32 and at least 64, not {self.page_size}")
        if self.max_width < MIN_WIDTH or self.max_width % WIDTH_DOWNSAMPLE:
            raise ShadownetError(f"max_width must be a multiple of {WIDTH_DOWNSAMPLE} and at least {MIN_WIDTH}, "
                                 f"not {self.max_width}")

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


def experiment(name: str) -> Path:
    """``configs/NAME.yaml``: one experiment's settings, from the package (a wheel, an image) or the checkout."""
    from importlib import resources

    packaged = resources.files("shadownet").joinpath("configs", f"{name}.yaml")
    if packaged.is_file():
        return Path(str(packaged))
    source = Path(__file__).resolve().parents[2] / "configs" / f"{name}.yaml"  # an editable install
    if source.is_file():
        return source
    raise ShadownetError(f"no experiment config {name!r} (configs/{name}.yaml)")


def hyperparameters(path: Path) -> dict[str, str]:
    """The settings a config file sets, checked, as the strings a platform's hyperparameters hold."""
    values = {key: coerce(key, value, str(path)) for key, value in _read_file(Path(path)).items()}
    TrainConfig(**values)  # values that fit their types but not the rules fail here, not in the job
    return {key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in values.items()}


def explicit(path: Path | None = None, overrides: dict[str, Any] | None = None,
             platform: dict[str, Any] | None = None) -> frozenset[str]:
    """The settings given (by the file, the platform or the flags), as opposed to left at their defaults."""
    return frozenset(_read_file(Path(path)) if path is not None else ()) | frozenset(platform or ()) \
        | frozenset(overrides or ())


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


if __name__ == "__main__":
    # python -m shadownet.config FILE [KEY=VALUE ...]: the file's settings (and overrides) as SageMaker's
    # hyperparameters.json, all strings (make train-local writes it so).
    import sys

    try:
        merged = hyperparameters(Path(sys.argv[1]))
        for item in sys.argv[2:]:
            key, _, value = item.partition("=")
            coerce(key, value, "command line")
            merged[key] = value
        print(json.dumps(merged))
    except ShadownetError as exc:
        sys.exit(f"shadownet: error: {exc}")


# -- docs/training.md's settings table, generated from the settings themselves -------------------------------
TABLE_BEGIN = "<!-- settings table: generated from code/shadownet/config.py by `make docs`; do not edit -->"
TABLE_END = "<!-- end of the settings table -->"


def _markdown_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"`{value}`" if value else "(empty)"
    return f"{value:g}" if isinstance(value, float) else str(value)


def settings_table() -> str:
    """Every setting of TrainConfig as a Markdown table: its default, its values (choices or type), HELP."""
    rows = ["| setting | default | values | meaning |", "|---|---|---|---|"]
    for field in fields(TrainConfig):
        default = getattr(TrainConfig, field.name)
        values = ", ".join(f"`{c}`" for c in CHOICES[field.name]) if field.name in CHOICES \
            else type(default).__name__
        rows.append(f"| `{field.name}` | {_markdown_value(default)} | {values} | {HELP[field.name]} |")
    return "\n".join([TABLE_BEGIN, *rows, TABLE_END]) + "\n"


def with_settings_table(text: str) -> str:
    """``text`` (a Markdown page holding the table's markers) with the table between them regenerated."""
    begin, end = text.find(TABLE_BEGIN), text.find(TABLE_END)
    if begin < 0 or end < begin:
        raise ShadownetError(f"the page holds no settings table markers ({TABLE_BEGIN!r} ... {TABLE_END!r})")
    return text[:begin] + settings_table() + text[end + len(TABLE_END) + 1:]

