"""``shadownet jobs render``: the job specs of each platform, filled from a few parameters and checked.

Specs are built as data, not text templates, then printed as JSON (SageMaker, UAI Train) or YAML (Vertex AI,
Kubernetes). ``jobs/`` holds each one rendered with the defaults below; ``--set key=value`` changes a
parameter, ``--set hp.<setting>=value`` a training setting. Every rendered spec is checked before it is
printed: SageMaker's request against botocore's model of CreateTrainingJob, Kubernetes objects against the
Kubernetes schemas (kubernetes-validate, when installed), the rest for the fields the platform requires.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .. import __version__
from ..choices import PLATFORMS
from ..errors import ShadownetError

KUBERNETES_VERSION = "1.33.0"  # the oldest Kubernetes still in upstream support at the time of writing

DEFAULTS: dict[str, str] = {
    "name": "shadownet",
    "image": f"REGISTRY/shadownet/train-cpu:{__version__}",
    "tfrecords_image": f"REGISTRY/shadownet/tfrecords:{__version__}",
    "bucket": "BUCKET",
    "prefix": "shadownet",
    "role": "arn:aws:iam::111122223333:role/shadownet-training",
    "instance_type": "",  # per platform: see _INSTANCE
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
_INSTANCE = {"sagemaker": "ml.c7i.2xlarge", "vertex": "n2-standard-8", "uai": "1-CPU8",
             "sagemaker-tuning": "ml.c7i.2xlarge", "vertex-tuning": "n2-standard-8"}
_REGION = {"sagemaker": "us-east-1", "vertex": "us-central1", "uai": "cn-bj2", "sagemaker-tuning": "us-east-1",
           "vertex-tuning": "us-central1"}
# The training settings of every spec: configs/cloud.yaml, the cloud default experiment.
DEFAULT_EXPERIMENT = "cloud"

# The metric lines training prints (train.py); SageMaker applies these to the log.
METRIC_DEFINITIONS = [
    {"Name": "train:loss", "Regex": r"step=\d+ loss=([0-9.eE+-]+)"},
    {"Name": "train:images_per_sec", "Regex": r"images_per_sec=([0-9.]+)"},
    {"Name": "validation:loss", "Regex": r"validation_loss=([0-9.eE+-]+)"},
    {"Name": "validation:word_accuracy", "Regex": r"word_accuracy=([0-9.]+)"},
    {"Name": "validation:char_error_rate", "Regex": r"char_error_rate=([0-9.]+)"},
]


def parameters(settings: list[str], platform: str) -> tuple[dict[str, str], dict[str, str]]:
    """``key=value`` pairs -> (parameters, hyperparameters), over the defaults."""
    from . import serving_jobs

    values = dict(DEFAULTS, **serving_jobs.DEFAULTS, instance_type=_INSTANCE.get(platform, ""),
                  region=_REGION.get(platform, ""))
    values.update(serving_jobs.PLATFORM_DEFAULTS.get(platform, {}))
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


def uris(p: dict[str, str]) -> dict[str, str]:
    base = f"s3://{p['bucket']}/{p['prefix']}".rstrip("/")
    return {"dataset": f"{base}/dataset", "records": f"{base}/records", "output": f"{base}/output",
            "checkpoints": f"{base}/checkpoints/{p['name']}", "run": f"{base}/runs/{p['name']}",
            "export": f"{base}/serving"}


def flags(hyperparameters: dict[str, str]) -> list[str]:
    return [part for key, value in hyperparameters.items() for part in (f"--{key.replace('_', '-')}", value)]


def sagemaker(p: dict[str, str], hp: dict[str, str]) -> dict:
    """CreateTrainingJob request: managed spot, checkpoints synced to S3, metrics from the log."""
    u, runtime = uris(p), int(p["max_runtime_seconds"])
    return {
        "TrainingJobName": p["name"],
        "AlgorithmSpecification": {"TrainingImage": p["image"], "TrainingInputMode": "File",
                                   "MetricDefinitions": METRIC_DEFINITIONS},
        "RoleArn": p["role"],
        "HyperParameters": dict(hp),  # SageMaker passes every value as a string
        "InputDataConfig": [{"ChannelName": "train", "InputMode": "File", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": u["records"], "S3DataDistributionType": "FullyReplicated"}}}],
        "OutputDataConfig": {"S3OutputPath": u["output"]},
        # Several instances train together; each reads its own part of the fully replicated records.
        "ResourceConfig": {"InstanceType": p["instance_type"], "InstanceCount": int(p["workers"]),
                           "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": runtime, "MaxWaitTimeInSeconds": 2 * runtime},
        "EnableManagedSpotTraining": True,
        "CheckpointConfig": {"S3Uri": u["checkpoints"], "LocalPath": "/opt/ml/checkpoints"},
        "RetryStrategy": {"MaximumRetryAttempts": 3},
    }


def vertex(p: dict[str, str], hp: dict[str, str]) -> dict:
    """CustomJobSpec for `gcloud ai custom-jobs create --config`: spot, restarts resume from AIP_CHECKPOINT_DIR."""
    bucket = f"/gcs/{p['bucket']}/{p['prefix']}".rstrip("/")
    container = {"imageUri": p["image"], "args": ["train", "--tfrecords-dir", f"{bucket}/records", *flags(hp)]}
    # Pool 0 is the chief; more machines go in pool 1 (Vertex sets TF_CONFIG for them all).
    pools = [{"machineSpec": {"machineType": p["instance_type"]}, "replicaCount": count, "containerSpec": container}
             for count in (1, int(p["workers"]) - 1) if count]
    return {
        "workerPoolSpecs": pools,
        "baseOutputDirectory": {"outputUriPrefix": f"gs://{p['bucket']}/{p['prefix']}/output/{p['name']}"},
        "scheduling": {"timeout": f"{p['max_runtime_seconds']}s", "restartJobOnWorkerRestart": True,
                       "strategy": "SPOT"},
    }


def _s3_env(p: dict[str, str]) -> list[dict]:
    env = [{"name": key, "valueFrom": {"secretKeyRef": {"name": p["credentials_secret"], "key": key,
                                                        "optional": True}}}
           for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]  # or a pod role: then leave the secret out
    if p["endpoint_url"]:
        env.append({"name": "AWS_ENDPOINT_URL", "value": p["endpoint_url"]})
    return env


# The images start as root, as SageMaker and UAI Train run them (docs/docker.md); Kubernetes pods run them
# as the images' unprivileged user, within the "restricted" Pod Security Standard (checked: _restricted).
IMAGE_USER = 10001
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": IMAGE_USER, "runAsGroup": IMAGE_USER, "fsGroup": IMAGE_USER,
                "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def container(name: str, image: str, args: list[str], p: dict[str, str]) -> dict:
    resources = {"cpu": p["cpu"], "memory": p["memory"]}
    return {"name": name, "image": image, "args": args, "env": _s3_env(p),
            "resources": {"requests": dict(resources), "limits": dict(resources)},
            "securityContext": dict(CONTAINER_SECURITY)}


def pod(containers: list[dict], **fields) -> dict:
    """A pod spec that runs its containers as IMAGE_USER, with nothing more than the restricted standard allows."""
    return {**fields, "securityContext": dict(POD_SECURITY), "containers": containers}


def kubeflow(p: dict[str, str], hp: dict[str, str]) -> dict:
    """TFJob with one worker; exit codes >= 128 (143: stopped by SIGTERM after checkpointing) are retried."""
    u = uris(p)
    args = ["train", "--tfrecords-dir", u["records"], "--model-dir", u["run"], "--export-dir", u["export"],
            *flags(hp)]
    return {
        "apiVersion": "kubeflow.org/v1", "kind": "TFJob", "metadata": {"name": p["name"]},
        "spec": {
            "runPolicy": {"backoffLimit": 5, "cleanPodPolicy": "None",
                          "activeDeadlineSeconds": int(p["max_runtime_seconds"])},
            # Several workers: the operator injects TF_CONFIG, worker 0 acts as the chief.
            "tfReplicaSpecs": {"Worker": {"replicas": int(p["workers"]), "restartPolicy": "ExitCode", "template": {
                "spec": pod([container("tensorflow", p["image"], args, p)], terminationGracePeriodSeconds=120)}}},
        },
    }


def k8s_tfrecords(p: dict[str, str], hp: dict[str, str]) -> dict:
    """A Kubernetes Indexed Job that writes the records from a dataset in the bucket, one shard per pod."""
    u, shards = uris(p), int(p["shards"])
    # An Indexed Job: pod I gets JOB_COMPLETION_INDEX=I and writes shard I of every split; the last pod to
    # finish writes the manifest. Together they write what one run with --shards N writes.
    args = ["tfrecords", "--dataset-dir", u["dataset"], "--save-dir", u["records"], "--num-shards", str(shards)]
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"{p['name']}-tfrecords"},
        "spec": {"completionMode": "Indexed", "completions": shards, "parallelism": shards,
                 "backoffLimitPerIndex": 2, "maxFailedIndexes": 0, "template": {"spec": pod(
                     [container("tfrecords", p["tfrecords_image"], args, p)], restartPolicy="Never",
                     terminationGracePeriodSeconds=60)}},
    }


def uai(p: dict[str, str], hp: dict[str, str]) -> dict:
    """What a UAI Train job is made of (it has no spec file): its console / API parameters. UAI mounts the
    data path at /data/data, appends --data_dir, --output_dir ... to the command, and uploads /data/output."""
    return {
        "job_name": p["name"],
        "node_type": p["instance_type"],
        "image": p["image"],
        "command": " ".join(["shadownet", "train", *flags(hp)]),
        "data_path": f"ufile://{p['bucket']}/{p['prefix']}/records/",
        "output_path": f"ufile://{p['bucket']}/{p['prefix']}/output/{p['name']}/",
        "max_execute_hours": max(1, int(p["max_runtime_seconds"]) // 3600),
        "region": p["region"],
    }


def _builders() -> dict:
    from . import serving_jobs, trainer_jobs, tuning_jobs

    return {"sagemaker": sagemaker, "vertex": vertex, "kubeflow": kubeflow, "uai": uai,
            "k8s-tfrecords": k8s_tfrecords, "sagemaker-tuning": tuning_jobs.sagemaker_tuning,
            "vertex-tuning": tuning_jobs.vertex_tuning, "katib": tuning_jobs.katib,
            "kubeflow-training-runtime": trainer_jobs.training_runtime, "kubeflow-trainjob": trainer_jobs.trainjob,
            **serving_jobs.BUILDERS}


# Rendered into jobs/ with the defaults, and with these settings under the second name.
EXAMPLES = {"sagemaker": "sagemaker-training-job-2-instances.json", "vertex": "vertex-custom-job-2-replicas.yaml",
            "kubeflow": "kubeflow-tfjob-2-workers.yaml"}
EXAMPLE_SETTINGS = ["workers=2"]
FILES = {"sagemaker": "sagemaker-training-job.json", "vertex": "vertex-custom-job.yaml",
         "kubeflow": "kubeflow-tfjob.yaml", "uai": "uai-train-job.json", "k8s-tfrecords": "k8s-tfrecords-job.yaml",
         "sagemaker-tuning": "sagemaker-tuning-job.json", "vertex-tuning": "vertex-hyperparameter-tuning-job.yaml",
         "katib": "katib-experiment.yaml", "kubeflow-training-runtime": "kubeflow-training-runtime.yaml",
         "kubeflow-trainjob": "kubeflow-trainjob.yaml", "sagemaker-endpoint": "sagemaker-endpoint.json",
         "vertex-model": "vertex-model.yaml", "kserve": "kserve-inferenceservice.yaml"}


def render(platform: str, settings: list[str] = ()) -> str:
    """The spec as text, checked."""
    if platform not in PLATFORMS:
        raise ShadownetError(f"platform must be one of {', '.join(PLATFORMS)}, not {platform!r}")
    p, hp = parameters(list(settings), platform)
    spec = _builders()[platform](p, hp)
    check(platform, spec)
    if FILES[platform].endswith(".json"):
        return json.dumps(spec, indent=2) + "\n"
    import yaml

    return yaml.safe_dump(spec, sort_keys=False, width=120)


def check(platform: str, spec: dict) -> None:
    from . import serving_jobs, trainer_jobs, tuning_jobs

    checks = {"sagemaker": _check_sagemaker, "vertex": vertex_problems, "kubeflow": kubernetes_problems,
              "k8s-tfrecords": kubernetes_problems, "sagemaker-tuning": tuning_jobs.check_sagemaker_tuning,
              "vertex-tuning": tuning_jobs.check_vertex_tuning, "katib": tuning_jobs.check_katib,
              "kubeflow-training-runtime": trainer_jobs.check_runtime, "kubeflow-trainjob": trainer_jobs.check_trainjob,
              **serving_jobs.CHECKS}
    problems = checks[platform](spec) if platform in checks else []
    if problems:
        raise ShadownetError(f"the rendered {platform} spec is not valid:\n  " + "\n  ".join(problems))


def botocore_problems(request: dict, operation: str) -> list[str]:
    """What botocore's model of SageMaker's ``operation`` finds wrong with ``request``."""
    import botocore.session
    from botocore.exceptions import ParamValidationError
    from botocore.validate import validate_parameters

    model = botocore.session.get_session().get_service_model("sagemaker").operation_model(operation)
    try:
        validate_parameters(request, model.input_shape)
    except ParamValidationError as exc:
        return [line.strip() for line in str(exc).splitlines()[1:] if line.strip()] or [str(exc)]
    return []


def _check_sagemaker(spec: dict) -> list[str]:
    problems = botocore_problems(spec, "CreateTrainingJob")
    if problems:
        return problems
    if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", spec["TrainingJobName"]):
        problems.append(f"TrainingJobName {spec['TrainingJobName']!r}: letters, digits and '-', at most 63")
    stop = spec["StoppingCondition"]
    if spec.get("EnableManagedSpotTraining") and stop["MaxWaitTimeInSeconds"] < stop["MaxRuntimeInSeconds"]:
        problems.append("managed spot needs MaxWaitTimeInSeconds >= MaxRuntimeInSeconds")
    return problems


def pod_specs(spec: Any, where: str = "") -> list[tuple[str, dict]]:
    """Every pod spec in a Kubernetes object (a Job's, each TFJob replica's, a JobSet's ...), with its path."""
    found = []
    if isinstance(spec, dict):
        if isinstance(spec.get("containers"), list):
            found.append((where or ".", spec))
        for key, value in spec.items():
            found += pod_specs(value, f"{where}.{key}" if where else key)
    elif isinstance(spec, list):
        for i, value in enumerate(spec):
            found += pod_specs(value, f"{where}[{i}]")
    return found


# What the "restricted" Pod Security Standard allows (kubernetes.io/docs/concepts/security/pod-security-standards).
_RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                       "projected", "secret"}


def _restricted(where: str, pod: dict) -> list[str]:
    """How ``pod`` falls short of the restricted standard, and of our rule that it names its user and group."""
    problems = []
    pod_context = pod.get("securityContext") or {}
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        if not isinstance(pod_context.get(key), int) or isinstance(pod_context.get(key), bool) \
                or pod_context[key] <= 0:
            problems.append(f"{where}.securityContext.{key}: a numeric non-root id, found {pod_context.get(key)!r}")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(f"{where}.{key}: not allowed")
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            problems.append(f"{where}.volumes.{volume.get('name')}: {', '.join(sorted(kinds))} not allowed")
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for container in pod.get(group) or []:
            at = f"{where}.{group}[{container.get('name')}]"
            context = {**pod_context, **(container.get("securityContext") or {})}  # the container's wins
            if context.get("runAsNonRoot") is not True:
                problems.append(f"{at}: runAsNonRoot must be true")
            if context.get("runAsUser") == 0:
                problems.append(f"{at}: runAsUser must not be 0")
            if (context.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
                problems.append(f"{at}: seccompProfile.type must be RuntimeDefault or Localhost")
            own = container.get("securityContext") or {}
            if own.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{at}: allowPrivilegeEscalation must be false")
            if own.get("privileged"):
                problems.append(f"{at}: privileged is not allowed")
            capabilities = own.get("capabilities") or {}
            if "ALL" not in (capabilities.get("drop") or []):
                problems.append(f"{at}: capabilities.drop must include ALL")
            if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
                problems.append(f"{at}: capabilities.add may hold only NET_BIND_SERVICE")
    return problems


def restricted_problems(spec: dict) -> list[str]:
    """How the pods of a Kubernetes object fall short of the restricted standard (see ``_restricted``)."""
    return [problem for where, pod_spec in pod_specs(spec) for problem in _restricted(where, pod_spec)]


def kubernetes_problems(spec: dict) -> list[str]:
    """A Job or TFJob: its pods within the restricted standard and, with kubernetes-validate, Kubernetes' schemas."""
    objects = [spec]
    problems = restricted_problems(spec)
    if spec.get("kind") == "TFJob":
        # The TFJob is a custom resource: its pod templates are checked as the Pods they become.
        for role, replica in spec["spec"]["tfReplicaSpecs"].items():
            if replica.get("restartPolicy") not in ("Always", "OnFailure", "Never", "ExitCode"):
                problems.append(f"tfReplicaSpecs.{role}.restartPolicy: {replica.get('restartPolicy')!r}")
            names = [c["name"] for c in replica["template"]["spec"]["containers"]]
            if "tensorflow" not in names:
                problems.append(f"tfReplicaSpecs.{role}: the training container must be named 'tensorflow'")
        name = spec.get("metadata", {}).get("name", "trial")
        objects = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-{role}"},
                    "spec": replica["template"]["spec"]} for role, replica in spec["spec"]["tfReplicaSpecs"].items()]
    try:
        import kubernetes_validate
    except ImportError:  # an optional check: the specs are also checked by the tests, where it is installed
        return problems
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{obj['kind']} {obj['metadata']['name']}: {exc.message} at "
                            f"{'.'.join(map(str, exc.path))}")
    return problems


def vertex_problems(spec: dict) -> list[str]:
    problems = []
    pools = spec.get("workerPoolSpecs") or []
    if not pools:
        problems.append("workerPoolSpecs: at least the chief pool")
    for i, pool in enumerate(pools):
        for key in ("machineSpec", "replicaCount", "containerSpec"):
            if key not in pool:
                problems.append(f"workerPoolSpecs[{i}].{key}: missing")
        if not pool.get("containerSpec", {}).get("imageUri"):
            problems.append(f"workerPoolSpecs[{i}].containerSpec.imageUri: missing")
    if spec.get("scheduling", {}).get("strategy") not in (None, "STANDARD", "SPOT", "FLEX_START", "ON_DEMAND"):
        problems.append("scheduling.strategy: STANDARD, SPOT, FLEX_START or ON_DEMAND")
    if not re.fullmatch(r"\d+(\.\d+)?s", spec.get("scheduling", {}).get("timeout", "0s")):
        problems.append("scheduling.timeout: a duration such as '86400s'")
    return problems


def parsed(text: str, platform: str) -> Any:
    """A rendered spec read back (tests and `jobs/` freshness)."""
    if FILES[platform].endswith(".json"):
        return json.loads(text)
    import yaml

    return yaml.safe_load(text)
