"""Shared helpers: tiny datasets in the seed layout, running the real ``shadownet`` command, and the fixtures
several test modules use (a test module takes them as parameters; it never imports another one's fixtures)."""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from shadownet import __version__
from shadownet.data.charset import Charset

REPO = Path(__file__).resolve().parents[1]

# `make test` runs the suite in two passes: every other module in parallel worker processes (pytest-xdist, a
# module's tests on one worker), then these alone, one test at a time. Marked `serial` at collection.
SERIAL_MODULES = {
    # The containers: Docker's own builds and daemons, the SageMaker SDK's local mode and its ports.
    "test_docker.py": "the images",
    "test_sagemaker_sdk.py": "SageMaker local mode",
    "test_serve_image.py": "the serving image",
}

# The optimizer of the tests that compare one device with two replicas or two workers (test_distribute.py,
# test_multiworker.py). What differs between such runs is floating-point summation order, about 1e-7 relative;
# those tests show that nothing else differs. Adam would hide that: its first updates are lr x m / (sqrt(v) + eps),
# about +-lr whatever the gradient's size, so a weight whose gradient is near 0 and whose sign the rounding
# decides moves 2 lr apart between the runs. On an AVX-512 CPU (oneDNN blocks the two runs' different batch
# shapes differently) that gave weights 1.7e-3 apart after 4 steps and losses 1.8e-4 apart (relative), as far as
# the mistakes the tests guard against (3.3e-3); with Adadelta, whose update is proportional to a small gradient,
# the same runs were 2.4e-6 and 2e-7 apart. The product's default stays Adam.
SUMMATION_ONLY = ("--optimizer", "adadelta", "--learning-rate", "1.0")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in SERIAL_MODULES:
            item.add_marker(pytest.mark.serial)


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
        extra = {"height": 32 + i % 9} if varied_height else {}
        ds.sample("Train" if i < train else "Test", f"img/{i}.jpg", word, **extra)
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


def optimizer_iterations(model_dir: Path) -> int:
    """The optimizer's update count in the newest checkpoint of a run (a resumed run must go on from it)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(Path(model_dir) / "checkpoints"))
    name = next(n for n in reader.get_variable_to_shape_map() if n.startswith("optimizer/_iterations/"))
    return int(reader.get_tensor(name))


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


# -- the Docker images the Makefile builds (tests/test_docker.py and the other image tests) ---------------------
# Their names as the Makefile gives them (IMAGE_PREFIX, TAG and DOCKER from the environment, same defaults).
# Without a Docker engine or without an image the tests that need it are skipped, except under CI=true.

DOCKER = os.environ.get("DOCKER", "docker")
PREFIX = os.environ.get("IMAGE_PREFIX", "shadownet")
TAG = os.environ.get("TAG", __version__)
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def image_name(kind: str) -> str:
    return f"{PREFIX}/{kind}:{TAG}"


def unavailable(reason: str):
    """Fail under CI (the images must be there), skip elsewhere."""
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def docker(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def require_image(kind: str) -> str:
    if docker("image", "inspect", image_name(kind), check=False).returncode != 0:
        unavailable(f"image {image_name(kind)} is missing (make build-{kind.removeprefix('train-')})")
    return image_name(kind)


@pytest.fixture(scope="session")
def engine():
    try:
        info = subprocess.run([DOCKER, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        unavailable(f"no Docker engine answers ({exc})")
    if info.returncode != 0:
        unavailable(f"no Docker engine answers: {info.stderr.strip()}")


@pytest.fixture(scope="session")
def tfrecords_image(engine) -> str:
    return require_image("tfrecords")


@pytest.fixture(scope="session")
def cpu_image(engine) -> str:
    return require_image("train-cpu")


# -- a briefly trained run, a run with lively outputs, their exports (test_export, test_onnx, test_serve ...) ----
# TensorFlow and the training code are imported in the fixtures: every test session loads this file.


@pytest.fixture(scope="module")
def export_records(tmp_path_factory) -> Path:
    """One tiny records folder (30 Train, 10 Test) for the trained run below."""
    root = tmp_path_factory.mktemp("export")
    ds = Dataset(root / "dataset")
    for i, word in enumerate(words(40, seed=3)):
        ds.sample("Train" if i < 30 else "Test", f"img/{i}.jpg", word, height=32 + i % 20)
    save = root / "records"
    run_cli("tfrecords", "--dataset-dir", ds.write(), "--save-dir", save, "--workers", "1", check=True)
    return save


@pytest.fixture(scope="module")
def trained_dir(export_records) -> Path:
    from shadownet.config import TrainConfig
    from shadownet.learn import train

    model_dir = export_records.parent / "trained"
    config = TrainConfig(model="shadownet_small", train_steps=3, batch_size=8, eval_every=3, checkpoint_every=3,
                         log_every=1)
    train.train(config, export_records, model_dir, log=lambda *_: None)
    return model_dir


@pytest.fixture(scope="module")
def lively_dir(export_records, trained_dir) -> Path:
    """The trained run with new output weights that read varied strings.

    A few steps of training yield the same short string for every image, which would make parity
    trivially true. The LSTM features are small (~0.005) and mostly the same at every step, so the
    new kernel is large, random and blind to the mean feature, and the bias is zero.
    """
    import keras
    import tensorflow as tf

    from shadownet.learn import pipeline, run_dir

    model_dir = trained_dir.parent / "lively"
    model_dir.mkdir()
    for name in ("config.json", "charset.json"):
        shutil.copy(trained_dir / name, model_dir / name)
    model, config, _ = run_dir.load_model(trained_dir)
    inputs, _ = next(iter(pipeline.eval_dataset(export_records, "train", config, batch_size=16)))
    features = keras.Model(model.inputs, model.get_layer("bilstm2").output)(inputs).numpy()
    mean = features.reshape(-1, features.shape[-1]).mean(0)
    dense = model.get_layer("logits")
    kernel, bias = dense.get_weights()
    kernel = np.random.default_rng(0).normal(0, 10.0, kernel.shape)
    kernel -= np.outer(mean, mean @ kernel) / (mean @ mean)
    dense.set_weights([kernel.astype("float32"), np.zeros_like(bias)])
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), model_dir / "checkpoints", 1).save(1)
    return model_dir


@pytest.fixture(scope="module")
def exports(trained_dir, lively_dir) -> dict[str, Path]:
    from shadownet.learn import export

    root = trained_dir.parent / "exports"
    return {"trained": export.export(trained_dir, root, name="trained"),
            "lively": export.export(lively_dir, root, name="lively")}


# -- images to serve (test_serve, test_serve_image) ------------------------------------------------------------


def encoded_text(text: str, height: int, ext: str = ".jpg", seed: int = 0) -> bytes:
    """``text_image`` encoded as an image file's bytes."""
    ok, data = cv2.imencode(ext, text_image(text, height=height, seed=seed))
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[tuple[Path, bytes]]:
    """Varied heights and formats, as files (for ``predict``) and bytes (for the server)."""
    folder = tmp_path_factory.mktemp("serve-images")
    found = []
    for i, word in enumerate(words(12, seed=11)):
        data = encoded_text(word, 24 + 7 * i, ".png" if i % 3 == 0 else ".jpg", seed=i)
        path = folder / f"{i:02d}{'.png' if i % 3 == 0 else '.jpg'}"
        path.write_bytes(data)
        found.append((path, data))
    return found


# -- records for several training workers (test_multiworker, test_trainer_v2) ----------------------------------


@pytest.fixture(scope="module")
def fixed_records(tmp_path_factory):
    """40 Train (32 train, 8 validation) and 8 Test records, every image 100 px wide."""
    return word_records(tmp_path_factory.mktemp("multiworker"), 48, 40, 3, "--validation-ratio", "0.2",
                        "--input-mode", "fixed", "--workers", "1", varied_height=True)
