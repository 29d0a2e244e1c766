"""``shadownet submit``: hand a rendered job spec to its platform, and follow a SageMaker job to its end.

SageMaker goes through boto3 (``create_training_job``, then ``describe_training_job`` until the job ends;
a tuning job: ``create_hyper_parameter_tuning_job``, then its status and trial counts until it ends, and
the best training job with its objective value). Kubernetes (TFJob, Katib, Trainer v2) and Vertex AI go
through their own tools, ``kubectl apply -f -`` and ``gcloud ai custom-jobs create`` / ``hp-tuning-jobs
create``, when they are installed; otherwise the command and the spec are printed for the user to run.
UAI Train has no tool to call: its parameters are printed.

Deployments: a SageMaker endpoint is made through boto3 (``create_model``, ``create_endpoint_config``,
``create_endpoint``, then ``describe_endpoint`` until it is InService or Failed); a Vertex AI model through
``gcloud ai models upload``, ``endpoints create`` and ``endpoints deploy-model``; a KServe InferenceService
through ``kubectl apply``.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ShadownetError
from . import jobs

FINAL_STATUSES = ("Completed", "Failed", "Stopped")
ENDPOINT_FINAL_STATUSES = ("InService", "Failed", "OutOfService")
KUBECTL_PLATFORMS = ("kubeflow", "k8s-tfrecords", "katib", "kubeflow-training-runtime", "kubeflow-trainjob",
                     "kserve")
GCLOUD = {"vertex": ["gcloud", "ai", "custom-jobs", "create"],
          "vertex-tuning": ["gcloud", "ai", "hp-tuning-jobs", "create"]}


@dataclass(frozen=True)
class SubmitConfig:
    platform: str
    settings: tuple[str, ...] = ()
    wait: bool = True
    poll_seconds: float = 30.0
    endpoint_url: str | None = None  # SageMaker API endpoint (a local server in tests)


def submit(config: SubmitConfig, out=print) -> int:
    """Submit; returns the exit code: 0 submitted or completed, 1 the job failed or was stopped."""
    text = jobs.render(config.platform, list(config.settings))
    if config.platform == "sagemaker":
        return _sagemaker(jobs.parsed(text, "sagemaker"), config, out)
    if config.platform == "sagemaker-tuning":
        return _sagemaker_tuning(jobs.parsed(text, "sagemaker-tuning"), config, out)
    if config.platform == "sagemaker-endpoint":
        return _sagemaker_endpoint(jobs.parsed(text, "sagemaker-endpoint"), config, out)
    if config.platform == "vertex-model":
        return _vertex_model(jobs.parsed(text, "vertex-model"), text, out)
    if config.platform in KUBECTL_PLATFORMS:
        return _tool(["kubectl", "apply", "-f", "-"], text, out)
    if config.platform in GCLOUD:
        p, _ = jobs.parameters(list(config.settings), config.platform)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as spec:
            spec.write(text)
        command = [*GCLOUD[config.platform], f"--region={p['region']}", f"--display-name={p['name']}",
                   f"--config={spec.name}"]
        try:
            return _tool(command, None, out, shown_spec=text)
        finally:
            Path(spec.name).unlink(missing_ok=True)
    out("UAI Train has no command-line submission: create the job in its console or API with these parameters")
    out(text.rstrip())
    return 0


def _tool(command: list[str], stdin: str | None, out, shown_spec: str | None = None) -> int:
    if shutil.which(command[0]) is None:
        out(f"{command[0]} is not installed here; run this yourself:")
        out(f"  {' '.join(command)}" + ("  < spec" if stdin is not None else ""))
        out((stdin or shown_spec or "").rstrip())
        return 0
    result = subprocess.run(command, input=stdin, text=True)
    if result.returncode != 0:
        raise ShadownetError(f"{' '.join(command[:3])} exited {result.returncode}")
    return 0


def _create(config: SubmitConfig, operation: str, request: dict, name: str, what: str = "job"):
    """(the SageMaker client, the ARN ``operation`` returned): one message for a refusal or no credentials."""
    import boto3
    import botocore.exceptions

    region = jobs.parameters(list(config.settings), config.platform)[0]["region"]
    client = boto3.client("sagemaker", region_name=region, endpoint_url=config.endpoint_url)
    try:
        response = getattr(client, operation)(**request)
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        raise ShadownetError(f"SageMaker refused {what} {name}: {error.get('Code')}: {error.get('Message')}") \
            from None
    except botocore.exceptions.NoCredentialsError:
        raise ShadownetError("no AWS credentials found (environment, shared credentials file or instance role)") \
            from None
    return client, next(value for key, value in response.items() if key.endswith("Arn"))


def _follow(describe, state_of, config: SubmitConfig, out, final=FINAL_STATUSES) -> tuple[dict, str]:
    """Describe the job every ``poll_seconds`` and print ``key=value ...`` of ``state_of(job)`` when it changes,
    until its ``status`` is one of ``final``; returns the last description and that status."""
    seen = None
    while True:
        job = describe()
        state = state_of(job)
        if state != seen:
            out(" ".join(f"{key}={value}" for key, value in state.items()))
            seen = state
        if state["status"] in final:
            return job, state["status"]
        time.sleep(config.poll_seconds)


def _sagemaker(request: dict, config: SubmitConfig, out) -> int:
    name = request["TrainingJobName"]
    client, arn = _create(config, "create_training_job", request, name)
    out(f"submitted {arn}")
    if not config.wait:
        return 0
    job, state = _follow(lambda: client.describe_training_job(TrainingJobName=name),
                         lambda job: {"status": job["TrainingJobStatus"],
                                      "secondary_status": job.get("SecondaryStatus")}, config, out)
    if state != "Completed":
        reason = job.get("FailureReason", "")
        print(f"shadownet: training job {name} ended {state}" + (f": {reason}" if reason else ""),
              file=sys.stderr)
        return 1
    artifacts = job.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    out("completed" + (f"; model: {artifacts}" if artifacts else ""))
    return 0


def _sagemaker_tuning(request: dict, config: SubmitConfig, out) -> int:
    """Create the tuning job, follow its status and trial counts, then name the best trial and its objective."""
    name = request["HyperParameterTuningJobName"]
    client, arn = _create(config, "create_hyper_parameter_tuning_job", request, name)
    out(f"submitted {arn}")
    if not config.wait:
        return 0
    job, state = _follow(lambda: client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
                         lambda job: {"status": job["HyperParameterTuningJobStatus"],
                                      "completed_trials": job.get("TrainingJobStatusCounters", {}).get("Completed", 0),
                                      "running_trials": job.get("TrainingJobStatusCounters", {}).get("InProgress", 0)},
                         config, out)
    best = job.get("BestTrainingJob") or {}
    objective = best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    if best:
        out(f"best training job {best.get('TrainingJobName')}: {objective.get('MetricName')}="
            f"{objective.get('Value')} with {best.get('TunedHyperParameters')}")
    if state != "Completed":
        reason = job.get("FailureReason", "")
        print(f"shadownet: tuning job {name} ended {state}" + (f": {reason}" if reason else ""), file=sys.stderr)
        return 1
    return 0


def _sagemaker_endpoint(requests: dict, config: SubmitConfig, out) -> int:
    """Create the model, the endpoint config and the endpoint, then follow the endpoint until it is in service."""
    for request, operation, key, what in (
            (requests["CreateModel"], "create_model", "ModelName", "model"),
            (requests["CreateEndpointConfig"], "create_endpoint_config", "EndpointConfigName", "endpoint config"),
            (requests["CreateEndpoint"], "create_endpoint", "EndpointName", "endpoint")):
        client, arn = _create(config, operation, request, request[key], what)
        out(f"created {arn}")
    if not config.wait:
        return 0
    name = requests["CreateEndpoint"]["EndpointName"]
    endpoint, state = _follow(lambda: client.describe_endpoint(EndpointName=name),
                              lambda endpoint: {"status": endpoint["EndpointStatus"]}, config, out,
                              final=ENDPOINT_FINAL_STATUSES)
    if state != "InService":
        reason = endpoint.get("FailureReason", "")
        print(f"shadownet: endpoint {name} ended {state}" + (f": {reason}" if reason else ""), file=sys.stderr)
        return 1
    out(f"endpoint {name} is in service")
    return 0


def _vertex_model(spec: dict, text: str, out) -> int:
    """Upload the model, create the endpoint and deploy the model to it with gcloud (or print the commands)."""
    upload, deploy = spec["UploadModel"], spec["DeployModel"]
    model, container = upload["model"], upload["model"]["containerSpec"]
    _, project, _, region = upload["parent"].split("/")
    where = [f"--project={project}", f"--region={region}"]
    endpoint = spec["CreateEndpoint"]["endpointId"]
    resources = deploy["deployedModel"]["dedicatedResources"]
    commands = [
        ["gcloud", "ai", "models", "upload", *where, f"--model-id={upload['modelId']}",
         f"--display-name={model['displayName']}", f"--artifact-uri={model['artifactUri']}",
         f"--container-image-uri={container['imageUri']}", f"--container-args={','.join(container['args'])}",
         f"--container-ports={','.join(str(p['containerPort']) for p in container['ports'])}",
         f"--container-health-route={container['healthRoute']}",
         f"--container-predict-route={container['predictRoute']}"],
        ["gcloud", "ai", "endpoints", "create", *where, f"--endpoint-id={endpoint}",
         f"--display-name={spec['CreateEndpoint']['endpoint']['displayName']}"],
        ["gcloud", "ai", "endpoints", "deploy-model", endpoint, *where, f"--model={upload['modelId']}",
         f"--display-name={deploy['deployedModel']['displayName']}",
         f"--machine-type={resources['machineSpec']['machineType']}",
         f"--min-replica-count={resources['minReplicaCount']}", f"--max-replica-count={resources['maxReplicaCount']}",
         "--traffic-split=0=100"],
    ]
    if shutil.which("gcloud") is None:
        out("gcloud is not installed here; run these yourself:")
        for command in commands:
            out(f"  {shlex.join(command)}")
        out(text.rstrip())
        return 0
    for command in commands:
        _tool(command, None, out)
    return 0
