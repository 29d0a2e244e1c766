"""Training, resume, time budget, evaluation and the whole CLI chain on tiny data."""

import json
import re

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_cli, word_records, words
from shadownet.config import TrainConfig
from shadownet.errors import ShadownetError
from shadownet.learn import pipeline
from shadownet.learn.run_dir import load_model
from shadownet.learn.tasks import RecognitionTask
from shadownet.learn.train import train
from shadownet.learn.trainer import Trainer

TINY = dict(model="shadownet_small", batch_size=8, log_every=2, eval_every=4, checkpoint_every=2,
            warmup_steps=2, shuffle_buffer=64)


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    return word_records(tmp_path_factory.mktemp("train"), 48, 40, 3, "--validation-ratio", "0.2", varied_height=True)


def steps_of(model_dir):
    return sorted(int(m.group(1)) for p in (model_dir / "checkpoints").glob("ckpt-*.index")
                  if (m := re.match(r"ckpt-(\d+)", p.name)))


def test_pipeline_batches(records_dir):
    config = TrainConfig(**TINY)
    inputs, targets = next(iter(pipeline.train_dataset(records_dir, config)))
    assert inputs["image"].shape[0] == 8 and inputs["image"].shape[1:] == (32, inputs["image"].shape[2], 3)
    assert inputs["image"].shape[2] in pipeline.bucket_widths(config.max_width)
    assert int(tf.reduce_max(inputs["width"])) <= inputs["image"].shape[2]
    assert targets["label"].shape[0] == 8
    total = sum(int(b[0]["width"].shape[0]) for b in pipeline.eval_dataset(records_dir, "test", config))
    assert total == 8  # every test sample once, the partial last batch included


def test_resume_finishes_at_exactly_the_configured_step(tmp_path, records_dir):
    model_dir = tmp_path / "model"
    first = train(TrainConfig(**TINY, train_steps=4), records_dir, model_dir, log=lambda *_: None)
    assert first.step == 4 and steps_of(model_dir) == [2, 4]
    trained = load_model(model_dir, "latest")[0].get_layer("logits").get_weights()[0]

    lines = []
    second = train(TrainConfig(**TINY, train_steps=7), records_dir, model_dir, log=lines.append)
    assert second.step == 7
    assert lines[0].startswith("resumed from") and "step 4" in lines[0]
    assert [int(re.search(r"step=(\d+)", line).group(1)) for line in lines
            if line.startswith("step=") and "loss=" in line and "validation" not in line] == [6, 7]
    assert steps_of(model_dir) == [4, 6, 7]  # keep_checkpoints=3 of 2, 4, 6, 7

    # The resumed run started from the trained weights and optimizer state, not from scratch.
    trainer = Trainer(TrainConfig(**TINY, train_steps=7), RecognitionTask(load_model(model_dir)[2]), model_dir)
    assert trainer.restore() == 7
    assert int(trainer.optimizer.iterations.numpy()) == 7
    assert not np.allclose(trainer.model.get_layer("logits").get_weights()[0], trained)

    again = train(TrainConfig(**TINY, train_steps=7), records_dir, model_dir, log=lines.append)
    assert again.step == 7 and lines[-2] == "already trained: step 7 of 7"
    assert lines[-1].startswith("best_step=")  # the best once more, for the tuners
    saved = json.loads((model_dir / "config.json").read_text())
    assert saved["train_steps"] == 7 and saved["model"] == "shadownet_small"


def test_time_budget_stops_cleanly_with_a_checkpoint(tmp_path, records_dir):
    model_dir = tmp_path / "budget"
    result = train(TrainConfig(**TINY, train_steps=10_000, max_train_seconds=1), records_dir, model_dir,
                   log=lambda *_: None)
    assert result.stopped_early and 0 < result.step < 10_000
    assert steps_of(model_dir)[-1] == result.step


def test_resume_refuses_another_model(tmp_path, records_dir):
    model_dir = tmp_path / "m"
    train(TrainConfig(**TINY, train_steps=1), records_dir, model_dir, log=lambda *_: None)
    with pytest.raises(ShadownetError, match="holds a shadownet_small run"):
        train(TrainConfig(**(TINY | {"model": "shadownet"}), train_steps=2), records_dir, model_dir,
              log=lambda *_: None)


@pytest.mark.slow
def test_cli_chain_train_evaluate_export_predict(tmp_path, records_dir):
    model_dir, export_dir = tmp_path / "model", tmp_path / "export"
    (tmp_path / "c.yaml").write_text("model: shadownet_small\nbatch_size: 8\neval_every: 3\nlog_every: 1\n")
    trained = run_cli("train", "--tfrecords-dir", records_dir, "--model-dir", model_dir, "--config",
                      tmp_path / "c.yaml", "--train-steps", "3", "--warmup_steps", "1", check=True)
    # Not a terminal: one plain line per log interval, for platforms' metric regexes.
    assert re.search(r"^step=3 loss=\d+\.\d+ ", trained.stdout, re.M)
    assert re.search(r"^step=3 validation_loss=\S+ word_accuracy=\d\.\d+ char_error_rate=", trained.stdout, re.M)

    for decoder in ("greedy", "beam"):
        report_path = tmp_path / f"{decoder}.json"
        run_cli("evaluate", "--tfrecords-dir", records_dir, "--model-dir", model_dir, "--decoder", decoder,
                "--report", report_path, check=True)
        report = json.loads(report_path.read_text())
        assert report["num_samples"] == 8
        for key in ("word_accuracy", "word_accuracy_case_insensitive", "char_error_rate",
                    "normalized_edit_distance", "worst_examples"):
            assert key in report
        assert report_path.with_suffix(".png").stat().st_size > 1000

    lexicon = tmp_path / "words.txt"
    lexicon.write_text("\n".join(words(48, seed=3)) + "\n")
    run_cli("evaluate", "--tfrecords-dir", records_dir, "--model-dir", model_dir, "--lexicon", lexicon,
            "--report", tmp_path / "lex.json", check=True)
    lexicon_report = json.loads((tmp_path / "lex.json").read_text())
    assert lexicon_report["decoder"] == "beam+lexicon"
    # Every prediction is a lexicon word.
    for example in lexicon_report["worst_examples"]:
        assert example["prediction"] in set(words(48, seed=3))

    run_cli("export", "--model-dir", model_dir, "--export-dir", export_dir, check=True)
    assert (export_dir / "shadownet" / "1" / "saved_model.pb").is_file()
    images = sorted((records_dir.parent / "dataset" / "img").glob("*.jpg"))[:2]
    predicted = run_cli("predict", "--model", export_dir / "shadownet", *images, "--json", check=True)
    results = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [r["image"] for r in results] == [str(p) for p in images]
    assert all(isinstance(r["text"], str) and 0.0 <= r["confidence"] <= 1.0 for r in results)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    failed = run_cli("predict", "--model", export_dir / "shadownet", bad)
    assert failed.returncode == 1 and "bad.jpg" in failed.stderr and "Traceback" not in failed.stderr
