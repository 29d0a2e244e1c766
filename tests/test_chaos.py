"""Chaos on object storage: a training run on ``s3://`` killed six times at random points, SIGTERM and
SIGKILL in turn, once while a checkpoint is being uploaded, with 503s injected into its syncs; then a
clean run finishes it. The S3 server is moto's on 127.0.0.1, behind the tests' fault proxy.

What must hold afterwards: the run ends at exactly ``train_steps`` and the optimizer has made as many
updates; every checkpoint left in the bucket restores; ``best.json`` names a best checkpoint that is
there; ``evaluate`` reads the run. The kill points come from a seeded generator (``SEED``); every wait is
bounded, so the test stops by itself.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli, word_records
from s3server import Fault

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("SHADOWNET_CHAOS_SEED", "20261202"))
TRAIN_STEPS = 50  # more than six attempts of at most ~7 steps each can reach
KILLS = ("TERM", "KILL") * 3
UPLOAD_KILL = 4  # this kill (a SIGKILL: KILLS[3]) lands while a checkpoint's data file is being uploaded
ATTEMPT_SECONDS = 240
FLAGS = ("--model", "shadownet_small", "--batch-size", "4", "--train-steps", TRAIN_STEPS, "--log-every", "1",
         "--eval-every", "4", "--checkpoint-every", "2", "--keep-checkpoints", "3", "--warmup-steps", "2",
         "--shuffle-buffer", "16", "--mixed-precision", "off", "--input-mode", "fixed")


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    return word_records(tmp_path_factory.mktemp("chaos"), 36, 30, 7, "--validation-ratio", "0.2",
                        "--input-mode", "fixed")


class Attempt:
    """One ``shadownet train`` process of the run, its output in a file."""

    def __init__(self, folder: Path, args):
        folder.mkdir(parents=True)
        self.log = folder / "stdout"
        self.out = open(self.log, "w")
        self.err = open(folder / "stderr", "w")
        env = dict(os.environ, PYTHONUNBUFFERED="1", TMPDIR=str(folder))  # a fresh machine: its own scratch
        self.process = subprocess.Popen([sys.executable, "-m", "shadownet", "train", *map(str, args)], env=env,
                                        stdout=self.out, stderr=self.err, text=True)

    def steps(self) -> list[int]:
        return [int(m.group(1)) for line in self.log.read_text().splitlines()
                if (m := re.match(r"step=(\d+) loss=", line))]

    def wait_for_steps(self, count: int) -> int:
        """Until this attempt has trained ``count`` steps (or ended); the last step it logged."""
        deadline = time.monotonic() + ATTEMPT_SECONDS
        while time.monotonic() < deadline and self.process.poll() is None and len(self.steps()) < count:
            time.sleep(0.05)
        assert len(self.steps()) >= count or self.process.poll() is not None, "no progress in time"
        return (self.steps() or [0])[-1]

    def end(self) -> int:
        try:
            return self.process.wait(ATTEMPT_SECONDS)
        finally:
            self.out.close()
            self.err.close()


def test_six_kills_then_a_clean_run_finish_exactly_with_every_checkpoint_restorable(s3, bucket, records_dir, tmp_path):
    import tensorflow as tf

    assert KILLS[UPLOAD_KILL - 1] == "KILL"
    rng = random.Random(SEED)
    run = f"s3://{bucket}/run"
    args = ["--tfrecords-dir", records_dir, "--model-dir", run, "--s3-endpoint-url", s3.endpoint, *FLAGS]
    history = []
    for number, kind in enumerate(KILLS, 1):
        attempt = Attempt(tmp_path / f"attempt{number}", args)
        if rng.random() < 0.6:  # some 503s in this attempt's syncs: botocore retries them
            s3.proxy.faults.append(Fault("PUT", r"/run/", "503", times=rng.randint(1, 3)))
        if number == UPLOAD_KILL:
            s3.proxy.faults.append(Fault("PUT", r"/run/checkpoints/ckpt-\d+\.data", "hold"))
            assert s3.proxy.held.wait(ATTEMPT_SECONDS), "no checkpoint upload seen"
            reached = (attempt.steps() or [0])[-1]
            attempt.process.send_signal(signal.SIGKILL)
            code = attempt.end()
            s3.proxy.release(forward=False)  # the upload never completes
        else:
            reached = attempt.wait_for_steps(rng.randint(1, 5))
            attempt.process.send_signal(getattr(signal, f"SIG{kind}"))
            code = attempt.end()
        s3.proxy.faults.clear()
        history.append((kind, reached, code))
        if kind == "TERM":
            assert code == 143, (tmp_path / f"attempt{number}" / "stderr").read_text()[-2000:]
        else:
            assert code == -signal.SIGKILL
    final = Attempt(tmp_path / "final", args)
    assert final.end() == 0, (tmp_path / "final" / "stderr").read_text()[-2000:]
    text = final.log.read_text()
    assert f"trained to step {TRAIN_STEPS}" in text, text[-2000:]
    assert any(kind == "KILL" and reached for kind, reached, _ in history)

    local = tmp_path / "bucket-run"
    store_keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket, Prefix="run/")["Contents"]]
    for key in store_keys:
        target = local / key.removeprefix("run/")
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.client().download_file(bucket, key, str(target))
    state = tf.train.get_checkpoint_state(str(local / "checkpoints"))
    assert state.model_checkpoint_path.endswith(f"ckpt-{TRAIN_STEPS}")
    prefixes = sorted({p.with_suffix("") for p in (local / "checkpoints").glob("ckpt-*.index")})
    assert prefixes, store_keys
    for prefix in [*prefixes, *{p.with_suffix("") for p in (local / "best").glob("ckpt-*.index")}]:
        reader = tf.train.load_checkpoint(str(prefix))  # every variable of every checkpoint reads back
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    reader = tf.train.load_checkpoint(str(local / "checkpoints" / f"ckpt-{TRAIN_STEPS}"))
    assert int(reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")) == TRAIN_STEPS
    best = json.loads((local / "best.json").read_text())
    assert (local / "best" / f"ckpt-{best['step']}.index").is_file(), sorted(p.name for p in (local / "best").iterdir())
    report = tmp_path / "report.json"
    run_cli("evaluate", "--tfrecords-dir", records_dir, "--model-dir", run, "--s3-endpoint-url", s3.endpoint,
            "--split", "test", "--report", report, check=True)
    assert json.loads(report.read_text())["num_samples"] == 6
    print(f"chaos seed {SEED}: {history}")
