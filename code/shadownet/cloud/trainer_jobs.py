"""Kubeflow Trainer v2 specs of ``shadownet jobs render``: a TrainingRuntime and a TrainJob that uses it.

Trainer v2 (trainer.kubeflow.org/v1alpha1) runs a TrainJob as a JobSet made from the runtime's template,
with ``numNodes`` pods in the replicated job ``node``. It has no TensorFlow plugin, so nothing sets
TF_CONFIG: the runtime hands each pod its JobSet labels through the downward API, the TrainJob the number
of nodes, and the container builds its MultiWorkerMirroredStrategy cluster from them
(``platforms.jobset_cluster``): every node a worker, node 0 the chief, node i on port 2222 + i, each on
its stable host name ``<trainjob>-node-0-<i>.<trainjob>``.

A failed pod (preemption, a lost node) restarts the whole JobSet (``failurePolicy.maxRestarts``); the
workers resume from the run's last checkpoint.
"""

from __future__ import annotations

from . import specs
from .platforms import JOBSET_ENV, JOBSET_PORT

RUNTIME_NAME = "shadownet-tensorflow"
NODE = "node"  # the replicated job Trainer v2 sizes with numNodes (the trainer step)
# The pod labels JobSet sets, passed in as the environment jobset_cluster reads.
_LABELS = {"jobset": "jobset.sigs.k8s.io/jobset-name", "replicated_job": "jobset.sigs.k8s.io/replicatedjob-name",
           "job_index": "jobset.sigs.k8s.io/job-index"}


def _label_env() -> list[dict]:
    return [{"name": JOBSET_ENV[key], "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{label}']"}}}
            for key, label in _LABELS.items()]


def training_runtime(p: dict[str, str], hp: dict[str, str]) -> dict:
    """TrainingRuntime: a JobSet of one replicated job ``node`` running our image (numNodes set per TrainJob)."""
    container = specs.container(NODE, p["image"], ["train"], p)
    container["env"] = _label_env() + [{"name": JOBSET_ENV["port"], "value": str(JOBSET_PORT)}] + container["env"]
    pod = specs.pod([container], restartPolicy="Never", terminationGracePeriodSeconds=120)
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainingRuntime",
        "metadata": {"name": RUNTIME_NAME, "labels": {"trainer.kubeflow.org/framework": "tensorflow"}},
        "spec": {
            "mlPolicy": {"numNodes": 1},
            "template": {"spec": {
                "network": {"enableDNSHostnames": True, "publishNotReadyAddresses": True},
                "failurePolicy": {"maxRestarts": 3},
                "replicatedJobs": [{"name": NODE, "replicas": 1, "template": {
                    "metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
                    "spec": {"backoffLimit": 0, "template": {"spec": pod}}}}],
            }},
        },
    }


def trainjob(p: dict[str, str], hp: dict[str, str]) -> dict:
    """TrainJob: the runtime by name, the number of nodes, resources per node and the training arguments."""
    u, nodes = specs.uris(p), int(p["workers"])
    args = ["train", "--tfrecords-dir", u["records"], "--model-dir", u["run"], "--export-dir", u["export"],
            *specs.flags(hp)]
    resources = {"cpu": p["cpu"], "memory": p["memory"]}
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": p["name"]},
        "spec": {
            "runtimeRef": {"name": RUNTIME_NAME, "apiGroup": "trainer.kubeflow.org", "kind": "TrainingRuntime"},
            "trainer": {"image": p["image"], "args": args, "numNodes": nodes,
                        # numNodes again, for the container (Trainer v2 tells a runtime without a plugin nothing)
                        "env": [{"name": JOBSET_ENV["nodes"], "value": str(nodes)}],
                        "resourcesPerNode": {"requests": dict(resources), "limits": dict(resources)}},
        },
    }


def check_runtime(spec: dict) -> list[str]:
    problems = specs.restricted_problems(spec)
    jobs_ = spec["spec"]["template"]["spec"]["replicatedJobs"]
    if [job["name"] for job in jobs_] != [NODE]:
        problems.append(f"replicatedJobs: exactly one, named {NODE!r} (the trainer step numNodes sizes)")
    names = {entry["name"] for entry in jobs_[0]["template"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    for key in ("jobset", "replicated_job", "job_index"):
        if JOBSET_ENV[key] not in names:
            problems.append(f"the node container needs {JOBSET_ENV[key]} to build its cluster")
    return problems


def check_trainjob(spec: dict) -> list[str]:
    trainer = spec["spec"]["trainer"]
    problems = []
    env = {entry["name"]: entry.get("value") for entry in trainer.get("env", [])}
    if env.get(JOBSET_ENV["nodes"]) != str(trainer["numNodes"]):
        problems.append(f"trainer.env {JOBSET_ENV['nodes']} must equal numNodes ({trainer['numNodes']})")
    if spec["spec"]["runtimeRef"]["name"] != RUNTIME_NAME:
        problems.append(f"runtimeRef.name: {RUNTIME_NAME}, the runtime jobs/ defines")
    return problems
