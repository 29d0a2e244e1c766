"""``shadownet submit``: hand a rendered job spec to its platform, and follow a SageMaker job to its end.

SageMaker goes through boto3 (``create_training_job``, then ``describe_training_job`` until the job ends).
Kubernetes and Vertex AI go through their own tools, ``kubectl apply -f -`` and ``gcloud ai custom-jobs
create``, when they are installed; otherwise the command and the spec are printed for the user to run.
UAI Train has no tool to call: its parameters are printed.
"""

from __future__ import annotations

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
    if config.platform in ("kubeflow", "k8s-tfrecords"):
        return _tool(["kubectl", "apply", "-f", "-"], text, out)
    if config.platform == "vertex":
        p, _ = jobs.parameters(list(config.settings), "vertex")
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as spec:
            spec.write(text)
        command = ["gcloud", "ai", "custom-jobs", "create", f"--region={p['region']}", f"--display-name={p['name']}",
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


def _sagemaker(request: dict, config: SubmitConfig, out) -> int:
    import boto3
    import botocore.exceptions

    region = jobs.parameters(list(config.settings), "sagemaker")[0]["region"]
    client = boto3.client("sagemaker", region_name=region, endpoint_url=config.endpoint_url)
    name = request["TrainingJobName"]
    try:
        arn = client.create_training_job(**request)["TrainingJobArn"]
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        raise ShadownetError(f"SageMaker refused job {name}: {error.get('Code')}: {error.get('Message')}") from None
    except botocore.exceptions.NoCredentialsError:
        raise ShadownetError("no AWS credentials found (environment, shared credentials file or instance role)") \
            from None
    out(f"submitted {arn}")
    if not config.wait:
        return 0
    seen = None
    while True:
        job = client.describe_training_job(TrainingJobName=name)
        state = (job["TrainingJobStatus"], job.get("SecondaryStatus"))
        if state != seen:
            out(f"status={state[0]} secondary_status={state[1]}")
            seen = state
        if state[0] in FINAL_STATUSES:
            break
        time.sleep(config.poll_seconds)
    if state[0] != "Completed":
        reason = job.get("FailureReason", "")
        print(f"shadownet: training job {name} ended {state[0]}" + (f": {reason}" if reason else ""),
              file=sys.stderr)
        return 1
    artifacts = job.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    out("completed" + (f"; model: {artifacts}" if artifacts else ""))
    return 0
