"""One SageMaker training job in the SDK's local mode, as a user runs it; for tests/test_sagemaker_sdk.py.

Runs in the SDK's own venv (.venv-sagemaker, `make sagemaker-sdk`), not in shadownet's:

    python sagemaker_local_job.py IMAGE RECORDS_DIR OUTPUT_DIR JOB_NAME HYPERPARAMETERS_JSON

``Estimator(image_uri=IMAGE, instance_type="local", hyperparameters=...).fit({"train": "file://RECORDS_DIR"})``
with ``output_path="file://OUTPUT_DIR"``; the SDK lays out /opt/ml and runs the image with docker-compose.
The SDK streams the container's log to stdout; then the last line is the outcome, as JSON:
``{"status": "Completed" | "Failed", "error": ..., "telemetry_opt_out": ...}``; the
artifacts (model.tar.gz, output.tar.gz) are in OUTPUT_DIR either way. The region, credentials and the
SDK's config files come from the environment the test sets.
"""

from __future__ import annotations

import json
import logging
import sys


def main(image: str, records: str, output: str, job_name: str, hyperparameters: str) -> int:
    from sagemaker.config.config_schema import TELEMETRY_OPT_OUT_PATH
    from sagemaker.estimator import Estimator
    from sagemaker.local import LocalSession
    from sagemaker.utils import resolve_value_from_config

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    session = LocalSession()
    opted_out = resolve_value_from_config(config_path=TELEMETRY_OPT_OUT_PATH, sagemaker_session=session)
    estimator = Estimator(image_uri=image, role="arn:aws:iam::123456789012:role/local-mode-test", instance_count=1,
                          instance_type="local", output_path=f"file://{output}", sagemaker_session=session,
                          hyperparameters=json.loads(hyperparameters))
    try:
        estimator.fit({"train": f"file://{records}"}, job_name=job_name)
    except RuntimeError as exc:  # local mode's word for a container that exited non-zero
        report({"status": "Failed", "error": str(exc), "telemetry_opt_out": opted_out})
        return 0
    description = session.sagemaker_client.describe_training_job(TrainingJobName=job_name)
    report({"status": description["TrainingJobStatus"], "error": None, "telemetry_opt_out": opted_out,
            "model_data": estimator.model_data})
    return 0


def report(outcome: dict) -> None:
    # On a line of its own, whatever the container's log ended with (a progress bar has no newline).
    sys.stdout.write("\n" + json.dumps(outcome) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
