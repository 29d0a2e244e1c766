"""Each training platform's container contract, read in one place and turned into paths and settings.

Only the CLI calls ``detect``, with the real environment and ``/``; everything below the CLI sees plain
paths and a typed config. Precedence, highest first: explicit command-line flags, then what the
platform provides (its paths, SageMaker's hyperparameters), then the ``--config`` file, then the
defaults.

* SageMaker: ``<image> train``; records in the ``train`` channel; hyperparameters (all strings) in
  ``/opt/ml/input/config/hyperparameters.json``; the run (checkpoints) in ``/opt/ml/checkpoints``, which
  the platform syncs; the export in ``/opt/ml/model``; the failure reason in ``/opt/ml/output/failure``.
* Vertex AI: ``AIP_CHECKPOINT_DIR``, ``AIP_MODEL_DIR``, ``AIP_TENSORBOARD_LOG_DIR`` (``gs://`` URIs, read
  through the ``/gcs/<bucket>`` mount); the records come from the job's args.
* UCloud UAI Train: ``--data_dir`` holds the records; ``--output_dir`` is uploaded after the job and
  downloaded back before a restarted one, so the run and the export live under it.
* Kubernetes / Kubeflow: paths from the args; the failure reason to ``/dev/termination-log``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .errors import ShadownetError

# The first 1024 characters become SageMaker's FailureReason; Kubernetes reads 4 KB of termination-log.
FAILURE_LIMITS = {"sagemaker": 1024, "kubernetes": 4096}
UAI_FLAGS = ("work_dir", "data_dir", "output_dir", "log_dir", "num_gpus")


@dataclass(frozen=True)
class Platform:
    name: str  # sagemaker, vertex, uai, kubernetes or local
    tfrecords_dir: str | None = None
    model_dir: str | None = None  # the training run: config, checkpoints (resume reads them here)
    export_dir: str | None = None  # the SavedModel written after training
    log_dir: str | None = None  # TensorBoard; None: <model_dir>/logs
    report_dir: str | None = None  # the evaluation report written after training
    settings: Mapping[str, str] = field(default_factory=dict)  # training settings the platform passes
    failure_file: Path | None = None  # where the platform reads why a job failed


def detect(env: Mapping[str, str], root: Path = Path("/"), uai: Mapping[str, str] | None = None) -> Platform:
    """The platform this process runs under. ``uai``: the UAI Train flags found on the command line."""
    root = Path(root)
    if (root / "opt/ml/input/config/hyperparameters.json").is_file() or "SM_TRAINING_ENV" in env \
            or "TRAINING_JOB_NAME" in env:
        return _sagemaker(env, root)
    if any(key in env for key in ("AIP_MODEL_DIR", "AIP_CHECKPOINT_DIR", "AIP_TENSORBOARD_LOG_DIR")):
        return _vertex(env)
    if uai and any(uai.get(key) for key in UAI_FLAGS):
        return _uai(uai)
    if "KUBERNETES_SERVICE_HOST" in env:
        log = root / "dev/termination-log"
        return Platform("kubernetes", failure_file=log if log.exists() else None)
    return Platform("local")


def _sagemaker(env: Mapping[str, str], root: Path) -> Platform:
    ml = root / "opt/ml"
    checkpoints = ml / "checkpoints"
    checkpoint_config = ml / "input/config/checkpointconfig.json"
    if checkpoint_config.is_file():
        checkpoints = Path(_read_json(checkpoint_config).get("LocalPath") or checkpoints)
    return Platform(
        "sagemaker",
        tfrecords_dir=env.get("SM_CHANNEL_TRAIN") or str(ml / "input/data/train"),
        model_dir=str(checkpoints),
        export_dir=env.get("SM_MODEL_DIR") or str(ml / "model"),
        report_dir=env.get("SM_OUTPUT_DATA_DIR") or str(ml / "output/data"),
        settings=_hyperparameters(ml / "input/config/hyperparameters.json"),
        failure_file=ml / "output/failure",
    )


def _hyperparameters(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    values = _read_json(path)
    # The SageMaker SDK adds its own bookkeeping entries (sagemaker_program, sagemaker_region, ...).
    return {key: value for key, value in values.items() if not key.startswith("sagemaker_")}


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ShadownetError(f"{path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ShadownetError(f"{path}:{exc.lineno}: malformed JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ShadownetError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _vertex(env: Mapping[str, str]) -> Platform:
    return Platform(
        "vertex",
        model_dir=gcs_path(env.get("AIP_CHECKPOINT_DIR")),
        export_dir=gcs_path(env.get("AIP_MODEL_DIR")),
        log_dir=gcs_path(env.get("AIP_TENSORBOARD_LOG_DIR")),
    )


def gcs_path(uri: str | None) -> str | None:
    """``gs://bucket/path`` -> ``/gcs/bucket/path``, where Vertex AI mounts its buckets (Cloud Storage FUSE)."""
    if not uri:
        return None
    return "/gcs/" + uri[len("gs://"):] if uri.startswith("gs://") else uri


def _uai(flags: Mapping[str, str]) -> Platform:
    output = flags.get("output_dir")
    return Platform(
        "uai",
        tfrecords_dir=flags.get("data_dir") or None,
        model_dir=f"{output.rstrip('/')}/run" if output else None,
        export_dir=f"{output.rstrip('/')}/export" if output else None,
        log_dir=flags.get("log_dir") or None,
        report_dir=output or None,
    )


def pick(flag: str | Path | None, provided: str | None, option: str, platform: Platform) -> str:
    """An explicit flag wins over the platform's path; one of them must be there."""
    if flag is not None:
        return str(flag)
    if provided:
        return provided
    where = "" if platform.name == "local" else f" ({platform.name} does not provide it)"
    raise ShadownetError(f"{option} is required{where}")


def write_failure(platform: Platform, message: str) -> None:
    """Leave the reason where the platform shows it; best effort, it must not hide the error itself."""
    if platform.failure_file is None:
        return
    limit = FAILURE_LIMITS["sagemaker" if platform.name == "sagemaker" else "kubernetes"]
    try:
        platform.failure_file.parent.mkdir(parents=True, exist_ok=True)
        platform.failure_file.write_text(message[:limit], encoding="utf-8")
    except OSError:
        pass
