"""Deployment specs of ``shadownet jobs render``: the export served by ``IMAGE serve`` on each platform.

The training image is the serving image: its entry point is ``shadownet``, and ``serve`` reads where the
platform put the model (``platforms.hosting``). Each spec points at what a training job of ours leaves:

* ``sagemaker-endpoint``: CreateModel, CreateEndpointConfig and CreateEndpoint requests (one object; ``submit``
  sends them in that order). ModelDataUrl defaults to the model.tar.gz of the training job ``name``, which
  SageMaker unpacks into /opt/ml/model; the container is started with ``serve``. ``serverless=true`` gives the
  variant a ServerlessConfig instead of instances.
* ``vertex-model``: UploadModel, CreateEndpoint and DeployModel requests. artifactUri defaults to the custom
  job's AIP_MODEL_DIR (Vertex copies it and passes the copy as AIP_STORAGE_URI); the routes are those the server
  serves natively, so AIP_HEALTH_ROUTE / AIP_PREDICT_ROUTE change nothing.
* ``kserve``: an InferenceService with a custom container predictor. ``STORAGE_URI`` (a custom container's
  storageUri) makes KServe's storage initializer download the export into /mnt/models; it runs as a plain
  Deployment (RawDeployment) with the pod in the restricted Pod Security Standard.
"""

from __future__ import annotations

import re

from ..errors import ShadownetError
from . import specs, training_jobs
from .platforms import SERVING_PORT

MODEL_NAME = "shadownet"  # the export's name (export.py), which the routes below carry
HEALTH_ROUTE = f"/v1/models/{MODEL_NAME}"
PREDICT_ROUTE = f"/v1/models/{MODEL_NAME}:predict"
KSERVE_CONTAINER = "kserve-container"  # the name KServe looks for in a custom predictor
KSERVE_MODEL_DIR = "/mnt/models"  # where its storage initializer puts STORAGE_URI
VARIANT = "AllTraffic"
SAGEMAKER_REQUESTS = ("CreateModel", "CreateEndpointConfig", "CreateEndpoint")
VERTEX_REQUESTS = ("UploadModel", "CreateEndpoint", "DeployModel")

# The serving specs' settings (jobs.parameters adds them to its own; what differs per platform: its declaration
# in registry.py).
DEFAULTS = {
    "model_data": "",  # the export (default: what our training job writes): see _model_data's callers
    "endpoint_name": "",  # default: name
    "project": "PROJECT",  # Vertex AI: the Google Cloud project
    "min_replicas": "1",
    "max_replicas": "2",  # Vertex AI and KServe (SageMaker scales through Application Auto Scaling)
    "serverless": "false",  # SageMaker: a serverless endpoint
    "serverless_memory_mb": "4096",
    "serverless_concurrency": "10",
    "server_workers": "1",  # server processes in each container
    "service_account": "",  # KServe: the service account whose secret the storage initializer reads
}
# jobs/ files rendered with other settings: file -> (platform, settings)
EXAMPLES = {"sagemaker-endpoint-serverless.json": ("sagemaker-endpoint", ("serverless=true",))}


def _whole(p: dict[str, str], key: str) -> int:
    if not p[key].isdigit() or int(p[key]) < 1:
        raise ShadownetError(f"--set {key}: a whole number >= 1, not {p[key]!r}")
    return int(p[key])


def _replicas(p: dict[str, str]) -> tuple[int, int]:
    low, high = _whole(p, "min_replicas"), _whole(p, "max_replicas")
    if high < low:
        raise ShadownetError(f"--set max_replicas: at least min_replicas ({low}), not {high}")
    return low, high


def _model_data(p: dict[str, str], default: str, form: str, fits) -> str:
    if p["model_data"] and not fits(p["model_data"]):
        raise ShadownetError(f"--set model_data: {form}, not {p['model_data']!r}")
    return p["model_data"] or default


def _serve_args(p: dict[str, str], *model: str) -> list[str]:
    workers = _whole(p, "server_workers")
    return ["serve", *model, *(["--workers", str(workers)] if workers > 1 else [])]


def sagemaker_endpoint(p: dict[str, str], hp: dict[str, str]) -> dict:
    """CreateModel, CreateEndpointConfig and CreateEndpoint requests; ``serverless=true``: a serverless variant."""
    name = p["name"]
    # What the training job `name` writes: S3OutputPath/<job name>/output/model.tar.gz
    trained = f"{training_jobs.sagemaker(p, hp)['OutputDataConfig']['S3OutputPath']}/{name}/output/model.tar.gz"
    model_data = _model_data(p, trained, "the s3:// URI of a model.tar.gz",
                             lambda uri: uri.startswith("s3://") and uri.endswith(".tar.gz"))
    variant: dict = {"VariantName": VARIANT, "ModelName": name}
    if p["serverless"] not in ("true", "false"):
        raise ShadownetError(f"--set serverless: true or false, not {p['serverless']!r}")
    if p["serverless"] == "true":
        variant["ServerlessConfig"] = {"MemorySizeInMB": _whole(p, "serverless_memory_mb"),
                                       "MaxConcurrency": _whole(p, "serverless_concurrency")}
    else:
        variant.update(InstanceType=p["instance_type"], InitialInstanceCount=_whole(p, "min_replicas"),
                       InitialVariantWeight=1.0)
    return {
        "CreateModel": {
            "ModelName": name,
            # SageMaker hosting starts the image with `serve`; the model is unpacked into /opt/ml/model.
            "PrimaryContainer": {"Image": p["image"], "ModelDataUrl": model_data,
                                 "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": str(_whole(p, "server_workers"))}},
            "ExecutionRoleArn": p["role"],
        },
        "CreateEndpointConfig": {"EndpointConfigName": name, "ProductionVariants": [variant]},
        "CreateEndpoint": {"EndpointName": p["endpoint_name"] or name, "EndpointConfigName": name},
    }


def vertex_model(p: dict[str, str], hp: dict[str, str]) -> dict:
    """UploadModel (containerSpec, artifactUri), CreateEndpoint and DeployModel (dedicated resources) requests."""
    low, high = _replicas(p)
    location = f"projects/{p['project']}/locations/{p['region']}"
    endpoint_id = p["endpoint_name"] or p["name"]
    # The custom job's AIP_MODEL_DIR (its baseOutputDirectory + /model), which holds shadownet/<version>/.
    artifacts = _model_data(p, training_jobs.vertex(p, {})["baseOutputDirectory"]["outputUriPrefix"] + "/model",
                            "a gs:// folder that holds shadownet/<version>/", lambda uri: uri.startswith("gs://"))
    container = {"imageUri": p["image"], "args": _serve_args(p), "ports": [{"containerPort": SERVING_PORT}],
                 "healthRoute": HEALTH_ROUTE, "predictRoute": PREDICT_ROUTE}
    return {
        "UploadModel": {"parent": location, "modelId": p["name"], "model": {
            "displayName": p["name"], "artifactUri": artifacts, "containerSpec": container}},
        "CreateEndpoint": {"parent": location, "endpointId": endpoint_id, "endpoint": {"displayName": endpoint_id}},
        "DeployModel": {
            "endpoint": f"{location}/endpoints/{endpoint_id}",
            "deployedModel": {"model": f"{location}/models/{p['name']}", "displayName": p["name"],
                              "dedicatedResources": {"machineSpec": {"machineType": p["instance_type"]},
                                                     "minReplicaCount": low, "maxReplicaCount": high}},
            "trafficSplit": {"0": 100},  # "0": the model this request deploys
        },
    }


def _probe(path: str, period: int) -> dict:
    return {"httpGet": {"path": path, "port": SERVING_PORT}, "periodSeconds": period, "failureThreshold": 3}


def kserve(p: dict[str, str], hp: dict[str, str]) -> dict:
    """InferenceService (serving.kserve.io/v1beta1): our image as the custom predictor, model from STORAGE_URI."""
    low, high = _replicas(p)
    resources = {"cpu": p["cpu"], "memory": p["memory"]}
    container = {
        "name": KSERVE_CONTAINER, "image": p["image"], "args": _serve_args(p, "--model", KSERVE_MODEL_DIR),
        "env": [{"name": "STORAGE_URI", "value": _model_data(
            p, specs.uris(p)["export"], "a URI KServe's storage initializer reads (s3://, gs://, pvc://, https://...)",
            lambda uri: "://" in uri)}],
        "ports": [{"containerPort": SERVING_PORT, "protocol": "TCP"}],
        # The port listens at once; ready only once the model is loaded.
        "readinessProbe": _probe("/v2/health/ready", 5), "livenessProbe": _probe("/v2/health/live", 10),
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "securityContext": dict(specs.CONTAINER_SECURITY),
    }
    predictor = {"minReplicas": low, "maxReplicas": high,
                 **({"serviceAccountName": p["service_account"]} if p["service_account"] else {}),
                 **specs.pod([container])}
    # Knative (KServe's Serverless mode) refuses a pod securityContext unless its podspec-securitycontext
    # feature is on; a plain Deployment takes it as the restricted standard wants it.
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": p["name"], "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"}},
            "spec": {"predictor": predictor}}


_SAGEMAKER_NAME = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"


def check_sagemaker_endpoint(spec: dict) -> list[str]:
    """Each request against botocore's model of its operation, then what ties the three together."""
    missing = [name for name in SAGEMAKER_REQUESTS if not isinstance(spec.get(name), dict)]
    if missing:
        return [f"{name}: missing" for name in missing]
    problems = [f"{name}: {problem}" for name in SAGEMAKER_REQUESTS for problem in specs.botocore_problems(
        spec[name], name)]
    if problems:
        return problems
    model, config, endpoint = (spec[name] for name in SAGEMAKER_REQUESTS)
    for where, value in (("ModelName", model["ModelName"]), ("EndpointConfigName", config["EndpointConfigName"]),
                         ("EndpointName", endpoint["EndpointName"])):
        if not re.fullmatch(_SAGEMAKER_NAME, value):
            problems.append(f"{where} {value!r}: letters, digits and '-', at most 63")
    url = model.get("PrimaryContainer", {}).get("ModelDataUrl", "")
    if not (url.startswith("s3://") and url.endswith(".tar.gz")):
        problems.append(f"CreateModel.PrimaryContainer.ModelDataUrl {url!r}: the s3:// URI of a model.tar.gz")
    import botocore.session

    instance_types = botocore.session.get_session().get_service_model("sagemaker").shape_for(
        "ProductionVariantInstanceType").enum
    for variant in config["ProductionVariants"]:
        at = f"CreateEndpointConfig.ProductionVariants[{variant['VariantName']}]"
        if variant.get("ModelName") != model["ModelName"]:
            problems.append(f"{at}.ModelName: {model['ModelName']!r}, the model CreateModel makes")
        serverless = variant.get("ServerlessConfig")
        if ("InstanceType" in variant) == bool(serverless):
            problems.append(f"{at}: either InstanceType or ServerlessConfig")
        if "InstanceType" in variant and variant["InstanceType"] not in instance_types:
            problems.append(f"{at}.InstanceType {variant['InstanceType']!r}: not a SageMaker hosting instance type")
        if serverless and serverless["MemorySizeInMB"] not in range(1024, 6145, 1024):
            problems.append(f"{at}.ServerlessConfig.MemorySizeInMB: 1024, 2048, ... 6144, not "
                            f"{serverless['MemorySizeInMB']}")
        if serverless and not 1 <= serverless["MaxConcurrency"] <= 200:
            problems.append(f"{at}.ServerlessConfig.MaxConcurrency: 1 to 200, not {serverless['MaxConcurrency']}")
    if endpoint["EndpointConfigName"] != config["EndpointConfigName"]:
        problems.append(f"CreateEndpoint.EndpointConfigName: {config['EndpointConfigName']!r}, the config made")
    return problems


def check_vertex_model(spec: dict) -> list[str]:
    """Each request as Vertex AI's own message (google-cloud-aiplatform, when installed), and their links."""
    missing = [name for name in VERTEX_REQUESTS if not isinstance(spec.get(name), dict)]
    if missing:
        return [f"{name}: missing" for name in missing]
    problems = _aiplatform_problems(spec)
    if problems:
        return problems
    upload, deploy = spec["UploadModel"], spec["DeployModel"]
    model, container = upload.get("model", {}), upload.get("model", {}).get("containerSpec", {})
    model_id = upload.get("modelId", "")
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,62}", model_id):
        problems.append(f"UploadModel.modelId {model_id!r}: up to 63 of [a-z0-9_-], a letter or _ first")
    if not str(model.get("artifactUri", "")).startswith("gs://"):
        problems.append(f"UploadModel.model.artifactUri {model.get('artifactUri')!r}: a gs:// folder")
    if not container.get("imageUri"):
        problems.append("UploadModel.model.containerSpec.imageUri: missing")
    for key, route in (("healthRoute", HEALTH_ROUTE), ("predictRoute", PREDICT_ROUTE)):
        if not str(container.get(key, "")).startswith("/"):
            problems.append(f"UploadModel.model.containerSpec.{key}: a path such as {route!r}")
    if [port.get("containerPort") for port in container.get("ports", [])] != [SERVING_PORT]:
        problems.append(f"UploadModel.model.containerSpec.ports: the one port the server listens on, {SERVING_PORT}")
    endpoint_id = spec["CreateEndpoint"].get("endpointId", "")
    if not re.fullmatch(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?|[1-9][0-9]{0,8}", endpoint_id):
        problems.append(f"CreateEndpoint.endpointId {endpoint_id!r}: [a-z0-9-] starting with a letter, or digits")
    resources = deploy.get("deployedModel", {}).get("dedicatedResources", {})
    if not resources.get("machineSpec", {}).get("machineType"):
        problems.append("DeployModel.deployedModel.dedicatedResources.machineSpec.machineType: missing")
    if resources.get("maxReplicaCount", 0) < resources.get("minReplicaCount", 1):
        problems.append("DeployModel.deployedModel.dedicatedResources: maxReplicaCount below minReplicaCount")
    if not deploy.get("deployedModel", {}).get("model", "").endswith(f"/models/{model_id}"):
        problems.append(f"DeployModel.deployedModel.model: the model UploadModel makes (.../models/{model_id})")
    if not deploy.get("endpoint", "").endswith(f"/endpoints/{endpoint_id}"):
        problems.append(f"DeployModel.endpoint: the endpoint CreateEndpoint makes (.../endpoints/{endpoint_id})")
    return problems


def _aiplatform_problems(spec: dict) -> list[str]:
    try:
        from google.cloud.aiplatform_v1 import types
        from google.protobuf import json_format
    except ImportError:  # an optional check: the tests, where google-cloud-aiplatform is installed, make it
        return []
    problems = []
    for name in VERTEX_REQUESTS:
        message = getattr(types, f"{name}Request")
        try:
            json_format.ParseDict(spec[name], message.pb(message()), ignore_unknown_fields=False)
        except json_format.ParseError as exc:
            problems.append(f"{name}: {str(exc).splitlines()[0]}")
    return problems


def check_kserve(spec: dict) -> list[str]:
    """The predictor's pod against the restricted standard and, as the Pod it becomes, Kubernetes' schemas; then
    what KServe and ``serve`` expect of the container."""
    predictor = spec.get("spec", {}).get("predictor", {})
    kserve_only = ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "containerConcurrency", "timeout",
                   "canaryTrafficPercent", "logger", "batcher")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{spec.get('metadata', {}).get('name')}-predictor"},
           "spec": {key: value for key, value in predictor.items() if key not in kserve_only}}
    # kubernetes_problems checks the restricted standard too, where its paths would be the Pod's: keep its schema's
    problems = specs.restricted_problems(spec) + [p for p in specs.kubernetes_problems(pod) if p.startswith("Pod ")]
    containers = predictor.get("containers") or []
    if [c.get("name") for c in containers] != [KSERVE_CONTAINER]:
        return problems + [f"spec.predictor.containers: one container, named {KSERVE_CONTAINER!r}"]
    container = containers[0]
    args = container.get("args") or []
    if args[:3] != ["serve", "--model", KSERVE_MODEL_DIR]:
        problems.append(f"spec.predictor.containers[{KSERVE_CONTAINER}].args: serve --model {KSERVE_MODEL_DIR} first")
    if not any(e.get("name") == "STORAGE_URI" and "://" in str(e.get("value")) for e in container.get("env", [])):
        problems.append(f"spec.predictor.containers[{KSERVE_CONTAINER}].env: STORAGE_URI, the export's URI")
    if [port.get("containerPort") for port in container.get("ports", [])] != [SERVING_PORT]:
        problems.append(f"spec.predictor.containers[{KSERVE_CONTAINER}].ports: one, {SERVING_PORT}")
    for probe, path in (("readinessProbe", "/v2/health/ready"), ("livenessProbe", "/v2/health/live")):
        if container.get(probe, {}).get("httpGet", {}).get("path") != path:
            problems.append(f"spec.predictor.containers[{KSERVE_CONTAINER}].{probe}: GET {path}")
    if predictor.get("maxReplicas", 0) < predictor.get("minReplicas", 1):
        problems.append("spec.predictor: maxReplicas below minReplicas")
    return problems

