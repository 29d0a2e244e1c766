"""Paths the process may not touch are the user's problem: one line, exit 1, the failure file; never a traceback.

On the host, outside any container: the command runs as an unprivileged UID (setpriv, when the tests run as
root as in CI; the test's own UID otherwise) against folders it may not read or write. The same cases in the
images, with the platforms' failure files, are in tests/test_image_users.py.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import Dataset, words
from shadownet.cloud.platforms import detect
from shadownet.errors import AccessError, ShadownetError, access_error

UNPRIVILEGED = (12345, 12345)


@pytest.fixture
def open_tmp():
    """A folder every UID can enter (pytest's own tmp_path is private to the user running the tests)."""
    path = Path(tempfile.mkdtemp(prefix="shadownet-permissions-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_unprivileged(*args, cwd: Path) -> tuple[subprocess.CompletedProcess, int]:
    """``shadownet ARGS`` as a UID that owns nothing here; (result, that uid)."""
    command = [sys.executable, "-m", "shadownet", *map(str, args)]
    uid = os.getuid()
    if uid == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root needs util-linux's setpriv to drop to another UID")
        command = ["setpriv", f"--reuid={UNPRIVILEGED[0]}", f"--regid={UNPRIVILEGED[1]}", "--clear-groups",
                   *command]
        uid = UNPRIVILEGED[0]
    env = dict(os.environ, PYTHONUNBUFFERED="1", HOME=str(cwd))
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd, env=env), uid


def small_dataset(root: Path) -> Path:
    ds = Dataset(root)
    for i, word in enumerate(words(12, seed=4)):
        ds.sample("Train" if i < 10 else "Test", f"img/{i}.jpg", word)
    path = ds.write()
    for item in [path, *path.rglob("*")]:
        item.chmod(0o755 if item.is_dir() else 0o644)
    return path


def assert_one_line(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [f"shadownet: error: {expected}"]
    assert "Traceback" not in result.stdout + result.stderr


def test_tfrecords_unreadable_annotations(open_tmp):
    dataset = small_dataset(open_tmp / "dataset")
    (dataset / "Train" / "sample.txt").chmod(0o600)
    (open_tmp / "out").mkdir(mode=0o777)
    (open_tmp / "out").chmod(0o777)
    result, uid = run_unprivileged("tfrecords", "--dataset-dir", dataset, "--save-dir", open_tmp / "out" / "records",
                                   "--workers", "1", cwd=open_tmp)
    assert_one_line(result, f"cannot read {dataset}/Train/sample.txt: permission denied (running as uid {uid})")
    assert list((open_tmp / "out").iterdir()) == []


def test_tfrecords_dataset_folder_out_of_reach(open_tmp):
    """A folder the UID cannot even enter: what it tried to read is reported, as a read."""
    dataset = small_dataset(open_tmp / "dataset")
    dataset.chmod(0o700)
    result, uid = run_unprivileged("tfrecords", "--dataset-dir", dataset, "--save-dir", open_tmp / "records",
                                   "--workers", "1", cwd=open_tmp)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"shadownet: error: cannot read {dataset}/")
    assert line.endswith(f": permission denied (running as uid {uid})")


def test_tfrecords_output_folder_not_writable(open_tmp):
    dataset = small_dataset(open_tmp / "dataset")
    (open_tmp / "out").mkdir()
    (open_tmp / "out").chmod(0o555)
    result, uid = run_unprivileged("tfrecords", "--dataset-dir", dataset, "--save-dir", open_tmp / "out" / "records",
                                   "--workers", "1", cwd=open_tmp)
    assert_one_line(result, f"cannot write {open_tmp}/out/records: permission denied (running as uid {uid})")


@pytest.mark.slow
def test_train_unreadable_records(open_tmp):
    from conftest import word_records

    records = word_records(open_tmp / "data", 12, 10, 5, "--workers", "1")
    for item in [open_tmp / "data", *(open_tmp / "data").rglob("*")]:
        item.chmod(0o755 if item.is_dir() else 0o644)
    (records / "manifest.json").chmod(0o600)
    (open_tmp / "runs").mkdir()
    (open_tmp / "runs").chmod(0o777)
    result, uid = run_unprivileged("train", "--tfrecords-dir", records, "--model-dir", open_tmp / "runs" / "run",
                                   "--model", "shadownet_small", "--train-steps", "1", "--batch-size", "4",
                                   cwd=open_tmp)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"shadownet: error: cannot read {records}/manifest.json: permission denied (running as uid {uid})")
    assert "Traceback" not in result.stderr


# --- how errors are told apart and worded ---------------------------------------------------------------------

def test_os_errors_of_access_become_one_line(tmp_path):
    readable = tmp_path / "config.json"
    readable.write_text("{}")
    cases = {
        PermissionError(errno.EACCES, "Permission denied", str(readable)):
            f"cannot write {readable}: permission denied (running as uid {os.getuid()})",
        OSError(errno.EROFS, "Read-only file system", "/data/output/records"):
            "cannot write /data/output/records: read-only file system",
        OSError(errno.ENOSPC, "No space left on device", "/data/output/x.partial"):
            "cannot write /data/output/x.partial: no space left on device",
        OSError(errno.ENOSPC, "No space left on device"): "cannot write: no space left on device",
        OSError(errno.EDQUOT, "Disk quota exceeded", "/data/output/x"):
            "cannot write /data/output/x: disk quota exceeded",
    }
    for exc, message in cases.items():
        found = access_error(exc)
        assert isinstance(found, AccessError) and str(found) == message and found.exit_code == 1
    # A write() into a full file system names no file: the command's output folder is named instead.
    assert str(access_error(OSError(errno.ENOSPC, "No space left on device"), "/data/output/records")) == (
        "cannot write under /data/output/records: no space left on device")
    # Not access problems: a missing file, a permission error that names nothing, anything else.
    for exc in (FileNotFoundError(errno.ENOENT, "No such file", "/x"), PermissionError(errno.EACCES, "denied"),
                ValueError("/x; Permission denied"), ShadownetError("bad flag")):
        assert access_error(exc) is None


def test_a_user_error_raised_from_an_access_error_says_so():
    try:
        try:
            raise PermissionError(errno.EROFS, "Read-only file system", "/opt/ml/model/shadownet")
        except OSError as exc:
            raise ShadownetError(f"cannot move the export into place ({exc.strerror})") from None
    except ShadownetError as exc:
        assert str(access_error(exc)) == "cannot write /opt/ml/model/shadownet: read-only file system"
    try:  # a bug while handling one stays a bug
        try:
            raise PermissionError(errno.EACCES, "Permission denied", "/x")
        except OSError:
            raise KeyError("oops")  # noqa: B904 (the case under test: a bug raised while handling an OSError)
    except KeyError as exc:
        assert access_error(exc) is None


def test_tensorflow_file_system_errors():
    tf = pytest.importorskip("tensorflow")
    full = tf.errors.ResourceExhaustedError(
        None, None, "{{function_node __wrapped__SaveV2_dtypes_44_device_/job:localhost/replica:0/task:0/device:CPU:0}}"
                    " /opt/ml/checkpoints/checkpoints/ckpt-1_temp/part-00000-of-00001.data-00000-of-00001."
                    "tempstate123; No space left on device [Op:SaveV2]")
    assert str(access_error(full)) == ("cannot write /opt/ml/checkpoints/checkpoints/ckpt-1_temp/part-00000-of-"
                                       "00001.data-00000-of-00001.tempstate123: no space left on device")
    read_only = tf.errors.PermissionDeniedError(None, None, "/data/output/run/logs/train; Read-only file system")
    assert str(access_error(read_only)) == "cannot write /data/output/run/logs/train: read-only file system"
    out_of_memory = tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[64,512]")
    assert access_error(out_of_memory) is None


def test_unreadable_sagemaker_hyperparameters_still_name_the_failure_file(tmp_path):
    config = tmp_path / "opt/ml/input/config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text('{"train_steps": ')
    with pytest.raises(ShadownetError, match="malformed JSON") as raised:
        detect({}, tmp_path)
    assert raised.value.platform.name == "sagemaker"
    assert raised.value.platform.failure_file == tmp_path / "opt/ml/output/failure"
    (config / "hyperparameters.json").write_text(json.dumps({"train_steps": "3"}))
    assert detect({}, tmp_path).settings == {"train_steps": "3"}
