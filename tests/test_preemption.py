"""A real training process stopped by SIGTERM or killed by SIGKILL, then resumed; platform paths and flags."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from conftest import optimizer_iterations, run_cli, word_records

pytestmark = pytest.mark.slow

STEPS = 40
TRAIN = ["--model", "shadownet_small", "--batch-size", "4", "--log-every", "1", "--eval-every", "1000",
         "--warmup-steps", "2", "--shuffle-buffer", "64"]


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    return word_records(tmp_path_factory.mktemp("preemption"), 40, 32, 9, "--workers", "1")


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "shadownet", "train", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def wait_for_step(process: subprocess.Popen, step: int) -> list[str]:
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith(f"step={step} "):
            return lines
    raise AssertionError(f"training ended before step {step}:\n{''.join(lines)}\n{process.stderr.read()}")


def test_sigterm_checkpoints_the_step_reached_and_the_rerun_finishes_exactly(records_dir, tmp_path):
    model_dir = tmp_path / "run"
    args = ["--tfrecords-dir", records_dir, "--model-dir", model_dir, "--train-steps", STEPS,
            "--checkpoint-every", 1000, *TRAIN]
    process = start(*args)
    wait_for_step(process, 3)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 143, err  # 128 + SIGTERM: retried by Kubeflow's ExitCode policy
    stopped = int(err.split("stopped at step ")[1].split()[0])
    assert 3 <= stopped < STEPS and "checkpoint saved" in err
    assert (model_dir / "checkpoints" / f"ckpt-{stopped}.index").exists()
    assert optimizer_iterations(model_dir) == stopped

    resumed = run_cli("train", *args, check=True)
    assert f"at step {stopped}" in resumed.stdout and f"step={stopped + 1} " in resumed.stdout
    assert f"trained to step {STEPS}" in resumed.stdout
    assert optimizer_iterations(model_dir) == STEPS


def test_sigkill_resumes_from_the_last_periodic_checkpoint(records_dir, tmp_path):
    model_dir = tmp_path / "run"
    args = ["--tfrecords-dir", records_dir, "--model-dir", model_dir, "--train-steps", STEPS,
            "--checkpoint-every", 5, *TRAIN]
    process = start(*args)
    wait_for_step(process, 12)
    process.kill()
    process.communicate(timeout=60)
    saved = sorted(int(p.name[5:].split(".")[0]) for p in (model_dir / "checkpoints").glob("ckpt-*.index"))
    assert saved and saved[-1] in (10, 15) and saved[-1] % 5 == 0
    resumed = run_cli("train", *args, check=True)
    assert f"at step {saved[-1]}" in resumed.stdout and f"trained to step {STEPS}" in resumed.stdout
    assert optimizer_iterations(model_dir) == STEPS


def test_uai_train_flags_choose_the_paths(records_dir, tmp_path):
    """UAI Train appends its flags to the command; the run, the export and the logs go under output_dir."""
    output = tmp_path / "output"
    result = run_cli("train", "--train-steps", 2, *TRAIN, "--work_dir=/data", f"--data_dir={records_dir}",
                     f"--output_dir={output}", f"--log_dir={output}", "--num_gpus=0", check=True)
    assert "platform=uai\n" in result.stdout
    assert (output / "run" / "checkpoints" / "ckpt-2.index").exists()
    assert (output / "export" / "shadownet" / "1" / "saved_model.pb").exists()
    assert list(output.glob("events.out.tfevents.*"))  # TensorBoard in --log_dir
    assert (output / "evaluation-test.json").exists()


def test_vertex_variables_choose_the_paths_and_flags_win(records_dir, tmp_path):
    env = dict(os.environ, AIP_CHECKPOINT_DIR=str(tmp_path / "ckpt"), AIP_MODEL_DIR=str(tmp_path / "model"),
               AIP_TENSORBOARD_LOG_DIR=str(tmp_path / "tb"))
    result = run_cli("train", "--tfrecords-dir", records_dir, "--train-steps", 2, *TRAIN, env=env, check=True)
    assert "platform=vertex\n" in result.stdout
    assert (tmp_path / "ckpt" / "checkpoints" / "ckpt-2.index").exists()
    assert (tmp_path / "model" / "shadownet" / "1" / "saved_model.pb").exists()
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    flagged = run_cli("train", "--tfrecords-dir", records_dir, "--model-dir", tmp_path / "mine", "--train-steps", 2,
                      *TRAIN, env=env, check=True)  # an explicit flag beats AIP_CHECKPOINT_DIR
    assert (tmp_path / "mine" / "checkpoints" / "ckpt-2.index").exists()
    assert "already trained" not in flagged.stdout and "trained to step 2" in flagged.stdout  # a new run, not AIP's


def test_a_missing_path_names_the_flag(tmp_path):
    result = run_cli("train", "--train-steps", 2, env={k: v for k, v in os.environ.items()
                                                        if not k.startswith(("SM_", "AIP_", "KUBERNETES"))})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "shadownet: error: --tfrecords-dir is required"
