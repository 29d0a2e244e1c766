"""The training specs of ``shadownet jobs render``: SageMaker, Vertex AI, Kubeflow (TFJob), UAI Train, and the
Kubernetes Job that writes the records.

Each builder takes the parameters and hyperparameters (``jobs.parameters``) and returns the spec as data; the
tuning and deployment specs build on these (a tuning trial is one of these jobs; an endpoint serves what one of
them wrote).
"""

from __future__ import annotations

import re

from .specs import botocore_problems, container, flags, pod, uris

# The metric lines training prints (train.py); SageMaker applies these to the log. The validation metrics are
# anchored on the validation line's own sequence (``validation_loss=... word_accuracy=... char_error_rate=...``,
# the task's metric_line), so no other line (the test split's ``test_word_accuracy=...`` after an export) feeds a tuner.
METRIC_DEFINITIONS = [
    {"Name": "train:loss", "Regex": r"step=\d+ loss=([0-9.eE+-]+)"},
    {"Name": "train:images_per_sec", "Regex": r"images_per_sec=([0-9.]+)"},
    {"Name": "validation:loss", "Regex": r"validation_loss=([0-9.eE+-]+) word_accuracy="},
    {"Name": "validation:word_accuracy", "Regex": r"validation_loss=[0-9.eE+-]+ word_accuracy=([0-9.]+)"},
    {"Name": "validation:char_error_rate", "Regex": r"word_accuracy=[0-9.]+ char_error_rate=([0-9.]+)"},
]


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


def check_sagemaker(spec: dict) -> list[str]:
    problems = botocore_problems(spec, "CreateTrainingJob")
    if problems:
        return problems
    if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", spec["TrainingJobName"]):
        problems.append(f"TrainingJobName {spec['TrainingJobName']!r}: letters, digits and '-', at most 63")
    stop = spec["StoppingCondition"]
    if spec.get("EnableManagedSpotTraining") and stop["MaxWaitTimeInSeconds"] < stop["MaxRuntimeInSeconds"]:
        problems.append("managed spot needs MaxWaitTimeInSeconds >= MaxRuntimeInSeconds")
    return problems
