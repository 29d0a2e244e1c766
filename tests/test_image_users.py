"""Who the images run as, on each platform's folders, and what they say when a folder is out of bounds.

The images start as root, as SageMaker and UAI Train run them, on those platforms' root-owned folders; any
other UID runs them as well (`docker run --user`, Kubernetes' runAsUser): tests/test_docker.py generates and
trains as UID 12345 (`make tfrecords train ...` as the caller, 12345 when the tests run as root) and generates
as 10001, each owning every file written. A
path the process may not read or write (an unreadable input, a read-only or full output folder) ends the
command with one line, exit 1 and the platform's failure file, never a traceback. Skipped without Docker or
the images, failed under CI=true (as tests/test_docker.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from conftest import word_records
from test_docker import OTHER_USER, owners, run_image, sagemaker_tree

ROOT = (0, 0)
UAI_FLAGS = ["--work_dir=/data", "--data_dir=/data/data", "--output_dir=/data/output", "--log_dir=/data/output",
             "--num_gpus=0"]
SHORT_TRAINING = ["--model", "shadownet_small", "--train-steps", "2", "--batch-size", "8", "--warmup-steps", "1",
                  "--eval-every", "1000", "--log-every", "1"]
# Kubernetes' failure file, for the generation image (which has no SageMaker layout to find).
KUBERNETES_ENV = ["--env", "KUBERNETES_SERVICE_HOST=kubernetes.default.svc"]


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    return word_records(tmp_path_factory.mktemp("image-users"), 40, 32, 11, "--workers", "1")


def root_owned_copy(source: Path, target: Path) -> Path:
    """``source`` copied to ``target`` as a platform leaves it: root's (when the tests run as root), 0755/0644."""
    shutil.copytree(source, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
        if os.getuid() == 0:
            os.chown(path, 0, 0)
    return target


def open_folder(path: Path) -> Path:
    """A folder any UID may write to (the platform's output folder, handed to an unprivileged user)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


def termination_log(tmp_path: Path) -> Path:
    log = tmp_path / "termination-log"
    log.write_text("")
    log.chmod(0o666)
    return log


def assert_user_error(result, pattern: str) -> str:
    """Exit 1, one line on stderr matching ``pattern`` (after "shadownet: error: "), no traceback; the reason."""
    assert result.returncode == 1, f"exit {result.returncode}:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("shadownet: error: ")]
    assert len(errors) == 1 and re.fullmatch(pattern, errors[0].removeprefix("shadownet: error: ")), result.stderr
    return errors[0].removeprefix("shadownet: error: ")


# --- each platform's user --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_uai_train_as_root_on_root_owned_folders(records, cpu_image, tmp_path):
    """UAI Train: root-owned /data/data (0755) and /data/output mounts, its flags appended to our command."""
    data = root_owned_copy(records, tmp_path / "data")
    (tmp_path / "empty").mkdir()
    output = root_owned_copy(tmp_path / "empty", tmp_path / "output")
    result = run_image("train-cpu", "train", *SHORT_TRAINING, *UAI_FLAGS,
                       mounts={"/data/data": data, "/data/output": output})
    assert "platform=uai" in result.stdout and "step=2 loss=" in result.stdout
    assert (output / "run" / "checkpoints" / "ckpt-2.index").is_file()
    assert json.loads((output / "run" / "config.json").read_text())["train_steps"] == 2
    assert (output / "export" / "shadownet" / "1" / "saved_model.pb").is_file()
    assert json.loads((output / "evaluation-test.json").read_text())["num_samples"] == 8
    assert owners(output) == {ROOT}  # root in the container is root on the host (no user namespace)


# --- out of bounds: one line, exit 1, the failure file -----------------------------------------------------------

def test_generation_cannot_read_its_input(records, tfrecords_image, tmp_path):
    dataset = root_owned_copy(records.parent / "dataset", tmp_path / "dataset")
    dataset.chmod(0o700)  # root's only (or the test user's): not the container's UID
    log = termination_log(tmp_path)
    result = run_image("tfrecords", "tfrecords", "--dataset-dir", "/data/data", "--save-dir", "/data/output/records",
                       "--workers", "1", user="%d:%d" % OTHER_USER, extra=KUBERNETES_ENV, check=False,
                       mounts={"/data/data": dataset, "/data/output": open_folder(tmp_path / "out"),
                               "/dev/termination-log": log})
    reason = assert_user_error(result, r"cannot read /data/data/\S+: permission denied \(running as uid 12345\)")
    assert log.read_text() == f"shadownet tfrecords: {reason}"
    assert list((tmp_path / "out").iterdir()) == []


def test_generation_into_a_read_only_folder(records, tfrecords_image, tmp_path):
    log = termination_log(tmp_path)
    result = run_image("tfrecords", "tfrecords", "--dataset-dir", "/data/data", "--save-dir", "/data/output/records",
                       "--workers", "1", extra=KUBERNETES_ENV, check=False,
                       mounts={"/data/data:ro": records.parent / "dataset", "/data/output:ro": tmp_path,
                               "/dev/termination-log": log})
    reason = assert_user_error(result, r"cannot write /data/output/records: read-only file system")
    assert log.read_text() == f"shadownet tfrecords: {reason}"


def test_generation_into_a_full_folder(records, tfrecords_image, tmp_path):
    log = termination_log(tmp_path)
    full = ["--mount", "type=tmpfs,destination=/data/output,tmpfs-size=16384", *KUBERNETES_ENV]
    result = run_image("tfrecords", "tfrecords", "--dataset-dir", "/data/data", "--save-dir", "/data/output/records",
                       "--workers", "1", extra=full, check=False,
                       mounts={"/data/data:ro": records.parent / "dataset", "/dev/termination-log": log})
    reason = assert_user_error(result, r"cannot write( under)? /data/output/records\S*: no space left on device")
    assert log.read_text() == f"shadownet tfrecords: {reason}"


@pytest.mark.slow
def test_sagemaker_job_run_as_another_uid_cannot_read_the_channel(records, cpu_image, tmp_path):
    """The report that started it: /opt/ml/input/data is root's only (as local mode makes it), the UID is not."""
    ml = sagemaker_tree(tmp_path / "ml", records, {"train_steps": "2"})
    (ml / "input" / "data").chmod(0o700)
    for folder in ("model", "output", "checkpoints"):
        open_folder(ml / folder)
    result = run_image("train-cpu", "train", user="%d:%d" % OTHER_USER, mounts={"/opt/ml": ml}, check=False)
    reason = assert_user_error(result, re.escape(
        "cannot read /opt/ml/input/data/train/manifest.json: permission denied (running as uid 12345)"))
    assert (ml / "output" / "failure").read_text() == f"shadownet train: {reason}"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["read-only", "full"])
def test_sagemaker_job_whose_checkpoint_folder_is_read_only_or_full(how, records, cpu_image, tmp_path):
    ml = sagemaker_tree(tmp_path / "ml", records, {"model": "shadownet_small", "train_steps": "2",
                                                     "batch_size": "8", "eval_every": "1000"})
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    if how == "read-only":
        extra, mounts = [], {"/opt/ml/checkpoints:ro": checkpoints}
        pattern = r"cannot write /opt/ml/checkpoints\S*: read-only file system"
    else:  # room for the config and the logs, not for a checkpoint of 2.2M parameters
        extra, mounts = ["--mount", "type=tmpfs,destination=/opt/ml/checkpoints,tmpfs-size=262144"], {}
        pattern = r"cannot write( /opt/ml/checkpoints/\S+)?: no space left on device"
    result = run_image("train-cpu", "train", extra=extra, mounts={"/opt/ml": ml, **mounts}, check=False)
    reason = assert_user_error(result, pattern)
    assert (ml / "output" / "failure").read_text() == f"shadownet train: {reason}"
