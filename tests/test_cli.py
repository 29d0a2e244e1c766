"""The command line as a user meets it: help, version, flag spellings, errors, progress output."""

import io
import os
import pty
import re
import subprocess
import sys

from conftest import run_cli
from shadownet import __version__, tflog
from shadownet.progress import Progress


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


# TensorFlow's C++ start-up lines (absl's format, or its banner), which a first run must not show.
NOISE = re.compile(r"^([IWE]\d{4} \d\d:\d\d:\d+\.\d+ |WARNING: All log messages before absl)", re.M)


def test_a_quiet_first_run(tmp_path, good_dataset):
    records = tmp_path / "records"
    run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", records, "--workers", "1", check=True)
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = run_cli("train", "--tfrecords-dir", records, "--model-dir", tmp_path / "model", "--train-steps", "2",
                     "--batch-size", "4", "--eval-every", "2", "--log-every", "1", env=env, check=True)
    assert "trained to step 2" in result.stdout
    assert not NOISE.search(result.stderr), result.stderr
    # Asked for, the lines are there (the oneDNN notice at import at least, on x86 Linux).
    verbose = run_cli("inspect", "--tfrecords-dir", records, "--verbose", env=env, check=True)
    assert NOISE.search(verbose.stderr) and "train: 27 records read back" in verbose.stdout


def test_the_log_filter_drops_start_up_lines_only():
    shown = [line for line in (
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
        b"I0000 00:00:1796216711.248678   17370 port.cc:153] oneDNN custom operations are on.\n",
        b"W0000 00:00:1796216711.248678   17370 gpu_timer.cc:114] Skipping the delay kernel\n",
        b"E0000 00:00:1796216722.784432   17370 util.cc:131] oneDNN supports DT_BOOL only on platforms with AVX-512.\n",
        b"E0000 00:00:1796216722.784432   17370 cuda_dnn.cc:522] Loaded runtime CuDNN library: 9.1.0 but 9.3 needed\n",
        b"F0000 00:00:1796216722.784432   17370 tensor.cc:20] Check failed: dtype() == expected_dtype\n",
        b"Traceback (most recent call last):\n",
    ) if tflog.shown(line)]
    assert [line.split(b"] ")[-1][:12] for line in shown] == [b"Loaded runti", b"Check failed", b"Traceback (m"]


def test_the_last_lines_of_a_process_that_aborts_still_come_through():
    # Why a filter process and not a thread: the dying process's last words are still in the pipe.
    script = ("import os, sys; from shadownet import tflog; tflog.install(); "
              "os.write(2, b'I0000 00:00:1.5 7 x.cc:1] start-up chatter\\n'); "
              "os.write(2, b'F0000 00:00:1.5 7 x.cc:2] Check failed: the last words\\n'); "
              "print('from python', file=sys.stderr); os.abort()")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == -6
    assert "Check failed: the last words" in result.stderr and "from python" in result.stderr
    assert "start-up chatter" not in result.stderr
