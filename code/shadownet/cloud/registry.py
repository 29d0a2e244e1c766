"""Every platform of ``jobs render`` and ``submit``, one declaration each: what it renders, how the rendered spec is
checked, where ``jobs/`` keeps it (and so whether it is printed as JSON or YAML), the parameters whose defaults
differ there, and how ``submit`` hands it over.

``--platform``'s choices, ``jobs render``, the files of ``jobs/`` and ``submit`` are all read from ``PLATFORMS``:
adding a platform is one ``Platform(...)`` below (with its builder, and its check, in a builder module).
``EXAMPLES``: the further files of ``jobs/``, rendered with other settings.

Not to be confused with ``platforms``: what a platform gives the container at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from . import serving_jobs, specs, submitters, trainer_jobs, training_jobs, tuning_jobs

Parameters = dict[str, str]


def _no_problems(spec: dict) -> list[str]:
    return []


@dataclass(frozen=True)
class Platform:
    name: str  # --platform NAME
    build: Callable[[Parameters, Parameters], dict]  # (parameters, hyperparameters) -> the spec, as data
    file: str  # its spec in jobs/, rendered with the defaults; .json: printed as JSON, else YAML
    submit: Callable[[submitters.Job, submitters.SubmitConfig, Callable], int]  # `shadownet submit`: the exit code
    check: Callable[[dict], list[str]] = _no_problems  # what is wrong with a rendered spec
    defaults: Mapping[str, str] = field(default_factory=dict)  # parameters whose default differs here

    @property
    def json(self) -> bool:
        return self.file.endswith(".json")


_KUBECTL = submitters.kubectl_apply

PLATFORMS: dict[str, Platform] = {platform.name: platform for platform in (
    # training (training_jobs)
    Platform("sagemaker", training_jobs.sagemaker, "sagemaker-training-job.json", submitters.sagemaker_training,
             training_jobs.check_sagemaker, {"instance_type": "ml.c7i.2xlarge", "region": "us-east-1"}),
    Platform("vertex", training_jobs.vertex, "vertex-custom-job.yaml", submitters.gcloud_create("custom-jobs"),
             specs.vertex_problems, {"instance_type": "n2-standard-8", "region": "us-central1"}),
    Platform("kubeflow", training_jobs.kubeflow, "kubeflow-tfjob.yaml", _KUBECTL, specs.kubernetes_problems),
    Platform("uai", training_jobs.uai, "uai-train-job.json", submitters.print_parameters,
             defaults={"instance_type": "1-CPU8", "region": "cn-bj2"}),
    Platform("k8s-tfrecords", training_jobs.k8s_tfrecords, "k8s-tfrecords-job.yaml", _KUBECTL,
             specs.kubernetes_problems),
    # hyperparameter tuning (tuning_jobs)
    Platform("sagemaker-tuning", tuning_jobs.sagemaker_tuning, "sagemaker-tuning-job.json",
             submitters.sagemaker_tuning, tuning_jobs.check_sagemaker_tuning,
             {"instance_type": "ml.c7i.2xlarge", "region": "us-east-1"}),
    Platform("vertex-tuning", tuning_jobs.vertex_tuning, "vertex-hyperparameter-tuning-job.yaml",
             submitters.gcloud_create("hp-tuning-jobs"), tuning_jobs.check_vertex_tuning,
             {"instance_type": "n2-standard-8", "region": "us-central1"}),
    Platform("katib", tuning_jobs.katib, "katib-experiment.yaml", _KUBECTL, tuning_jobs.check_katib),
    # Kubeflow Trainer v2 (trainer_jobs)
    Platform("kubeflow-training-runtime", trainer_jobs.training_runtime, "kubeflow-training-runtime.yaml", _KUBECTL,
             trainer_jobs.check_runtime),
    Platform("kubeflow-trainjob", trainer_jobs.trainjob, "kubeflow-trainjob.yaml", _KUBECTL,
             trainer_jobs.check_trainjob),
    # deployment (serving_jobs)
    Platform("sagemaker-endpoint", serving_jobs.sagemaker_endpoint, "sagemaker-endpoint.json",
             submitters.sagemaker_endpoint, serving_jobs.check_sagemaker_endpoint,
             {"instance_type": "ml.c5.xlarge", "region": "us-east-1"}),
    Platform("vertex-model", serving_jobs.vertex_model, "vertex-model.yaml", submitters.vertex_model,
             serving_jobs.check_vertex_model, {"instance_type": "n2-standard-4", "region": "us-central1"}),
    Platform("kserve", serving_jobs.kserve, "kserve-inferenceservice.yaml", _KUBECTL, serving_jobs.check_kserve,
             {"cpu": "2", "memory": "4Gi"}),
)}

# The further files of jobs/: file -> (platform, settings).
TWO_MACHINES = ("workers=2",)
EXAMPLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "sagemaker-training-job-2-instances.json": ("sagemaker", TWO_MACHINES),
    "vertex-custom-job-2-replicas.yaml": ("vertex", TWO_MACHINES),
    "kubeflow-tfjob-2-workers.yaml": ("kubeflow", TWO_MACHINES),
    **serving_jobs.EXAMPLES,
}
