"""How ``shadownet submit`` hands a rendered spec to its platform (each platform's declaration in ``registry``
names one of these), and follows a SageMaker job to its end.

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

FINAL_STATUSES = ("Completed", "Failed", "Stopped")
ENDPOINT_FINAL_STATUSES = ("InService", "Failed", "OutOfService")


@dataclass(frozen=True)
class SubmitConfig:
    platform: str
    settings: tuple[str, ...] = ()
    wait: bool = True
    poll_seconds: float = 30.0
    endpoint_url: str | None = None  # SageMaker API endpoint (a local server in tests)


@dataclass(frozen=True)
class Job:
    """A rendered spec on its way to its platform: as data, as ``jobs render`` prints it, and the parameters it was
    rendered from (name, region ...)."""

    spec: dict
    text: str
    parameters: dict[str, str]


def kubectl_apply(job: Job, config: SubmitConfig, out) -> int:
    """``kubectl apply -f -`` with the spec on its input (or the command and the spec printed)."""
    return _tool(["kubectl", "apply", "-f", "-"], job.text, out)


def gcloud_create(group: str):
    """``gcloud ai GROUP create`` with the spec as its ``--config`` file (or the command and the spec printed)."""

    def submit(job: Job, config: SubmitConfig, out) -> int:
        p = job.parameters
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as spec:
            spec.write(job.text)
        command = ["gcloud", "ai", group, "create", f"--region={p['region']}", f"--display-name={p['name']}",
                   f"--config={spec.name}"]
        try:
            return _tool(command, None, out, shown_spec=job.text)
        finally:
            Path(spec.name).unlink(missing_ok=True)

    return submit


def print_parameters(job: Job, config: SubmitConfig, out) -> int:
    """UAI Train has no tool to call: its parameters are printed."""
    out("UAI Train has no command-line submission: create the job in its console or API with these parameters")
    out(job.text.rstrip())
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


def _create(job: Job, config: SubmitConfig, operation: str, request: dict, name: str, what: str = "job"):
    """(the SageMaker client, the ARN ``operation`` returned): one message for a refusal or no credentials."""
    import boto3
    import botocore.exceptions

    client = boto3.client("sagemaker", region_name=job.parameters["region"], endpoint_url=config.endpoint_url)
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


def sagemaker_training(job: Job, config: SubmitConfig, out) -> int:
    """Create the training job, then follow it to its end."""
    request = job.spec
    name = request["TrainingJobName"]
    client, arn = _create(job, config, "create_training_job", request, name)
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


def sagemaker_tuning(job: Job, config: SubmitConfig, out) -> int:
    """Create the tuning job, follow its status and trial counts, then name the best trial and its objective."""
    request = job.spec
    name = request["HyperParameterTuningJobName"]
    client, arn = _create(job, config, "create_hyper_parameter_tuning_job", request, name)
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


def sagemaker_endpoint(job: Job, config: SubmitConfig, out) -> int:
    """Create the model, the endpoint config and the endpoint, then follow the endpoint until it is in service."""
    requests = job.spec
    for request, operation, key, what in (
            (requests["CreateModel"], "create_model", "ModelName", "model"),
            (requests["CreateEndpointConfig"], "create_endpoint_config", "EndpointConfigName", "endpoint config"),
            (requests["CreateEndpoint"], "create_endpoint", "EndpointName", "endpoint")):
        client, arn = _create(job, config, operation, request, request[key], what)
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


def vertex_model(job: Job, config: SubmitConfig, out) -> int:
    """Upload the model, create the endpoint and deploy the model to it with gcloud (or print the commands)."""
    spec = job.spec
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
        out(job.text.rstrip())
        return 0
    for command in commands:
        _tool(command, None, out)
    return 0
