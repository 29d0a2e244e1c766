"""``shadownet jobs render``: the job specs of each platform, filled from a few parameters and checked.

Specs are built as data, not text templates, then printed as JSON (SageMaker, UAI Train) or YAML (Vertex AI,
Kubernetes). ``jobs/`` holds each one rendered with the defaults below; ``--set key=value`` changes a
parameter, ``--set hp.<setting>=value`` a training setting. Every rendered spec is checked before it is
printed: SageMaker's request against botocore's model of CreateTrainingJob, Kubernetes objects against the
Kubernetes schemas (kubernetes-validate, when installed), the rest for the fields the platform requires.

Which platforms there are, and what each one renders, how it is checked, where ``jobs/`` keeps it and how
``submit`` hands it over: one declaration each in ``registry``.
"""

from __future__ import annotations

import json
from typing import Any

from .. import __version__
from ..errors import ShadownetError
from . import registry, serving_jobs
from .registry import Platform

# Names the tests (and hypertune's notes) have always found here; their homes are the leaf modules below.
from .specs import POD_SECURITY, botocore_problems, pod_specs  # noqa: F401
from .training_jobs import METRIC_DEFINITIONS  # noqa: F401

DEFAULTS: dict[str, str] = {
    "name": "shadownet",
    "image": f"REGISTRY/shadownet/train-cpu:{__version__}",
    "tfrecords_image": f"REGISTRY/shadownet/tfrecords:{__version__}",
    "bucket": "BUCKET",
    "prefix": "shadownet",
    "role": "arn:aws:iam::111122223333:role/shadownet-training",
    "instance_type": "",  # per platform: its declaration in registry.py
    "region": "",
    "max_runtime_seconds": "86400",
    "endpoint_url": "",  # S3-compatible store for the Kubernetes jobs (MinIO, Ceph)
    "credentials_secret": "shadownet-s3",  # Kubernetes secret with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    "cpu": "8",
    "memory": "16Gi",
    "workers": "1",  # training machines (MultiWorkerMirroredStrategy when more than one)
    "shards": "4",  # k8s-tfrecords: pods of the Indexed Job, one shard of every split each
    "max_trials": "12",  # tuning jobs: trials in all
    "parallel_trials": "3",  # tuning jobs: trials at once
}
# The training settings of every spec: configs/cloud.yaml, the cloud default experiment.
DEFAULT_EXPERIMENT = "cloud"

# The registry's names and files (registry.PLATFORMS is the table itself, which render, check and parsed read), and
# the examples of jobs/ rendered with EXAMPLE_SETTINGS: platform -> file.
PLATFORMS = tuple(registry.PLATFORMS)
FILES = {name: platform.file for name, platform in registry.PLATFORMS.items()}
EXAMPLE_SETTINGS = list(registry.TWO_MACHINES)
EXAMPLES = {name: file for file, (name, settings) in registry.EXAMPLES.items() if list(settings) == EXAMPLE_SETTINGS}


def declaration(name: str) -> Platform:
    """Platform ``name``'s declaration (registry.py)."""
    if name not in registry.PLATFORMS:
        raise ShadownetError(f"platform must be one of {', '.join(registry.PLATFORMS)}, not {name!r}")
    return registry.PLATFORMS[name]


def parameters(settings: list[str], platform: str) -> tuple[dict[str, str], dict[str, str]]:
    """``key=value`` pairs -> (parameters, hyperparameters), over the defaults."""
    declared = registry.PLATFORMS.get(platform)
    values = dict(DEFAULTS, **serving_jobs.DEFAULTS, **(declared.defaults if declared else {}))
    from ..config import coerce, experiment
    from ..config import hyperparameters as settings_of

    hyperparameters = settings_of(experiment(DEFAULT_EXPERIMENT))
    for item in settings:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ShadownetError(f"--set {item!r}: expected key=value")
        if key.startswith("hp."):
            coerce(key[3:], value, f"--set {key}")  # an unknown or ill-typed setting fails here, not in the job
            hyperparameters[key[3:]] = value
        elif key in values:
            values[key] = value
        else:
            raise ShadownetError(f"--set {key}: unknown parameter; known: {', '.join(sorted(values))}, hp.<setting>")
    for key in ("max_runtime_seconds", "workers", "shards", "max_trials", "parallel_trials"):
        if not values[key].isdigit() or int(values[key]) < 1:
            raise ShadownetError(f"--set {key}: a whole number >= 1, not {values[key]!r}")
    return values, hyperparameters


# images.json (`make push`): {"tfrecords": {"reference": "host/ns/shadownet/tfrecords@sha256:...", ...}, ...}
IMAGE_FIELDS = {"image": ("train-cpu", "train-gpu"), "tfrecords_image": ("tfrecords",)}


def image_settings(path) -> list[str]:
    """The ``image=`` / ``tfrecords_image=`` settings of an images file: each pushed image pinned by its digest
    (the training image: the CPU one, else the GPU one)."""
    from pathlib import Path

    from .platforms import read_json

    images = read_json(Path(path))
    settings = []
    for field, names in IMAGE_FIELDS.items():
        name = next((n for n in names if n in images), None)
        if name is None:
            continue
        reference = images[name].get("reference") if isinstance(images[name], dict) else None
        if not isinstance(reference, str) or "@sha256:" not in reference:
            raise ShadownetError(f"{path}: {name}: expected a \"reference\" pinned by digest (NAME@sha256:...), "
                                 f"found {reference!r}")
        settings.append(f"{field}={reference}")
    if not settings:
        raise ShadownetError(f"{path}: names none of {', '.join(n for names in IMAGE_FIELDS.values() for n in names)}")
    return settings


def files() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every file of ``jobs/``: file -> (platform, settings); each platform's spec with the defaults, then the
    examples."""
    return {**{p.file: (p.name, ()) for p in registry.PLATFORMS.values()}, **registry.EXAMPLES}


def render(platform: str, settings: list[str] = ()) -> str:
    """The spec as text, checked."""
    declared = declaration(platform)
    p, hp = parameters(list(settings), platform)
    spec = declared.build(p, hp)
    check(platform, spec)
    if declared.json:
        return json.dumps(spec, indent=2) + "\n"
    import yaml

    return yaml.safe_dump(spec, sort_keys=False, width=120)


def check(platform: str, spec: dict) -> None:
    problems = registry.PLATFORMS[platform].check(spec)
    if problems:
        raise ShadownetError(f"the rendered {platform} spec is not valid:\n  " + "\n  ".join(problems))


def parsed(text: str, platform: str) -> Any:
    """A rendered spec read back (tests and `jobs/` freshness)."""
    if registry.PLATFORMS[platform].json:
        return json.loads(text)
    import yaml

    return yaml.safe_load(text)
