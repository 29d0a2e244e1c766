"""Deployment specs (SageMaker endpoint, Vertex AI model, KServe InferenceService): rendered into jobs/, checked
against the platforms' own models and schemas, bad settings refused; submit against moto's SageMaker API."""

from __future__ import annotations

import copy
import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import REPO, run_cli
from shadownet.cloud import jobs, serving_jobs
from shadownet.errors import ShadownetError
from test_tuning import _strict  # the CRD schemas validated as the API server does

ROLE = "role=arn:aws:iam::123456789012:role/test"


def _render(platform: str, *settings: str):
    return jobs.parsed(jobs.render(platform, list(settings)), platform)


@pytest.mark.parametrize("name", sorted(serving_jobs.EXAMPLES))
def test_jobs_folder_holds_the_deployment_examples(name):
    platform, settings = serving_jobs.EXAMPLES[name]
    assert (REPO / "jobs" / name).read_text() == jobs.render(platform, list(settings)), (
        f"jobs/{name} is stale: shadownet jobs render --platform {platform} --set {' --set '.join(settings)} --out it")


# --- SageMaker ------------------------------------------------------------------------------------------------

def test_sagemaker_endpoint_requests_pass_botocore_and_serve_the_training_jobs_model():
    spec = jobs.parsed((REPO / "jobs" / "sagemaker-endpoint.json").read_text(), "sagemaker-endpoint")
    assert list(spec) == ["CreateModel", "CreateEndpointConfig", "CreateEndpoint"]
    for operation, request in spec.items():
        assert jobs.botocore_problems(request, operation) == [], operation
    training = _render("sagemaker")
    model = spec["CreateModel"]
    assert model["PrimaryContainer"]["Image"] == training["AlgorithmSpecification"]["TrainingImage"]
    # where SageMaker puts the training job's /opt/ml/model: S3OutputPath/<job>/output/model.tar.gz
    assert model["PrimaryContainer"]["ModelDataUrl"] == (
        f"{training['OutputDataConfig']['S3OutputPath']}/{training['TrainingJobName']}/output/model.tar.gz")
    assert model["PrimaryContainer"]["Environment"] == {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    assert model["ExecutionRoleArn"] == jobs.DEFAULTS["role"]
    assert spec["CreateEndpointConfig"]["ProductionVariants"] == [
        {"VariantName": "AllTraffic", "ModelName": "shadownet", "InstanceType": "ml.c5.xlarge",
         "InitialInstanceCount": 1, "InitialVariantWeight": 1.0}]
    assert spec["CreateEndpoint"] == {"EndpointName": "shadownet", "EndpointConfigName": "shadownet"}
    named = _render("sagemaker-endpoint", "name=ocr-v2", "endpoint_name=ocr", "min_replicas=3",
                    "model_data=s3://b/m/model.tar.gz", "server_workers=4")
    assert named["CreateEndpoint"] == {"EndpointName": "ocr", "EndpointConfigName": "ocr-v2"}
    assert named["CreateEndpointConfig"]["ProductionVariants"][0]["InitialInstanceCount"] == 3
    assert named["CreateModel"]["PrimaryContainer"]["ModelDataUrl"] == "s3://b/m/model.tar.gz"
    assert named["CreateModel"]["PrimaryContainer"]["Environment"]["SAGEMAKER_MODEL_SERVER_WORKERS"] == "4"


@pytest.mark.parametrize("change, problem", [
    (lambda s: s["CreateEndpointConfig"]["ProductionVariants"][0].update(InitialInstanceCount="one"),
     "CreateEndpointConfig: Invalid type for parameter ProductionVariants[0].InitialInstanceCount"),
    (lambda s: s["CreateModel"].update(ModelDataUrl="s3://b/model.tar.gz"),
     'CreateModel: Unknown parameter in input: "ModelDataUrl"'),
    (lambda s: s["CreateEndpointConfig"]["ProductionVariants"][0].update(ModelName="other"),
     "ModelName: 'shadownet', the model CreateModel makes"),
    (lambda s: s["CreateEndpointConfig"]["ProductionVariants"][0].update(InstanceType="ml.c5.huge"),
     "'ml.c5.huge': not a SageMaker hosting instance type"),
    (lambda s: s["CreateEndpoint"].update(EndpointConfigName="other"), "CreateEndpoint.EndpointConfigName"),
    (lambda s: s["CreateEndpoint"].update(EndpointName="no_underscores"), "EndpointName 'no_underscores'"),
    (lambda s: s.pop("CreateEndpoint"), "CreateEndpoint: missing"),
])
def test_a_broken_sagemaker_endpoint_spec_is_refused(change, problem):
    spec = _render("sagemaker-endpoint")
    change(spec)
    with pytest.raises(ShadownetError, match="the rendered sagemaker-endpoint spec is not valid") as refused:
        jobs.check("sagemaker-endpoint", spec)
    assert problem in str(refused.value)


def test_serverless_endpoint_has_a_serverless_variant_and_no_instances():
    spec = _render("sagemaker-endpoint", "serverless=true", "serverless_memory_mb=2048",
                   "serverless_concurrency=20")
    assert jobs.botocore_problems(spec["CreateEndpointConfig"], "CreateEndpointConfig") == []
    assert spec["CreateEndpointConfig"]["ProductionVariants"] == [
        {"VariantName": "AllTraffic", "ModelName": "shadownet",
         "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 20}}]
    assert spec["CreateModel"] == _render("sagemaker-endpoint")["CreateModel"]
    with pytest.raises(ShadownetError, match=r"MemorySizeInMB: 1024, 2048, \.\.\. 6144, not 3000"):
        jobs.render("sagemaker-endpoint", ["serverless=true", "serverless_memory_mb=3000"])
    with pytest.raises(ShadownetError, match="MaxConcurrency: 1 to 200, not 500"):
        jobs.render("sagemaker-endpoint", ["serverless=true", "serverless_concurrency=500"])


# --- Vertex AI ------------------------------------------------------------------------------------------------

def _vertex_messages(spec: dict) -> dict:
    from google.cloud.aiplatform_v1 import types
    from google.protobuf import json_format

    return {name: json_format.ParseDict(spec[name], getattr(types, f"{name}Request").pb(
        getattr(types, f"{name}Request")()), ignore_unknown_fields=False) for name in serving_jobs.VERTEX_REQUESTS}


def test_vertex_model_parses_as_vertex_ais_own_requests_and_serves_the_custom_jobs_model():
    spec = jobs.parsed((REPO / "jobs" / "vertex-model.yaml").read_text(), "vertex-model")
    messages = _vertex_messages(spec)
    upload, deploy = messages["UploadModel"], messages["DeployModel"]
    container = upload.model.container_spec
    assert container.image_uri == jobs.DEFAULTS["image"] and list(container.args) == ["serve"]
    assert [port.container_port for port in container.ports] == [8080]
    assert (container.health_route, container.predict_route) == ("/v1/models/shadownet",
                                                                 "/v1/models/shadownet:predict")
    # the custom job's AIP_MODEL_DIR, which Vertex AI sets to baseOutputDirectory + /model
    training = _render("vertex")
    assert upload.model.artifact_uri == training["baseOutputDirectory"]["outputUriPrefix"] + "/model"
    assert (upload.parent, upload.model_id) == ("projects/PROJECT/locations/us-central1", "shadownet")
    assert messages["CreateEndpoint"].endpoint_id == "shadownet"
    resources = deploy.deployed_model.dedicated_resources
    assert (resources.machine_spec.machine_type, resources.min_replica_count, resources.max_replica_count) == (
        "n2-standard-4", 1, 2)
    assert deploy.deployed_model.model == "projects/PROJECT/locations/us-central1/models/shadownet"
    assert deploy.endpoint == "projects/PROJECT/locations/us-central1/endpoints/shadownet"
    assert dict(deploy.traffic_split) == {"0": 100}
    other = _render("vertex-model", "project=my-project", "region=europe-west4", "server_workers=2",
                    "model_data=gs://b/export", "min_replicas=2", "max_replicas=5", "instance_type=n2-standard-8")
    other_upload = _vertex_messages(other)["UploadModel"]
    assert list(other_upload.model.container_spec.args) == ["serve", "--workers", "2"]
    assert other_upload.model.artifact_uri == "gs://b/export"
    assert other["DeployModel"]["deployedModel"]["dedicatedResources"] == {
        "machineSpec": {"machineType": "n2-standard-8"}, "minReplicaCount": 2, "maxReplicaCount": 5}
    assert other["DeployModel"]["endpoint"] == "projects/my-project/locations/europe-west4/endpoints/shadownet"


def test_a_broken_vertex_model_spec_is_refused():
    spec = _render("vertex-model")
    broken = copy.deepcopy(spec)
    broken["UploadModel"]["model"]["containerSpec"]["healthroute"] = "/ping"  # misspelt: refused, not dropped
    with pytest.raises(ShadownetError, match='ModelContainerSpec" has no field named "healthroute"'):
        jobs.check("vertex-model", broken)
    broken = copy.deepcopy(spec)
    broken["DeployModel"]["deployedModel"]["dedicatedResources"]["minReplicaCount"] = 3
    broken["DeployModel"]["endpoint"] = "projects/PROJECT/locations/us-central1/endpoints/other"
    with pytest.raises(ShadownetError) as refused:
        jobs.check("vertex-model", broken)
    assert "maxReplicaCount below minReplicaCount" in str(refused.value)
    assert "DeployModel.endpoint: the endpoint CreateEndpoint makes (.../endpoints/shadownet)" in str(refused.value)
    with pytest.raises(ShadownetError, match="UploadModel.modelId 'OCR'"):
        jobs.render("vertex-model", ["name=OCR"])


# --- KServe ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inference_service_schema():
    import jsonschema

    schema = json.loads((REPO / "tests" / "schemas" / "serving.kserve.io_v1beta1_inferenceservice.json").read_text())
    assert (schema["group"], schema["version"], schema["kind"]) == ("serving.kserve.io", "v1beta1", "InferenceService")
    return jsonschema.Draft202012Validator(_strict(schema["openAPIV3Schema"]))


def _schema_problems(validator, spec: dict) -> list[str]:
    return [f"{'.'.join(map(str, e.path))}: {e.message[:200]}" for e in validator.iter_errors(spec)]


def test_kserve_inference_service_passes_its_crd_schema_and_serves_the_kubeflow_export(inference_service_schema):
    spec = jobs.parsed((REPO / "jobs" / "kserve-inferenceservice.yaml").read_text(), "kserve")
    assert _schema_problems(inference_service_schema, spec) == []
    assert (spec["apiVersion"], spec["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert spec["metadata"]["annotations"] == {"serving.kserve.io/deploymentMode": "RawDeployment"}
    predictor = spec["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 2)
    assert predictor["securityContext"] == jobs.POD_SECURITY
    [container] = predictor["containers"]
    assert container["name"] == "kserve-container" and container["image"] == jobs.DEFAULTS["image"]
    assert container["args"] == ["serve", "--model", "/mnt/models"]
    args = _render("kubeflow")["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["args"]
    assert container["env"] == [{"name": "STORAGE_URI", "value": args[args.index("--export-dir") + 1]}]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    other = _render("kserve", "model_data=gs://b/export", "service_account=s3-reader", "server_workers=2",
                    "cpu=1", "memory=2Gi", "max_replicas=4")
    assert _schema_problems(inference_service_schema, other) == []
    assert other["spec"]["predictor"]["serviceAccountName"] == "s3-reader"
    assert other["spec"]["predictor"]["containers"][0]["args"] == ["serve", "--model", "/mnt/models", "--workers", "2"]
    assert other["spec"]["predictor"]["containers"][0]["env"][0]["value"] == "gs://b/export"
    other["spec"]["predictor"]["replicas"] = 2  # not a field of the predictor
    assert any("replicas" in problem for problem in _schema_problems(inference_service_schema, other))


def test_a_broken_kserve_spec_is_refused():
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is a dev dependency")
    spec = _render("kserve")
    container = spec["spec"]["predictor"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")  # misspelt: the Pod's schema refuses it
    container["name"] = "server"
    spec["spec"]["predictor"]["securityContext"]["runAsUser"] = 0
    with pytest.raises(ShadownetError) as refused:
        jobs.check("kserve", spec)
    message = str(refused.value)
    assert "'readinesProbe' was unexpected" in message
    assert "spec.predictor.containers: one container, named 'kserve-container'" in message
    assert "spec.predictor.securityContext.runAsUser: a numeric non-root id, found 0" in message


# --- bad settings ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("platform, setting, message", [
    ("sagemaker-endpoint", "min_replicas=0", "--set min_replicas: a whole number >= 1, not '0'"),
    ("sagemaker-endpoint", "serverless=yes", "--set serverless: true or false, not 'yes'"),
    ("sagemaker-endpoint", "model_data=s3://b/export/", "--set model_data: the s3:// URI of a model.tar.gz, "
                                                        "not 's3://b/export/'"),
    ("vertex-model", "max_replicas=0", "--set max_replicas: a whole number >= 1, not '0'"),
    ("vertex-model", "model_data=s3://b/m", "--set model_data: a gs:// folder that holds shadownet/<version>/, "
                                            "not 's3://b/m'"),
    ("kserve", "server_workers=many", "--set server_workers: a whole number >= 1, not 'many'"),
    ("kserve", "replicas=2", "--set replicas: unknown parameter; known: "),
])
def test_bad_settings_exit_2_with_one_line(platform, setting, message):
    result = run_cli("jobs", "render", "--platform", platform, "--set", setting)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [line for line in result.stderr.splitlines() if line]
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(f"shadownet: error: {message}")


def test_max_replicas_below_min_replicas_is_refused():
    with pytest.raises(ShadownetError, match=r"--set max_replicas: at least min_replicas \(3\), not 2"):
        jobs.render("kserve", ["min_replicas=3"])


# --- submit ---------------------------------------------------------------------------------------------------

def test_submit_creates_the_model_the_endpoint_config_and_the_endpoint(s3):
    """create_model, create_endpoint_config, create_endpoint and describe_endpoint against moto on 127.0.0.1."""
    result = run_cli("submit", "--platform", "sagemaker-endpoint", "--set", "name=shadownet-serve-1", "--set", ROLE,
                     "--set", "model_data=s3://models/shadownet-train-1/output/model.tar.gz", "--poll-seconds", "0.2",
                     "--sagemaker-endpoint-url", s3.direct_endpoint, check=True)
    arn = "arn:aws:sagemaker:us-east-1:123456789012"
    assert result.stdout.splitlines() == [
        f"created {arn}:model/shadownet-serve-1", f"created {arn}:endpoint-config/shadownet-serve-1",
        f"created {arn}:endpoint/shadownet-serve-1", "status=InService", "endpoint shadownet-serve-1 is in service"]
    import boto3

    client = boto3.client("sagemaker", endpoint_url=s3.direct_endpoint, region_name="us-east-1")
    model = client.describe_model(ModelName="shadownet-serve-1")
    assert model["PrimaryContainer"]["Image"] == jobs.DEFAULTS["image"]
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://models/shadownet-train-1/output/model.tar.gz"
    assert model["ExecutionRoleArn"] == "arn:aws:iam::123456789012:role/test"
    config = client.describe_endpoint_config(EndpointConfigName="shadownet-serve-1")
    [variant] = config["ProductionVariants"]
    assert (variant["VariantName"], variant["ModelName"], variant["InstanceType"], variant["InitialInstanceCount"]) \
        == ("AllTraffic", "shadownet-serve-1", "ml.c5.xlarge", 1)
    endpoint = client.describe_endpoint(EndpointName="shadownet-serve-1")
    assert (endpoint["EndpointConfigName"], endpoint["EndpointStatus"]) == ("shadownet-serve-1", "InService")
    assert endpoint["ProductionVariants"][0]["CurrentInstanceCount"] == 1

    serverless = run_cli("submit", "--platform", "sagemaker-endpoint", "--set", "name=shadownet-serverless-1",
                         "--set", ROLE, "--set", "serverless=true", "--no-wait", "--sagemaker-endpoint-url",
                         s3.direct_endpoint, check=True)
    assert serverless.stdout.splitlines()[-1] == f"created {arn}:endpoint/shadownet-serverless-1"
    config = client.describe_endpoint_config(EndpointConfigName="shadownet-serverless-1")
    assert config["ProductionVariants"][0]["ServerlessConfig"] == {"MemorySizeInMB": 4096, "MaxConcurrency": 10}
    assert "InstanceType" not in config["ProductionVariants"][0]


class EndpointStatuses:
    """A proxy in front of moto whose DescribeEndpoint answers carry the given statuses, one per call (the last
    one stays), and ``reason`` as FailureReason when Failed: moto's endpoints are in service at once. The
    operation ``refuse`` is answered with SageMaker's ValidationException."""

    def __init__(self, target_port: int, statuses: list[str], reason: str = "", refuse: str = ""):
        script = self
        self.statuses, self.reason, self.served = list(statuses), reason, []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if refuse and self.headers.get("X-Amz-Target") == f"SageMaker.{refuse}":
                    return self._answer(400, json.dumps({"__type": "ValidationException",
                                                         "message": "Cannot create already existing endpoint"}))
                upstream = http.client.HTTPConnection("127.0.0.1", target_port, timeout=30)
                upstream.request("POST", self.path, body=body, headers={
                    key: value for key, value in self.headers.items() if key.lower() != "host"})
                response = upstream.getresponse()
                data = response.read()
                upstream.close()
                if self.headers.get("X-Amz-Target") == "SageMaker.DescribeEndpoint" and response.status == 200:
                    answer = json.loads(data)
                    answer["EndpointStatus"] = script.statuses.pop(0) if len(script.statuses) > 1 \
                        else script.statuses[0]
                    if answer["EndpointStatus"] == "Failed" and script.reason:
                        answer["FailureReason"] = script.reason
                    script.served.append(answer["EndpointStatus"])
                    data = json.dumps(answer).encode()
                self._answer(response.status, data)

            def _answer(self, status: int, data: bytes | str) -> None:
                data = data.encode() if isinstance(data, str) else data
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_submit_waits_while_the_endpoint_is_created_and_fails_with_its_reason(s3):
    reason = "The primary container for production variant AllTraffic did not pass the ping health check."
    proxy = EndpointStatuses(s3.moto_port, ["Creating", "Creating", "Failed"], reason)
    try:
        result = run_cli("submit", "--platform", "sagemaker-endpoint", "--set", "name=shadownet-serve-2", "--set",
                         ROLE, "--poll-seconds", "0.1", "--sagemaker-endpoint-url", proxy.endpoint)
    finally:
        proxy.stop()
    assert proxy.served == ["Creating", "Creating", "Failed"]
    assert result.returncode == 1
    assert result.stdout.splitlines()[3:] == ["status=Creating", "status=Failed"]  # printed when it changes
    assert result.stderr.splitlines() == [f"shadownet: endpoint shadownet-serve-2 ended Failed: {reason}"]

    proxy = EndpointStatuses(s3.moto_port, ["Creating", "InService"])
    try:
        result = run_cli("submit", "--platform", "sagemaker-endpoint", "--set", "name=shadownet-serve-3", "--set",
                         ROLE, "--poll-seconds", "0.1", "--sagemaker-endpoint-url", proxy.endpoint, check=True)
    finally:
        proxy.stop()
    assert result.stdout.splitlines()[3:] == ["status=Creating", "status=InService",
                                              "endpoint shadownet-serve-3 is in service"]


def test_submit_refused_by_sagemaker_says_what_and_exits_2(s3):
    proxy = EndpointStatuses(s3.moto_port, ["InService"], refuse="CreateEndpoint")
    try:
        result = run_cli("submit", "--platform", "sagemaker-endpoint", "--set", "name=shadownet-serve-4", "--set",
                         ROLE, "--sagemaker-endpoint-url", proxy.endpoint)
    finally:
        proxy.stop()
    assert result.returncode == 2
    assert result.stdout.splitlines()[-1].endswith(":endpoint-config/shadownet-serve-4")
    assert result.stderr.splitlines() == ["shadownet: error: SageMaker refused endpoint shadownet-serve-4: "
                                          "ValidationException: Cannot create already existing endpoint"]


def test_submit_without_gcloud_or_kubectl_prints_the_commands_and_the_spec(tmp_path):
    import os

    env = dict(os.environ, PATH=str(tmp_path))  # no gcloud, no kubectl
    result = run_cli("submit", "--platform", "vertex-model", "--set", "project=my-project", env=env, check=True)
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        "gcloud is not installed here; run these yourself:",
        "  gcloud ai models upload --project=my-project --region=us-central1 --model-id=shadownet "
        "--display-name=shadownet --artifact-uri=gs://BUCKET/shadownet/output/shadownet/model "
        f"--container-image-uri={jobs.DEFAULTS['image']} --container-args=serve --container-ports=8080 "
        "--container-health-route=/v1/models/shadownet --container-predict-route=/v1/models/shadownet:predict",
        "  gcloud ai endpoints create --project=my-project --region=us-central1 --endpoint-id=shadownet "
        "--display-name=shadownet",
        "  gcloud ai endpoints deploy-model shadownet --project=my-project --region=us-central1 --model=shadownet "
        "--display-name=shadownet --machine-type=n2-standard-4 --min-replica-count=1 --max-replica-count=2 "
        "--traffic-split=0=100"]
    assert "UploadModel:" in result.stdout
    result = run_cli("submit", "--platform", "kserve", env=env, check=True)
    assert result.stdout.startswith("kubectl is not installed here; run this yourself:\n  kubectl apply -f -")
    assert "kind: InferenceService" in result.stdout


# --- the serving port: one home ---------------------------------------------------------------------------------

def test_the_serving_port_has_one_home_that_serve_the_specs_and_the_flags_read():
    import re
    from pathlib import Path

    import shadownet
    from shadownet.cloud.platforms import SERVING_PORT
    from shadownet.flags import build_parser
    from shadownet.serve.server import ServeConfig

    package = Path(shadownet.__file__).parent
    written = [f"{path.relative_to(package)}:{number}" for path in sorted(package.rglob("*.py"))
               for number, line in enumerate(path.read_text().splitlines(), 1)
               if re.search(rf"\b{SERVING_PORT}\b", line)]
    assert len(written) == 1 and written[0].startswith("cloud/platforms.py:"), written  # 8080 nowhere else
    assert ServeConfig(Path("model")).port == SERVING_PORT
    serve = next(a for a in build_parser()._actions if a.dest == "command").choices["serve"]
    assert next(a for a in serve._actions if a.dest == "port").help.endswith(f"else {SERVING_PORT}")
    kserve = _render("kserve")["spec"]["predictor"]["containers"][0]
    assert kserve["ports"] == [{"containerPort": SERVING_PORT, "protocol": "TCP"}]
    assert kserve["readinessProbe"]["httpGet"]["port"] == SERVING_PORT
    container = _render("vertex-model")["UploadModel"]["model"]["containerSpec"]
    assert container["ports"] == [{"containerPort": SERVING_PORT}]
