"""Shared helpers: tiny datasets in the seed layout, and running the real ``shadownet`` command."""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from shadownet.data.charset import Charset

REPO = Path(__file__).resolve().parents[1]


def text_image(text: str, height: int = 40, seed: int = 0) -> np.ndarray:
    """A legible BGR image of ``text`` (OpenCV's built-in font), width from the text."""
    rng = np.random.default_rng(seed)
    scale = height / 40
    (w, _), _ = cv2.getTextSize(text or " ", cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    image = np.full((height, w + 12, 3), int(rng.integers(200, 256)), np.uint8)
    cv2.putText(image, text, (6, int(height * 0.75)), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 2)
    return image


class Dataset:
    """Builds a dataset folder: ``add`` images and lines, then ``write`` the annotation files."""

    def __init__(self, root: Path, charset: Charset | None = None):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (charset or Charset.from_preset("digits_lower")).save(root)
        self.lines = {"Train": [], "Test": []}

    def image(self, rel: str, text: str = "x", height: int = 40, ext: str = ".jpg") -> str:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, buf = cv2.imencode(ext, text_image(text, height))
        assert ok
        path.write_bytes(buf.tobytes())
        return rel

    def add(self, split: str, line: str) -> None:
        self.lines[split].append(line)

    def sample(self, split: str, rel: str, label: str, height: int = 40) -> None:
        self.image(rel, label, height)
        self.add(split, f"/{rel} {label}")

    def write(self) -> Path:
        for split, lines in self.lines.items():
            (self.root / split).mkdir(exist_ok=True)
            (self.root / split / "sample.txt").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        return self.root


def words(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    alphabet = list("abcdefghijklmnopqrstuvwxyz0123456789")
    return ["".join(rng.choice(alphabet, size=int(rng.integers(2, 7)))) for _ in range(n)]


@pytest.fixture
def dataset(tmp_path) -> Dataset:
    return Dataset(tmp_path / "dataset")


@pytest.fixture
def good_dataset(tmp_path) -> Path:
    """30 Train + 8 Test legible samples with mixed case labels."""
    ds = Dataset(tmp_path / "good")
    for i, word in enumerate(words(38, seed=1)):
        split = "Train" if i < 30 else "Test"
        ds.sample(split, f"img/{i // 10}/{i}_{word}.jpg", word.upper() if i % 3 == 0 else word, height=32 + i % 20)
    return ds.write()


def word_records(root: Path, count: int, train: int, seed: int, *flags, varied_height: bool = False,
                 charset: Charset | None = None) -> Path:
    """``count`` samples of seeded words (the first ``train`` in Train, the rest in Test) -> ``root/records``."""
    ds = Dataset(root / "dataset", charset)
    for i, word in enumerate(words(count, seed=seed)):
        ds.sample("Train" if i < train else "Test", f"img/{i}.jpg", word, **({"height": 32 + i % 9} if varied_height else {}))
    ds.write()
    run_cli("tfrecords", "--dataset-dir", ds.root, "--save-dir", root / "records", *flags, check=True)
    return root / "records"


def start_cli(*args) -> subprocess.Popen:
    """The command started in the background, to be interrupted (stdout dropped, stderr piped). SIGINT reaches it
    as Ctrl-C reaches a terminal's foreground job: a shell starts `cmd &` with SIGINT ignored and Python keeps an
    inherited SIG_IGN, so a suite run in the background would otherwise pass that on."""
    return subprocess.Popen([sys.executable, "-m", "shadownet", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def interrupt(process: subprocess.Popen, sig: int, what: str) -> None:
    """``sig`` to ``process`` while it is certainly still at work: stopped first (SIGSTOP), so that it cannot
    finish between the check and the signal however slowly this test is scheduled; a signal it catches is
    handled once it continues."""
    os.kill(process.pid, signal.SIGSTOP)
    assert process.poll() is None, f"{what} finished before it could be interrupted"
    os.kill(process.pid, sig)
    os.kill(process.pid, signal.SIGCONT)


def run_cli(*args: str, check: bool = False, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """The installed command as a user runs it: a fresh process, text output captured."""
    env = dict(kwargs.pop("env", os.environ), PYTHONUNBUFFERED="1")
    result = subprocess.run(
        [sys.executable, "-m", "shadownet", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env, **kwargs,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"shadownet {' '.join(map(str, args))} exited {result.returncode}:\n{result.stderr}")
    return result


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# -- a real S3 API server on 127.0.0.1 (tests/s3server.py) ----------------------------------------------------

_buckets = itertools.count()


@pytest.fixture(scope="module")
def s3():
    """moto in server mode behind the fault-injecting proxy; the fake credentials in os.environ meanwhile."""
    from s3server import TEST_ENV, S3Server

    saved = {k: os.environ.get(k) for k in [*TEST_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(TEST_ENV)
    server = S3Server()
    yield server
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def bucket(s3) -> str:
    name = f"bucket-{next(_buckets)}"
    s3.client().create_bucket(Bucket=name)
    s3.proxy.reset()
    yield name
    s3.proxy.reset()


# -- a real Cloud Storage API server on 127.0.0.1 (tests/gcsserver.py) -----------------------------------------

_gcs_buckets = itertools.count()


@pytest.fixture(scope="module")
def gcs():
    """gcp-storage-emulator in its own process; STORAGE_EMULATOR_HOST in os.environ meanwhile (so the code under
    test, and ``run_cli``'s processes, use it). ``gcs.upload(folder, "gs://bucket/prefix")`` fills a bucket,
    ``gcs.env()`` is what a container on ``--network host`` needs."""
    from gcsserver import EMULATOR_VAR, GcsServer

    saved = os.environ.get(EMULATOR_VAR)
    server = GcsServer()
    os.environ.update(server.env())
    yield server
    server.stop()
    if saved is None:
        os.environ.pop(EMULATOR_VAR, None)
    else:
        os.environ[EMULATOR_VAR] = saved


@pytest.fixture
def gcs_bucket(gcs) -> str:
    """A new, empty bucket on the ``gcs`` server: its name."""
    return gcs.create_bucket(f"gcs-bucket-{next(_gcs_buckets)}")
