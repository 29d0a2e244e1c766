"""The command line as a user meets it: help, version, flag spellings, errors, progress output."""

import io
import os
import pty
import subprocess
import sys

from shadownet import __version__
from shadownet.progress import Progress

from conftest import run_cli


def test_help_and_version():
    result = run_cli("--help", check=True)
    for command in ("synth", "charset", "validate", "tfrecords", "inspect"):
        assert command in result.stdout
    assert run_cli("--version", check=True).stdout.strip() == f"shadownet {__version__}"


def test_seed_spellings_with_underscores(tmp_path, good_dataset):
    result = run_cli("tfrecords", "--dataset_dir", good_dataset, "--save_dir", tmp_path / "out",
                     "--validation_ratio=0.5", "--workers", "1", check=True)
    assert "wrote 15 train, 15 validation, 8 test records" in result.stderr


def test_usage_errors_are_short_and_exit_2(tmp_path, good_dataset):
    missing = run_cli("tfrecords", "--dataset-dir", good_dataset)
    assert missing.returncode == 2 and "--save-dir" in missing.stderr
    bad = run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", tmp_path, "--shards", "0")
    assert bad.returncode == 2 and "--shards must be at least 1" in bad.stderr and "Traceback" not in bad.stderr
    nowhere = run_cli("validate", "--dataset-dir", tmp_path / "nope")
    assert nowhere.returncode == 1 and "dataset directory not found" in nowhere.stderr


def test_inspect_reads_every_record_back(tmp_path, good_dataset):
    save = tmp_path / "out"
    run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", save, check=True)
    result = run_cli("inspect", "--tfrecords-dir", save, check=True)
    assert "train: 27 records read back" in result.stdout
    assert "test: 8 records read back" in result.stdout


def test_plain_progress_lines_when_not_a_terminal(good_dataset, tmp_path):
    result = run_cli("validate", "--dataset-dir", good_dataset, check=True)
    assert "validate: 38/38 (100.0%)" in result.stderr
    assert "\r" not in result.stderr


def test_progress_bar_on_a_terminal(good_dataset):
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "shadownet", "validate", "--dataset-dir", str(good_dataset)],
                               stdin=follower, stdout=follower, stderr=follower, env=dict(os.environ))
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(timeout=60) == 0
    os.close(leader)
    text = output.decode()
    assert "\rvalidate [" in text and "#" * 30 in text and "38/38" in text


def test_progress_unit():
    stream = io.StringIO()
    progress = Progress(4, "step", stream=stream, interval=0.0)
    progress.update(2)
    progress.close()
    assert stream.getvalue().splitlines()[0].startswith("step: 2/4 (50.0%)")
    assert stream.getvalue().splitlines()[-1].startswith("step: 2/4")
