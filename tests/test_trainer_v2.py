"""Kubeflow Trainer v2: the container builds its MultiWorkerMirroredStrategy cluster from a JobSet pod's
environment. Unit tests give it that environment; the end-to-end test runs two real ``shadownet train``
processes on 127.0.0.1 with it, each resolving the JobSet's stable host names through an /etc/hosts of its
own (a private mount namespace: root and ``unshare``, as on the CI machine)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO
from shadownet.cloud import platforms
from shadownet.errors import ShadownetError
from test_multiworker import CHILD, finish, logged, train_args


def pod_env(index: int, nodes: int = 3, **extra) -> dict[str, str]:
    """What our TrainingRuntime gives node ``index`` of TrainJob ``shadownet``."""
    return {"JOBSET_NAME": "shadownet", "REPLICATED_JOB_NAME": "node", "JOB_INDEX": "0",
            "JOB_COMPLETION_INDEX": str(index), "SHADOWNET_NUM_NODES": str(nodes), **extra}


def test_every_node_is_a_worker_on_its_stable_host_name_and_node_0_is_the_chief():
    clusters = [platforms.cluster(pod_env(i)) for i in range(3)]
    hosts = ("shadownet-node-0-0.shadownet:2222", "shadownet-node-0-1.shadownet:2223",
             "shadownet-node-0-2.shadownet:2224")
    for i, found in enumerate(clusters):
        assert (found.jobs, found.task_type, found.task_index) == ({"worker": hosts}, "worker", i)
        assert found.source == "jobset"
        assert found.workers == 3 and found.is_chief == (i == 0)
    assert clusters[1].tf_config() == {"cluster": {"worker": list(hosts)}, "task": {"type": "worker", "index": 1}}


def test_the_port_and_subdomain_can_be_set_and_one_node_trains_alone():
    found = platforms.cluster(pod_env(1, 2, SHADOWNET_PORT="4000", JOBSET_SUBDOMAIN="net"))
    assert found.jobs["worker"] == ("shadownet-node-0-0.net:4000", "shadownet-node-0-1.net:4001")
    assert platforms.cluster(pod_env(0, 1)) is None  # one node: no cluster, the default strategy
    tf_config = platforms.cluster({**pod_env(0), "TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:2"]}, '
                                                             '"task": {"type": "worker", "index": 1}}'})
    assert tf_config.source == "TF_CONFIG" and tf_config.task_index == 1  # an explicit TF_CONFIG wins


@pytest.mark.parametrize("change, message", [
    ({"SHADOWNET_NUM_NODES": ""}, "SHADOWNET_NUM_NODES: a whole number is needed to build the JobSet's cluster"),
    ({"JOB_COMPLETION_INDEX": "3"}, "JOB_COMPLETION_INDEX=3 is not a node of SHADOWNET_NUM_NODES=3"),
    ({"JOB_INDEX": "x"}, "JOB_INDEX: a whole number is needed"),
    ({"SHADOWNET_PORT": "65535"}, "SHADOWNET_PORT=65535: ports 65535..65537 do not all exist"),
])
def test_an_incomplete_environment_is_refused_with_its_variable(change, message):
    with pytest.raises(ShadownetError, match=message.replace(".", r"\.")):
        platforms.cluster({**pod_env(0), **change})


def test_the_runtime_passes_what_the_cluster_is_built_from():
    runtime = yaml.safe_load((REPO / "jobs" / "kubeflow-training-runtime.yaml").read_text())
    trainjob = yaml.safe_load((REPO / "jobs" / "kubeflow-trainjob.yaml").read_text())
    (node,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    container = node["template"]["spec"]["template"]["spec"]["containers"][0]
    labels = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"] if "valueFrom" in e
              and "fieldRef" in e["valueFrom"]}
    assert labels == {"JOBSET_NAME": "metadata.labels['jobset.sigs.k8s.io/jobset-name']",
                      "REPLICATED_JOB_NAME": "metadata.labels['jobset.sigs.k8s.io/replicatedjob-name']",
                      "JOB_INDEX": "metadata.labels['jobset.sigs.k8s.io/job-index']"}
    assert node["name"] == "node" and container["name"] == "node"
    assert node["template"]["metadata"]["labels"]["trainer.kubeflow.org/trainjob-ancestor-step"] == "trainer"
    assert runtime["spec"]["template"]["spec"]["network"]["enableDNSHostnames"] is True
    trainer = trainjob["spec"]["trainer"]
    assert trainjob["spec"]["runtimeRef"]["name"] == runtime["metadata"]["name"]
    assert {"name": "SHADOWNET_NUM_NODES", "value": str(trainer["numNodes"])} in trainer["env"]


def _can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode == 0


BIND_HOSTS = 'mount --bind "$HOSTS" /etc/hosts && exec "$@"'


@pytest.mark.slow
@pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare for a private /etc/hosts")
def test_two_trainer_v2_nodes_train_together_on_loopback(fixed_records, tmp_path):
    from test_multiworker import free_ports

    base = next(p for p in sorted(free_ports(8)) if p + 1 < 65536 and _free(p + 1))
    hosts = tmp_path / "hosts"
    hosts.write_text(open("/etc/hosts").read() + "".join(f"127.0.0.1 shadownet-node-0-{i}.shadownet\n"
                                                         for i in range(2)))
    processes = []
    for i in range(2):
        folder = tmp_path / f"node{i}"
        folder.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "CLUSTER_SPEC", "SM_HOSTS")}
        env.update(pod_env(i, 2, SHADOWNET_PORT=str(base)), HOSTS=str(hosts), CUDA_VISIBLE_DEVICES="",
                   PYTHONUNBUFFERED="1", TMPDIR=str(tmp_path))
        command = ["unshare", "--mount", "sh", "-c", BIND_HOSTS, "sh", sys.executable, "-c", CHILD, "train",
                   *map(str, train_args(fixed_records, tmp_path / "run", 4, 2))]
        out, err = open(folder / "stdout", "w"), open(folder / "stderr", "w")
        processes.append(_Node(folder, subprocess.Popen(command, env=env, stdout=out, stderr=err), (out, err)))
    finish(processes)
    first = [node.lines()[0] for node in processes]
    assert first == [f"strategy=MultiWorkerMirroredStrategy workers=2 replicas=2 mixed_precision=off "
                     f"cluster=jobset task=worker:{i}" for i in range(2)]
    losses = [logged(node.lines(), "loss") for node in processes]
    assert sorted(losses[0]) == [1, 2, 3, 4] and losses[0] == losses[1]  # one model, trained together
    assert (tmp_path / "run" / "checkpoints" / "checkpoint").is_file()  # written by node 0, the chief


def _free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class _Node:
    """A node's process, with the interface test_multiworker.finish expects."""

    def __init__(self, folder, process, files):
        self.folder, self.process, self.files = folder, process, files

    def wait(self, timeout: float = 600) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            for f in self.files:
                f.close()

    def lines(self) -> list[str]:
        return (self.folder / "stdout").read_text().splitlines()

    def errors(self) -> str:
        return (self.folder / "stderr").read_text()
