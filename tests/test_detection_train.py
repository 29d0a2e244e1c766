"""`shadownet train` on page records: the shared trainer trains a detector (DBNet), with the task found in the
records' manifest: settings resolved for it, validation by ICDAR 2015 H-mean, the best checkpoint, TensorBoard,
a SIGTERM mid-run and a resume that ends at exactly the step asked for. Tiny pages (128 px crops) throughout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import cv2
import pytest

from conftest import optimizer_iterations, run_cli, word_records

TRAIN = ("--batch-size", 2, "--page-size", 128, "--log-every", 1, "--warmup-steps", 1, "--shuffle-buffer", 8)


@pytest.fixture(scope="module")
def page_records(tmp_path_factory):
    root = tmp_path_factory.mktemp("detection")
    run_cli("synth", "--kind", "pages", "--count", 12, "--seed", 2, "--test-ratio", 0.2, "--out", root / "pages",
            check=True)
    run_cli("tfrecords", "--dataset-dir", root / "pages", "--save-dir", root / "records", "--validation-ratio",
            0.25, check=True)
    return root / "records"


def test_a_detector_trains_validates_by_hmean_and_resumes(page_records, tmp_path):
    run = tmp_path / "run"
    args = ("--tfrecords-dir", page_records, "--model-dir", run, *TRAIN, "--eval-every", 2, "--checkpoint-every", 2)
    first = run_cli("train", *args, "--train-steps", 4, check=True)
    lines = first.stdout.splitlines()
    assert [line.split()[0] for line in lines if line.startswith("step=") and " loss=" in line] == \
        [f"step={s}" for s in (1, 2, 3, 4)]
    validations = [line for line in lines if "hmean=" in line and line.startswith("step=")]
    assert [line.split()[0] for line in validations] == ["step=2", "step=4"]
    assert all(" precision=" in line and " recall=" in line for line in validations)
    config = json.loads((run / "config.json").read_text())
    assert (config["model"], config["best_metric"], config["hpo_metric"], config["page_size"]) == (
        "dbnet_small", "hmean", "hmean", 128)
    assert not (run / "charset.json").exists()
    best = json.loads((run / "best.json").read_text())
    assert best["metric"] == "hmean" and best["step"] in (2, 4) and best["images"] == 2
    assert 0.0 <= best["hmean"] <= 1.0 and best["value"] == best["hmean"]
    assert best["gt"] > 0 and lines[-1].startswith("trained to step 4; best hmean=")
    events = list((run / "logs").glob("events.out.tfevents.*"))
    assert events and max(p.stat().st_size for p in events) > 10_000  # the drawn validation pages are in it

    # evaluate scores the test pages by the protocol and draws them.
    report = tmp_path / "report.json"
    evaluated = run_cli("evaluate", "--tfrecords-dir", page_records, "--model-dir", run, "--split", "test",
                        "--report", report, check=True)
    scored = json.loads(report.read_text())
    assert evaluated.stdout.split() == [f"images={scored['images']}", f"precision={scored['precision']}",
                                        f"recall={scored['recall']}", f"hmean={scored['hmean']}"]
    assert (scored["images"], len(scored["pages"]), scored["model"], scored["split"]) == (2, 2, "dbnet_small", "test")
    assert scored["gt"] == sum(page["gt"] for page in scored["pages"]) > 0
    assert scored["matched"] == sum(page["matched"] for page in scored["pages"])
    assert all(len(page["missed"]) == page["gt"] - page["matched"] for page in scored["pages"])
    sheet = cv2.imread(str(report.with_suffix(".png")))
    assert sheet is not None and sheet.shape[1] == 640 and sheet.shape[0] > 200

    # Not built yet for a detector: each says so in one line.
    export = run_cli("export", "--model-dir", run, "--export-dir", tmp_path / "export")
    assert export.returncode != 0 and "a text detector's run (dbnet_small)" in export.stderr, export.stderr
    assert "Traceback" not in export.stderr

    second = run_cli("train", *args, "--train-steps", 6, check=True)
    assert "at step 4" in second.stdout and "step=5 loss=" in second.stdout
    assert "trained to step 6" in second.stdout and optimizer_iterations(run) == 6


def test_sigterm_checkpoints_and_the_rerun_ends_at_exactly_train_steps(page_records, tmp_path):
    run = tmp_path / "run"
    args = ["--tfrecords-dir", page_records, "--model-dir", run, *TRAIN, "--train-steps", 30,
            "--checkpoint-every", 1000, "--eval-every", 1000]
    process = subprocess.Popen([sys.executable, "-m", "shadownet", "train", *map(str, args)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    for line in process.stdout:
        if line.startswith("step=3 "):
            break
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    stopped = int(err.split("stopped at step ")[1].split()[0])
    assert 3 <= stopped < 30 and optimizer_iterations(run) == stopped
    resumed = run_cli("train", *args, check=True)
    assert f"at step {stopped}" in resumed.stdout and f"step={stopped + 1} " in resumed.stdout
    assert "trained to step 30" in resumed.stdout and optimizer_iterations(run) == 30


def test_each_task_refuses_the_others_settings(page_records, tmp_path):
    base = ("--tfrecords-dir", page_records, "--train-steps", 1, *TRAIN)
    for flags, message in ((("--model", "shadownet_small"), "model shadownet_small reads text lines; page records "
                                                             "train a detector: dbnet, dbnet_small"),
                           (("--best-metric", "word_accuracy"), "best_metric word_accuracy is a recogniser's"),
                           (("--init-from", tmp_path), "init_from: a detector trains from scratch")):
        result = run_cli("train", *base, "--model-dir", tmp_path / flags[0], *flags)
        assert result.returncode == 2 and message in result.stderr, result.stderr  # a setting: a usage error
        assert "Traceback" not in result.stderr
    lines = word_records(tmp_path / "lines", 8, 4, 3)
    result = run_cli("train", "--tfrecords-dir", lines, "--model-dir", tmp_path / "rec", "--train-steps", 1,
                     "--model", "dbnet_small")
    assert result.returncode == 2 and "model dbnet_small is a text detector; records of text lines train " \
                                      "shadownet, shadownet_small" in result.stderr, result.stderr


def test_a_detector_takes_its_own_defaults_where_none_were_given():
    from shadownet.config import TrainConfig
    from shadownet.errors import ShadownetError
    from shadownet.learn.detection.task import DetectionTask

    task = DetectionTask()
    resolved = task.resolve(TrainConfig(), frozenset())
    assert (resolved.model, resolved.batch_size, resolved.best_metric, resolved.hpo_metric) == (
        "dbnet_small", 8, "hmean", "hmean")
    given = task.resolve(TrainConfig(model="dbnet", batch_size=64, best_metric="recall"), frozenset({"batch_size"}))
    assert (given.model, given.batch_size, given.best_metric) == ("dbnet", 64, "recall")
    with pytest.raises(ShadownetError, match="hpo_metric word_accuracy is a recogniser's"):
        task.resolve(TrainConfig(), frozenset({"hpo_metric"}))
