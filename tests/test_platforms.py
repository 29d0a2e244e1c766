"""Each platform's fake environment -> the paths and settings shadownet takes from it."""

from __future__ import annotations

import json

import pytest

from shadownet import config as shadownet_config
from shadownet.errors import ShadownetError
from shadownet.platforms import Platform, detect, gcs_path, pick, write_failure


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
    assert detect({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, tmp_path) == Platform("kubernetes")
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/termination-log").write_text("")
    platform = detect({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, tmp_path)
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
    config = shadownet_config.load(config_file, {"learning_rate": "0.03"}, platform.settings, "sagemaker hyperparameters")
    assert (config.batch_size, config.train_steps, config.learning_rate, config.warmup_steps) == (16, 200, 0.03, 500)
    with pytest.raises(ShadownetError, match=r"unknown setting 'colour' in sagemaker hyperparameters"):
        shadownet_config.load(None, {}, {"colour": "blue"}, "sagemaker hyperparameters")
