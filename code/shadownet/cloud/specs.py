"""What the job specs share: their URIs and flags, the Kubernetes pod and container they run in, and the checks
more than one platform's spec goes through (botocore's model of SageMaker, the restricted Pod Security Standard,
Kubernetes' schemas, Vertex AI's custom job).

A leaf: the builders (``training_jobs``, ``tuning_jobs``, ``trainer_jobs``, ``serving_jobs``) import it, it imports
none of them.
"""

from __future__ import annotations

import re
from typing import Any

KUBERNETES_VERSION = "1.33.0"  # the oldest Kubernetes still in upstream support at the time of writing


def uris(p: dict[str, str]) -> dict[str, str]:
    base = f"s3://{p['bucket']}/{p['prefix']}".rstrip("/")
    return {"dataset": f"{base}/dataset", "records": f"{base}/records", "output": f"{base}/output",
            "checkpoints": f"{base}/checkpoints/{p['name']}", "run": f"{base}/runs/{p['name']}",
            "export": f"{base}/serving"}


def flags(hyperparameters: dict[str, str]) -> list[str]:
    return [part for key, value in hyperparameters.items() for part in (f"--{key.replace('_', '-')}", value)]


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
