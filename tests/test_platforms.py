"""Each platform's fake environment -> the paths and settings shadownet takes from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shadownet import config as shadownet_config
from shadownet.cloud.platforms import (
    Cluster,
    Platform,
    cluster,
    detect,
    gcs_path,
    parse_tf_config,
    parse_vertex_cluster_spec,
    pick,
    sagemaker_cluster,
    write_failure,
)
from shadownet.errors import ShadownetError


def sagemaker_tree(root, hyperparameters: dict | str, checkpoint_path: str | None = None):
    config_dir = root / "opt/ml/input/config"
    config_dir.mkdir(parents=True)
    text = hyperparameters if isinstance(hyperparameters, str) else json.dumps(hyperparameters)
    (config_dir / "hyperparameters.json").write_text(text)
    if checkpoint_path:
        (config_dir / "checkpointconfig.json").write_text(json.dumps({"LocalPath": checkpoint_path}))
    return root


def test_local_when_nothing_says_otherwise(tmp_path):
    assert detect({"HOME": "/root"}, tmp_path) == Platform("local")


def test_sagemaker_paths_and_string_hyperparameters(tmp_path):
    # As the SageMaker Python SDK writes them: every value a string, some JSON-encoded twice.
    root = sagemaker_tree(tmp_path, {"batch_size": '"32"', "mixed_precision": '"bfloat16"', "augment": "False",
                                     "learning_rate": "0.002", "sagemaker_program": '"train.py"'})
    platform = detect({}, root)
    ml = root / "opt/ml"
    assert (platform.name, platform.tfrecords_dir, platform.model_dir, platform.export_dir, platform.report_dir) == (
        "sagemaker", str(ml / "input/data/train"), str(ml / "checkpoints"), str(ml / "model"), str(ml / "output/data"))
    assert platform.failure_file == ml / "output/failure"
    assert set(platform.settings) == {"batch_size", "mixed_precision", "augment", "learning_rate"}
    config = shadownet_config.load(None, platform.settings)
    assert (config.batch_size, config.mixed_precision, config.augment, config.learning_rate) == (
        32, "bfloat16", False, 0.002)


def test_sagemaker_channel_init_is_the_run_to_fine_tune_from(tmp_path, monkeypatch):
    root = sagemaker_tree(tmp_path, {})
    assert detect({}, root).init_dir is None
    (root / "opt/ml/input/data/init").mkdir(parents=True)
    assert detect({}, root).init_dir == str(root / "opt/ml/input/data/init")
    assert detect({"SM_CHANNEL_INIT": "/elsewhere"}, root).init_dir == "/elsewhere"

    # /opt/ml/input/data unreadable (the job runs as another UID): not this channel's error to report.
    def refused(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Path, "is_dir", refused)
    assert detect({}, root).init_dir is None


def test_sagemaker_variables_and_checkpoint_config(tmp_path):
    root = sagemaker_tree(tmp_path, {}, checkpoint_path="/opt/ml/ckpt-elsewhere")
    env = {"SM_CHANNEL_TRAIN": "/data/records", "SM_MODEL_DIR": "/models", "SM_OUTPUT_DATA_DIR": "/out"}
    platform = detect(env, root)
    assert (platform.tfrecords_dir, platform.model_dir, platform.export_dir, platform.report_dir) == (
        "/data/records", "/opt/ml/ckpt-elsewhere", "/models", "/out")
    assert detect({"TRAINING_JOB_NAME": "job-1"}, tmp_path / "empty").name == "sagemaker"


def test_malformed_hyperparameters_name_the_file_and_line(tmp_path):
    root = sagemaker_tree(tmp_path, '{\n  "batch_size": "32",\n  oops\n}')
    with pytest.raises(ShadownetError, match=r"hyperparameters.json:3: malformed JSON"):
        detect({}, root)
    with pytest.raises(ShadownetError, match=r"batch_size must be a whole number, not 'many'"):
        shadownet_config.load(None, detect({}, sagemaker_tree(tmp_path / "b", {"batch_size": "many"})).settings)


def test_vertex_reads_its_buckets_through_the_gcs_mount():
    env = {"AIP_MODEL_DIR": "gs://bucket/job/model/", "AIP_CHECKPOINT_DIR": "gs://bucket/job/checkpoints/",
           "AIP_TENSORBOARD_LOG_DIR": "gs://bucket/job/logs/", "CLOUD_ML_PROJECT_ID": "p"}
    platform = detect(env)
    assert (platform.name, platform.model_dir, platform.export_dir, platform.log_dir) == (
        "vertex", "/gcs/bucket/job/checkpoints/", "/gcs/bucket/job/model/", "/gcs/bucket/job/logs/")
    assert platform.tfrecords_dir is None and platform.failure_file is None
    assert gcs_path("/local/path") == "/local/path" and gcs_path(None) is None


def test_uai_train_flags():
    flags = {"work_dir": "/data", "data_dir": "/data/data", "output_dir": "/data/output/", "log_dir": "/data/output",
             "num_gpus": "1"}
    platform = detect({}, uai=flags)
    assert (platform.name, platform.tfrecords_dir, platform.model_dir, platform.export_dir, platform.log_dir) == (
        "uai", "/data/data", "/data/output/run", "/data/output/export", "/data/output")


def test_kubernetes_failure_log(tmp_path):
    assert detect({"KUBERNETES_SERVICE_HOST": "kubernetes.default.svc"}, tmp_path) == Platform("kubernetes")
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/termination-log").write_text("")
    platform = detect({"KUBERNETES_SERVICE_HOST": "kubernetes.default.svc"}, tmp_path)
    assert platform.failure_file == tmp_path / "dev/termination-log"
    write_failure(platform, "x" * 5000)
    assert (tmp_path / "dev/termination-log").read_text() == "x" * 4096


def test_flags_win_over_platform_paths(tmp_path):
    platform = detect({}, sagemaker_tree(tmp_path, {}))
    assert pick("/mine", platform.tfrecords_dir, "--tfrecords-dir", platform) == "/mine"
    assert pick(None, platform.tfrecords_dir, "--tfrecords-dir", platform) == platform.tfrecords_dir
    with pytest.raises(ShadownetError, match=r"^--tfrecords-dir is required \(vertex does not provide it\)$"):
        pick(None, None, "--tfrecords-dir", Platform("vertex"))


def test_sagemaker_failure_reason_is_cut_to_what_it_shows(tmp_path):
    platform = detect({}, sagemaker_tree(tmp_path, {}))
    write_failure(platform, "reason " * 500)
    assert len(platform.failure_file.read_text()) == 1024
    write_failure(Platform("local"), "nothing written anywhere")  # no file: nothing to do


def test_precedence_flags_over_platform_over_config_file_over_defaults(tmp_path):
    config_file = tmp_path / "train.yaml"
    config_file.write_text("batch_size: 16\ntrain_steps: 100\nlearning_rate: 0.01\n")
    platform = detect({}, sagemaker_tree(tmp_path, {"train_steps": "200", "learning_rate": '"0.02"'}))
    config = shadownet_config.load(config_file, {"learning_rate": "0.03"}, platform.settings,
                                   "sagemaker hyperparameters")
    assert (config.batch_size, config.train_steps, config.learning_rate, config.warmup_steps) == (16, 200, 0.03, 500)
    with pytest.raises(ShadownetError, match=r"unknown setting 'colour' in sagemaker hyperparameters"):
        shadownet_config.load(None, {}, {"colour": "blue"}, "sagemaker hyperparameters")


# -- several training machines: TF_CONFIG, Vertex AI's CLUSTER_SPEC, SageMaker's hosts --------------------------


def test_kubeflow_tf_config_without_a_chief_makes_worker_0_the_chief():
    # As the TFJob operator injects it: headless services on port 2222.
    spec = {"worker": ["job-worker-0.ns.svc:2222", "job-worker-1.ns.svc:2222", "job-worker-2.ns.svc:2222"]}
    found = [cluster({"TF_CONFIG": json.dumps({"cluster": spec, "task": {"type": "worker", "index": i},
                                               "environment": "cloud"})}) for i in range(3)]
    assert [c.is_chief for c in found] == [True, False, False]
    assert [c.task_index for c in found] == [0, 1, 2] and all(c.workers == 3 for c in found)
    assert found[1].tf_config() == {"cluster": spec, "task": {"type": "worker", "index": 1}}


def test_vertex_tf_config_has_a_chief_and_ignores_other_jobs():
    spec = {"chief": ["cmle-training-workerpool0-0:2222"],
            "worker": ["cmle-training-workerpool1-0:2222", "cmle-training-workerpool1-1:2222"],
            "evaluator": ["cmle-training-workerpool3-0:2222"]}
    chief = parse_tf_config(json.dumps({"cluster": spec, "task": {"type": "chief", "index": 0}}))
    worker = parse_tf_config(json.dumps({"cluster": spec, "task": {"type": "worker", "index": 0}}))
    assert (chief.is_chief, worker.is_chief, chief.workers) == (True, False, 3)
    assert set(chief.jobs) == {"chief", "worker"}  # the evaluator does not train
    with pytest.raises(ShadownetError, match=r"task type 'evaluator' does not train"):
        parse_tf_config(json.dumps({"cluster": spec, "task": {"type": "evaluator", "index": 0}}))


def test_vertex_cluster_spec_pools_when_there_is_no_tf_config():
    spec = {"cluster": {"workerpool0": ["wp0-0:2222"], "workerpool1": ["wp1-0:2222", "wp1-1:2222"]},
            "environment": "cloud", "task": {"type": "workerpool1", "index": 1}, "job": "{...}"}
    found = cluster({"CLUSTER_SPEC": json.dumps(spec)})
    assert found == Cluster({"chief": ("wp0-0:2222",), "worker": ("wp1-0:2222", "wp1-1:2222")}, "worker", 1)
    assert not found.is_chief
    chief = parse_vertex_cluster_spec(json.dumps(dict(spec, task={"type": "workerpool0", "index": 0})))
    assert chief.is_chief and chief.task_type == "chief"
    # TF_CONFIG, when both are set, wins.
    both = cluster({"CLUSTER_SPEC": json.dumps(spec),
                    "TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker"}})})
    assert both.jobs == {"worker": ("a:1", "b:1")} and both.is_chief


def test_sagemaker_hosts_become_workers_on_port_8890_in_sorted_order(tmp_path):
    env = {"SM_HOSTS": '["algo-2","algo-1","algo-3"]', "SM_CURRENT_HOST": "algo-2"}
    found = cluster(env, tmp_path)
    assert found.tf_config() == {"cluster": {"worker": ["algo-1:8890", "algo-2:8890", "algo-3:8890"]},
                                 "task": {"type": "worker", "index": 1}}
    assert not found.is_chief and cluster(dict(env, SM_CURRENT_HOST="algo-1"), tmp_path).is_chief
    # Without the toolkit's variables, from the resource config SageMaker writes.
    config_dir = tmp_path / "opt/ml/input/config"
    config_dir.mkdir(parents=True)
    (config_dir / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-3", "hosts": ["algo-1", "algo-3", "algo-2"], "network_interface_name": "eth0"}))
    assert cluster({}, tmp_path) == sagemaker_cluster(["algo-1", "algo-2", "algo-3"], "algo-3", "x")
    assert cluster({}, tmp_path).task_index == 2
    with pytest.raises(ShadownetError, match=r"the current host 'algo-9' is not among the hosts"):
        sagemaker_cluster(["algo-1", "algo-2"], "algo-9", "SM_HOSTS")


def test_one_worker_or_none_is_no_cluster(tmp_path):
    assert cluster({}, tmp_path) is None
    assert cluster({"SM_HOSTS": '["algo-1"]', "SM_CURRENT_HOST": "algo-1"}, tmp_path) is None
    assert cluster({"TF_CONFIG": '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}'}) is None


def test_malformed_tf_config_is_explained():
    with pytest.raises(ShadownetError, match=r"^TF_CONFIG: malformed JSON"):
        cluster({"TF_CONFIG": "{cluster"})
    with pytest.raises(ShadownetError, match=r'^TF_CONFIG: expected \{"cluster"'):
        cluster({"TF_CONFIG": '{"task": {"type": "worker"}}'})
    with pytest.raises(ShadownetError, match=r"task worker 2 is not in the cluster \(2 worker tasks\)"):
        cluster({"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}'})
    with pytest.raises(ShadownetError, match=r'cluster.worker must be a list of "host:port"'):
        cluster({"TF_CONFIG": '{"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 0}}'})
    with pytest.raises(ShadownetError, match=r"task type 'ps' does not train"):
        cluster({"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:1"], "ps": ["c:1"]}, "task": {"type": "ps"}}'})
