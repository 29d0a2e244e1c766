"""The images as a user meets them: `make tfrecords`, `make train` ... on mounted folders, as the caller's UID.

The images are not built here: `.ci/run` builds them first (`make build-tfrecords build-cpu`), and these tests
use the names the Makefile gives them (IMAGE_PREFIX, TAG and DOCKER from the environment, same defaults).
Without a Docker engine or without the images they are skipped, except under CI=true, where they fail.
The GPU image is tested only with SHADOWNET_TEST_GPU_IMAGE=1 (`make test-gpu-image`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import (
    DOCKER,
    PREFIX,
    REPO,
    TAG,
    docker,
    image_name,
    require_image,
    run_cli,
    tree_digest,
    unavailable,
    word_records,
)
from shadownet import __version__

TEST_GPU_IMAGE = os.environ.get("SHADOWNET_TEST_GPU_IMAGE") == "1"
# Goals of the issue, in decimal units as `docker image ls` shows them.
SIZE_GOALS = {"tfrecords": 400e6, "train-cpu": 1.6e9}
# The images start as root (SageMaker, UAI Train); the unprivileged user our Kubernetes specs run them as.
KUBERNETES_USER = (10001, 10001)
# A UID:GID that exists nowhere in the images, for "runs under any --user".
OTHER_USER = (12345, 12345)


def run_image(kind: str, *args: str, user: str | None = None, mounts: dict | None = None, entrypoint=None,
              check: bool = True, extra=()) -> subprocess.CompletedProcess:
    """docker run --rm --network host [--user] [-v HOST:CONTAINER[:ro]] IMAGE ARGS; mounts: {CONTAINER[:ro]: HOST}."""
    flags = ["run", "--rm", "--init", "--network", "host", *extra]
    if user is not None:
        flags += ["--user", user]
    for container_path, host in (mounts or {}).items():
        flags += ["-v", f"{host}:{container_path}"]
    if entrypoint:
        flags += ["--entrypoint", entrypoint]
    return docker(*flags, image_name(kind), *args, check=check)


def make(*targets: str, **variables) -> subprocess.CompletedProcess:
    """`make TARGETS VAR=value ...` in the repository, with this run's image names."""
    variables = {"DOCKER": DOCKER, "IMAGE_PREFIX": PREFIX, "TAG": TAG, **variables}
    command = ["make", "--no-print-directory", "-C", str(REPO), *targets,
               *(f"{key}={value}" for key, value in variables.items())]
    # A fresh top-level make: nothing of an enclosing `make test` (MAKEFLAGS, its variables) leaks in.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def inspect(kind: str) -> dict:
    return json.loads(docker("image", "inspect", image_name(kind)).stdout)[0]


def caller() -> tuple[int, int]:
    """Who the run targets run as here: the test's own user, or OTHER_USER when that is root (CI)."""
    return OTHER_USER if os.getuid() == 0 else (os.getuid(), os.getgid())


def writable_dir(path: Path, owner: tuple[int, int]) -> Path:
    """A folder the container user can write to, as `make` creates it for the caller."""
    path.mkdir(parents=True, exist_ok=True)
    if os.getuid() == 0:
        os.chown(path, *owner)
    return path


def owners(folder: Path) -> set[tuple[int, int]]:
    return {(p.stat().st_uid, p.stat().st_gid) for p in folder.rglob("*")}


# --- without Docker: the files the images are built from ---------------------------------------------------

# One Dockerfile, one final stage per image (`docker build --target KIND`).
DOCKERFILES = {kind: REPO / "Dockerfiles" / "shadownet.Dockerfile" for kind in ("tfrecords", "train-cpu", "train-gpu")}


def test_dockerfiles_share_a_digest_pinned_base_and_exec_entrypoint():
    bases = set()
    for kind, path in DOCKERFILES.items():
        text = path.read_text()
        bases.update(re.findall(r"^ARG BASE_IMAGE=(\S+)$", text, re.M))
        assert re.search(r'^ENTRYPOINT \["shadownet"\]$', text, re.M), kind
        assert not re.search(r"^USER ", text, re.M), f"{kind}: starts as root, as SageMaker runs it (docs/docker.md)"
        assert "useradd --uid 10001 --gid 10001" in text, kind
        assert "--mount" not in text and "# syntax" not in text, f"{kind}: BuildKit-only syntax"
    assert len(bases) == 1, bases
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", bases.pop())


def _pins(lock: Path) -> dict[str, str]:
    text = lock.read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+) \\$", text, re.M))
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    unhashed = [b.split()[0] for b in blocks if "==" in b.split("\n")[0] and "--hash=sha256:" not in b]
    assert not unhashed, f"{lock.name}: no hash for {unhashed}"
    return {canonicalize_name(name): version for name, version in pins.items()}


@pytest.mark.parametrize("lock, extras, extra_in", [
    ("tfrecords", (), None),
    ("train-cpu", ("tf", "onnx", "serve"), None),
    ("train-gpu", ("serve",), "train-gpu.in"),
    ("dev", ("tf", "onnx", "serve", "dev"), None),
])
def test_lock_files_pin_what_pyproject_asks_for(lock, extras, extra_in):
    """A dependency added to pyproject.toml without `make lock` would be missing from the images."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    if extra_in:
        wanted += [line for line in (REPO / "requirements" / extra_in).read_text().splitlines()
                   if line.strip() and not line.startswith("#")]
    pins = _pins(REPO / "requirements" / f"{lock}.txt")
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"requirements/{lock}.txt has no {name}: run make lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"requirements/{lock}.txt pins {name}=={pins[name]}, pyproject wants {text}: run make lock"
    if lock == "tfrecords":
        assert not {"tensorflow", "tensorflow-cpu", "keras"} & set(pins), "the generation image needs no TensorFlow"


# --- the built images ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["tfrecords", "train-cpu"])
def test_image_smoke(kind, engine):
    require_image(kind)
    assert run_image(kind, "--version").stdout.strip() == f"shadownet {__version__}"
    usage = run_image(kind).stdout  # default CMD: --help
    for command in ("synth", "tfrecords", "train", "evaluate", "export", "serve"):
        assert command in usage
    probe = ("import importlib.util as u, cv2, numpy, PIL, google_crc32c, ujson, shadownet; "
             "print(shadownet.__version__, u.find_spec('tensorflow') is not None)")
    version, has_tf = run_image(kind, "-c", probe, entrypoint="python").stdout.split()
    assert version == __version__
    assert has_tf == ("True" if kind == "train-cpu" else "False")
    if kind == "train-cpu":
        tf_probe = ("import tensorflow as tf, keras; "
                    "print(tf.__version__, len(tf.config.list_physical_devices('GPU')))")
        tf_version, gpus = run_image(kind, "-c", tf_probe, entrypoint="python").stdout.split()
        assert tf_version.startswith("2.21.") and gpus == "0"
        # The onnx extra (export --format onnx, predict --model FILE.onnx), as the Kubernetes user.
        onnx_probe = "import onnxruntime, tf2onnx, onnx; print(onnxruntime.get_available_providers())"
        providers = run_image(kind, "-c", onnx_probe, entrypoint="python", user="%d:%d" % KUBERNETES_USER)
        assert "CPUExecutionProvider" in providers.stdout
        # The serve extra: the HTTP server, its metrics, gs:// models.
        serve_probe = "import aiohttp, prometheus_client, google.cloud.storage; print(aiohttp.__version__)"
        assert run_image(kind, "-c", serve_probe, entrypoint="python").stdout.strip()
        assert "8080/tcp" in inspect(kind)["Config"]["ExposedPorts"]


@pytest.mark.parametrize("kind", ["tfrecords", "train-cpu"])
def test_image_size_labels_and_user(kind, engine):
    require_image(kind)
    meta = inspect(kind)
    goal = SIZE_GOALS[kind]
    assert meta["Size"] <= goal, f"{kind}: {meta['Size'] / 1e6:.0f} MB > goal {goal / 1e6:.0f} MB"
    labels = meta["Config"]["Labels"]
    assert labels["org.opencontainers.image.title"] == f"shadownet-{kind}"
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.licenses"] == "MIT"
    assert labels["org.opencontainers.image.base.name"]
    assert meta["Config"]["User"] == ""  # root, as SageMaker and UAI Train run it
    assert meta["Config"]["Entrypoint"] == ["shadownet"]
    assert run_image(kind, "-c", "id -u; id -g", entrypoint="sh").stdout.split() == ["0", "0"]
    # The user Kubernetes runs it as has a name and a home, for tools that look them up.
    assert run_image(kind, "-c", "getent passwd 10001", entrypoint="sh").stdout.split(":")[:6] == [
        "shadownet", "x", "10001", "10001", "", "/home/shadownet"]


@pytest.mark.parametrize("user", ["image", "kubernetes", "other"])
def test_generation_runs_as_root_the_kubernetes_user_or_any_uid(user, tfrecords_image, tmp_path, good_dataset):
    """Files land owned by whoever the container runs as: root by default, as SageMaker runs it."""
    uid_gid = {"image": (0, 0), "kubernetes": KUBERNETES_USER, "other": caller()}[user]
    if os.getuid() != 0 and uid_gid != (os.getuid(), os.getgid()):
        pytest.skip("needs root to hand the output folder to another user")
    out = writable_dir(tmp_path / "out", uid_gid)
    result = run_image("tfrecords", "tfrecords", "--dataset-dir", "/data/data", "--save-dir", "/data/output/rec",
                       user=None if user == "image" else "%d:%d" % uid_gid,
                       mounts={"/data/data:ro": good_dataset, "/data/output": out})
    assert "wrote 27 train, 3 validation, 8 test records" in result.stderr
    assert owners(out / "rec") == {uid_gid}


def lmdb_items(environment: Path) -> dict[bytes, bytes]:
    """Every key and value of one LMDB environment (opened read-only, without a lock file)."""
    import lmdb

    env = lmdb.open(str(environment), readonly=True, lock=False, subdir=True)
    try:
        with env.begin() as txn:
            return dict(txn.cursor())
    finally:
        env.close()


def test_convert_to_lmdb_then_tfrecords_in_the_image_equal_the_host_run(tfrecords_image, tmp_path, good_dataset):
    """`convert --to lmdb` in the generation image (as the caller, the seed dataset on a read-only mount), then
    `tfrecords` on that LMDB tree (read-only too), against the same two commands outside any container."""
    user = caller()
    out = writable_dir(tmp_path / "out", user)
    result = run_image("tfrecords", "convert", "--dataset-dir", "/data/data", "--to", "lmdb", "--out",
                       "/data/output/lmdb", user="%d:%d" % user, mounts={"/data/data:ro": good_dataset,
                                                                        "/data/output": out})
    assert "wrote 30 Train, 0 Validation, 8 Test samples as lmdb to /data/output/lmdb (0 skipped)" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["lmdb"]  # renamed into place: no .lmdb.partial left
    tree = out / "lmdb"
    for split in ("Train", "Test"):
        assert sorted(p.name for p in (tree / split).iterdir()) == ["data.mdb"], split  # no lock.mdb
    assert owners(out) == {user}
    records = writable_dir(tmp_path / "records", user)
    result = run_image("tfrecords", "tfrecords", "--dataset-dir", "/data/data", "--save-dir", "/data/output/rec",
                       user="%d:%d" % user, mounts={"/data/data:ro": tree, "/data/output": records})
    assert "wrote 27 train, 3 validation, 8 test records" in result.stderr
    assert owners(records) == {user}

    host = tmp_path / "host"
    run_cli("convert", "--dataset-dir", good_dataset, "--to", "lmdb", "--out", host / "lmdb", check=True)
    run_cli("tfrecords", "--dataset-dir", host / "lmdb", "--save-dir", host / "rec", check=True)
    # The same files; data.mdb's bytes differ even from one host run to the next (LMDB leaves the slack of its
    # pages uninitialised), so its keys and values are compared, the other files byte for byte.
    container_files, host_files = tree_digest(tree), tree_digest(host / "lmdb")
    assert sorted(container_files) == sorted(host_files) == [
        "Test/data.mdb", "Train/data.mdb", "char_dict.json", "ord_map.json"]
    assert all(container_files[name] == host_files[name] for name in container_files if not name.endswith(".mdb"))
    for split, count in (("Train", 30), ("Test", 8)):
        items = lmdb_items(tree / split)
        assert items == lmdb_items(host / "lmdb" / split), split
        assert items[b"num-samples"] == str(count).encode() and len(items) == 2 * count + 1, split
    manifests = [json.loads((folder / "manifest.json").read_text()) for folder in (records / "rec", host / "rec")]
    assert manifests[0]["source"].pop("dataset_dir") == "/data/data"
    manifests[1]["source"].pop("dataset_dir")
    assert manifests[0] == manifests[1] and manifests[0]["source"]["layout"] == "lmdb"
    container_records = {name: d for name, d in tree_digest(records / "rec").items() if name != "manifest.json"}
    assert container_records == {name: d for name, d in tree_digest(host / "rec").items() if name != "manifest.json"}
    assert len(container_records) == 3


@pytest.fixture(scope="module")
def generated(tmp_path_factory, tfrecords_image):
    """`make tfrecords` on a fresh machine (no venv): synth and tfrecords in the generation image, as the
    caller; and the same two steps on the host, outside any container."""
    root = tmp_path_factory.mktemp("docker-generation")
    user = caller()
    data = writable_dir(root / "data", user)
    out = writable_dir(root / "out", user)
    make("tfrecords", VENV=root / "no-venv", DATA_DIR=data, OUTPUT_DIR=out, DEMO_COUNT=240, SEED=3,
         DOCKER_USER="%d:%d" % user)
    host_data, host_records = root / "host-data", root / "host-records"
    run_cli("synth", "--out", host_data, "--count", 240, "--kind", "lines", "--seed", 3, check=True)
    run_cli("tfrecords", "--dataset-dir", host_data, "--save-dir", host_records, "--seed", 3, check=True)
    return {"data": data, "out": out, "user": user, "host_data": host_data, "host_records": host_records}


@pytest.mark.slow
def test_container_generation_equals_host_generation(generated):
    assert tree_digest(generated["data"]) == tree_digest(generated["host_data"])
    container, host = generated["out"] / "records", generated["host_records"]
    manifests = [json.loads((folder / "manifest.json").read_text()) for folder in (container, host)]
    assert manifests[0]["source"].pop("dataset_dir") == "/data/data"
    manifests[1]["source"].pop("dataset_dir")
    assert manifests[0] == manifests[1]
    records = {name: digest for name, digest in tree_digest(container).items() if name != "manifest.json"}
    assert records == {name: digest for name, digest in tree_digest(host).items() if name != "manifest.json"}
    assert len(records) == 3 and manifests[0]["counts"] == {"train": 194, "validation": 22, "test": 24}


@pytest.mark.slow
def test_generated_files_belong_to_the_caller(generated):
    assert owners(generated["data"]) == {generated["user"]}
    assert owners(generated["out"]) == {generated["user"]}


@pytest.fixture(scope="module")
def cpu_run(generated, cpu_image) -> Path:
    """`make train evaluate export` in the CPU image on the records the generation image wrote (6 steps, as the
    caller): OUTPUT_DIR with model/, evaluation.json and .png, export/shadownet/1/. Shared by the tests below."""
    out, user = generated["out"], generated["user"]
    make("train", "evaluate", "export", OUTPUT_DIR=out, TRAIN_STEPS=6, DOCKER_USER="%d:%d" % user,
         TRAIN_ARGS="--batch-size 16 --warmup-steps 2 --eval-every 6 --log-every 3 --eval-max-samples 16")
    return out


def sample_images(generated, count: int) -> list[str]:
    """The first COUNT test images of the generated dataset, as the containers see them (/data/data/...)."""
    lines = (generated["data"] / "Test" / "sample.txt").read_text().splitlines()
    return [f"/data/data/{line.split(' ')[0].lstrip('/')}" for line in lines[:count]]


@pytest.mark.slow
def test_train_evaluate_export_predict_in_cpu_image(generated, cpu_run):
    """`make train evaluate export` on the records the generation image wrote, then predict with the export."""
    out, user = cpu_run, generated["user"]
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["train_steps"] == 6 and config["model"] == "shadownet_small"
    assert any((out / "model" / "checkpoints").glob("ckpt-6.index"))
    report = json.loads((out / "evaluation.json").read_text())
    assert report["num_samples"] == 24 and 0.0 <= report["char_error_rate"]
    assert (out / "evaluation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "export" / "shadownet" / "1" / "saved_model.pb").is_file()
    assert owners(out) == {user}

    images = sample_images(generated, 2)
    result = run_image("train-cpu", "predict", "--model", "/data/output/export/shadownet", "--json", *images,
                       user="%d:%d" % user, mounts={"/data/data:ro": generated["data"], "/data/output:ro": out})
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["image"] for line in lines] == images
    assert all(isinstance(line["text"], str) and 0.0 <= line["confidence"] <= 1.0 for line in lines)


@pytest.mark.slow
def test_onnx_export_and_predict_in_cpu_image_equal_the_savedmodel(generated, cpu_run, tmp_path):
    """`export --format savedmodel,onnx --quantize int8` of the 6-step run in the CPU image (as the caller, the
    run on a read-only mount), then `predict --json` with model.onnx (onnxruntime) and with the SavedModel
    of the same version folder, on the same test images: the same texts, confidences within 1e-3."""
    user = "%d:%d" % generated["user"]
    exports = writable_dir(tmp_path / "exports", generated["user"])
    mounts = {"/data/run:ro": cpu_run / "model", "/data/output": exports}
    result = run_image("train-cpu", "export", "--model-dir", "/data/run", "--export-dir", "/data/output",
                       "--format", "savedmodel,onnx", "--quantize", "int8", user=user, mounts=mounts)
    assert result.stdout.strip() == "exported /data/output/shadownet/1"
    version = exports / "shadownet" / "1"
    assert {"saved_model.pb", "model.onnx", "model.int8.onnx"} <= {p.name for p in version.iterdir()}
    assert (version / "model.int8.onnx").stat().st_size < (version / "model.onnx").stat().st_size
    assert owners(exports) == {generated["user"]}  # model.onnx and model.int8.onnx included
    assert not [p.name for p in (exports / "shadownet").iterdir() if p.name != "1"]  # no staging folder left

    images = sample_images(generated, 8)
    # Both predictions in one container (one start instead of two).
    script = ('shadownet predict --model /data/output/shadownet/1/model.onnx --json "$@" && echo --- && '
              'shadownet predict --model /data/output/shadownet/1/ --json "$@"')
    result = run_image("train-cpu", "-c", script, "predict", *images, entrypoint="sh", user=user,
                       mounts={"/data/data:ro": generated["data"], "/data/output:ro": exports})
    onnx_out, saved_out = result.stdout.split("---\n")
    onnx_lines = [json.loads(line) for line in onnx_out.splitlines()]
    saved_lines = [json.loads(line) for line in saved_out.splitlines()]
    assert [line["image"] for line in onnx_lines] == [line["image"] for line in saved_lines] == images
    # Six steps leave texts mostly empty; the confidences (from every time step's scores) still differ from
    # image to image, so their agreement compares the two runtimes' outputs, not constants.
    assert len({line["confidence"] for line in saved_lines}) > 1
    for onnx_line, saved_line in zip(onnx_lines, saved_lines, strict=True):
        assert onnx_line["text"] == saved_line["text"], (onnx_line, saved_line)
        assert abs(onnx_line["confidence"] - saved_line["confidence"]) <= 1e-3, (onnx_line, saved_line)


# --- the GPU image: built and tested on demand (make test-gpu-image) -----------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not TEST_GPU_IMAGE, reason="SHADOWNET_TEST_GPU_IMAGE=1 (make test-gpu-image) tests the GPU image")
def test_gpu_image(engine):
    if docker("image", "inspect", image_name("train-gpu"), check=False).returncode != 0:
        pytest.fail(f"SHADOWNET_TEST_GPU_IMAGE=1 but {image_name('train-gpu')} is missing (make build-gpu)")
    assert run_image("train-gpu", "--version").stdout.strip() == f"shadownet {__version__}"
    meta = inspect("train-gpu")
    assert meta["Config"]["User"] == "" and meta["Config"]["Entrypoint"] == ["shadownet"]
    assert meta["Config"]["Labels"]["org.opencontainers.image.title"] == "shadownet-train-gpu"
    probe = "import tensorflow as tf; print(tf.__version__, tf.test.is_built_with_cuda())"
    assert run_image("train-gpu", "-c", probe, entrypoint="python").stdout.split()[1] == "True"
    if subprocess.run(["sh", "-c", "command -v nvidia-smi"], capture_output=True).returncode == 0:
        probe = "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))"
        gpus = run_image("train-gpu", "-c", probe, entrypoint="python", extra=["--gpus", "all"]).stdout.strip()
        assert int(gpus) >= 1


# --- object storage from inside the images ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tfrecords", "train-cpu"])
def test_s3_clients_of_the_kept_botocore_models(kind, engine):
    """The build keeps S3's API model and those of its credential providers; each client must still load."""
    require_image(kind)
    code = ("import boto3; [boto3.client(s, region_name='us-east-1') for s in "
            "('s3', 'sts', 'sso', 'sso-oidc', 'signin')]; print('ok')")
    assert run_image(kind, "-c", code, entrypoint="python").stdout.strip() == "ok"


def test_generation_in_the_image_reads_and_writes_s3(s3, bucket, tfrecords_image, good_dataset, tmp_path):
    """`docker run IMAGE tfrecords` with s3:// paths, against the S3 server on the host's loopback."""
    from shadownet.cloud.storage import ObjectStore, S3Url, StorageConfig

    ObjectStore(StorageConfig(endpoint_url=s3.endpoint)).publish(good_dataset, S3Url(bucket, "dataset"))
    env = [f"--env={key}={value}" for key, value in s3.env().items()]
    run_image("tfrecords", "tfrecords", "--dataset-dir", f"s3://{bucket}/dataset", "--save-dir",
              f"s3://{bucket}/records", "--workers", "1", extra=env)
    run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", tmp_path / "host", "--workers", "1", check=True)
    fetched = ObjectStore(StorageConfig(endpoint_url=s3.endpoint)).stage_in(S3Url(bucket, "records"),
                                                                             tmp_path / "fetched")
    assert fetched
    host, image = tree_digest(tmp_path / "host"), tree_digest(tmp_path / "fetched")
    assert set(host) == set(image)
    assert all(host[name] == image[name] for name in host if name != "manifest.json")
    assert [p for m, p in s3.proxy.requests if m == "PUT"][-1] == f"/{bucket}/records/manifest.json"


# --- the platforms' container contract ------------------------------------------------------------------------


def sagemaker_tree(root: Path, records: Path, hyperparameters: dict) -> Path:
    """/opt/ml as SageMaker lays it out for a job with a `train` channel (values all strings, some quoted twice)."""
    import shutil

    (root / "input/config").mkdir(parents=True)
    (root / "input/config/hyperparameters.json").write_text(json.dumps(hyperparameters))
    shutil.copytree(records, root / "input/data/train")
    return root


@pytest.mark.slow
def test_sagemaker_job_fine_tunes_the_run_in_its_init_channel(cpu_image, tmp_path):
    """A run in the channel `init` (another job's checkpoints, an S3 prefix): the job starts from its weights,
    with its architecture, onto the records' charset."""
    import shutil

    from test_finetune import mixed_case_records

    lowercase = word_records(tmp_path / "lowercase", 24, 18, 3, "--workers", "1")
    run_cli("train", "--tfrecords-dir", lowercase, "--model-dir", tmp_path / "parent", "--model", "shadownet_small",
            "--train-steps", 2, "--eval-every", 2, "--batch-size", 4, "--warmup-steps", 1, check=True)
    ml = sagemaker_tree(tmp_path / "ml", mixed_case_records(tmp_path / "mixed"), {
        "train_steps": "2", "batch_size": "4", "eval_every": "2", "log_every": "1", "warmup_steps": "1"})
    shutil.copytree(tmp_path / "parent", ml / "input/data/init")
    result = run_image("train-cpu", "train", mounts={"/opt/ml": ml})
    assert ("initialised from /opt/ml/input/data/init (step 2): kept 36 classes, added 26, dropped 0; "
            "added: 'A' 'B' 'C' 'D' 'E' 'F' 'G' 'H' 'I' 'J' ...") in result.stdout.splitlines(), result.stdout
    config = json.loads((ml / "checkpoints/config.json").read_text())
    assert (config["init_from"], config["model"], config["parent"]["step"]) == (
        "/opt/ml/input/data/init", "shadownet_small", 2)  # the architecture is the parent's
    assert (ml / "checkpoints/checkpoints/ckpt-2.index").exists()
    assert (ml / "model/shadownet/1/saved_model.pb").exists() and not (ml / "output/failure").exists()


@pytest.mark.slow
def test_sagemaker_contract_in_the_cpu_image(generated, cpu_image, tmp_path):
    """`docker run IMAGE train`, as SageMaker starts it (the image's user, root; no argument but our one flag)."""
    ml = sagemaker_tree(tmp_path / "ml", generated["out"] / "records", {
        "model": '"shadownet_small"', "train_steps": "3", "batch_size": '"8"', "eval_every": "1000",
        "checkpoint_every": "2", "log_every": "10", "sagemaker_program": '"unused"'})
    result = run_image("train-cpu", "train", "--log-every", "1", mounts={"/opt/ml": ml})
    assert "platform=sagemaker" in result.stdout and "step=3 loss=" in result.stdout
    config = json.loads((ml / "checkpoints/config.json").read_text())  # the run lives where SageMaker syncs
    assert (config["train_steps"], config["batch_size"], config["model"], config["log_every"]) == (
        3, 8, "shadownet_small", 1)  # hyperparameters apply; the explicit flag wins over them
    assert (ml / "checkpoints/checkpoints/ckpt-3.index").exists()
    assert (ml / "model/shadownet/1/saved_model.pb").exists()  # TF Serving layout, for model.tar.gz
    assert json.loads((ml / "output/data/evaluation-test.json").read_text())["num_samples"] == 24
    assert not (ml / "output/failure").exists()

    bad = sagemaker_tree(tmp_path / "bad", generated["out"] / "records", {"batch_size": "many"})
    failed = run_image("train-cpu", "train", mounts={"/opt/ml": bad}, check=False)
    assert failed.returncode == 2
    reason = (bad / "output/failure").read_text()
    assert reason == "shadownet train: sagemaker hyperparameters: batch_size must be a whole number, not 'many'"
    assert "Traceback" not in failed.stderr


# --- make push: a real registry on 127.0.0.1 ---------------------------------------------------------------

REGISTRY_BINARY = "/usr/bin/docker-registry"  # Debian's docker-registry (distribution/distribution 2.8)


@pytest.fixture
def registry(engine, tmp_path):
    """Debian's docker-registry serving HTTP on a free loopback port (dockerd trusts 127.0.0.0/8 without TLS)."""
    import socket
    import time
    import urllib.request

    if not os.path.exists(REGISTRY_BINARY):
        unavailable(f"{REGISTRY_BINARY} is missing (apt-get install docker-registry)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: "
                      f"{tmp_path / 'storage'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
    log = open(tmp_path / "registry.log", "w")
    server = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], stdout=log, stderr=log)
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"the registry did not answer: {(tmp_path / 'registry.log').read_text()}")
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_make_push_sends_the_image_to_a_registry_and_jobs_render_pins_it(registry, tfrecords_image, tmp_path):
    import urllib.request

    result = make("push-tfrecords", REGISTRY=f"{registry}/ci", OUTPUT_DIR=tmp_path)
    remote = f"{registry}/ci/shadownet/tfrecords:{TAG}"
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("pushed ")]
    digest = re.fullmatch(rf"pushed {re.escape(remote)} (sha256:[0-9a-f]{{64}})", line).group(1)
    images = json.loads((tmp_path / "images.json").read_text())
    pinned = f"{registry}/ci/shadownet/tfrecords@{digest}"
    assert images == {"tfrecords": {"tag": remote, "digest": digest, "reference": pinned}}
    # The registry holds the manifest and every layer it names.
    accept = "application/vnd.docker.distribution.manifest.v2+json"
    request = urllib.request.Request(f"http://{registry}/v2/ci/shadownet/tfrecords/manifests/{digest}",
                                     headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=30) as answer:
        manifest = json.loads(answer.read())
    blobs = [manifest["config"]["digest"]] + [layer["digest"] for layer in manifest["layers"]]
    for blob in blobs:
        head = urllib.request.Request(f"http://{registry}/v2/ci/shadownet/tfrecords/blobs/{blob}", method="HEAD")
        with urllib.request.urlopen(head, timeout=30) as answer:
            assert answer.status == 200
    # Gone here under its remote name, pulled back by digest, it runs.
    docker("image", "rm", remote)
    docker("pull", pinned)
    assert docker("run", "--rm", "--network", "host", pinned, "--version").stdout.strip().endswith(__version__)
    docker("image", "rm", pinned)
    # The specs take the pushed image, pinned; an explicit --set still wins.
    spec = run_cli("jobs", "render", "--platform", "k8s-tfrecords", "--images", tmp_path / "images.json",
                   check=True).stdout
    assert f"image: {pinned}" in spec and "REGISTRY/" not in spec.split("tfrecords\n")[0]
    chosen = run_cli("jobs", "render", "--platform", "k8s-tfrecords", "--images", tmp_path / "images.json",
                     "--set", "tfrecords_image=mine:1", check=True).stdout
    assert "image: mine:1" in chosen
    # A push of one image keeps the other images' entries.
    cpu = {"tag": "r/ci/shadownet/train-cpu:1", "digest": "sha256:" + "0" * 64,
           "reference": "r/ci/shadownet/train-cpu@sha256:" + "0" * 64}
    (tmp_path / "images.json").write_text(json.dumps({**images, "train-cpu": cpu}))
    make("push-tfrecords", REGISTRY=f"{registry}/ci", OUTPUT_DIR=tmp_path)
    assert json.loads((tmp_path / "images.json").read_text()) == {**images, "train-cpu": cpu}
    assert not list(tmp_path.glob("*.partial"))


def test_make_push_without_a_registry_says_what_to_set(tmp_path):
    command = ["make", "--no-print-directory", "-C", str(REPO), "push-cpu", f"OUTPUT_DIR={tmp_path}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "make push: set REGISTRY=host[:port]/namespace" in result.stderr
    assert not (tmp_path / "images.json").exists()
