"""SageMaker's own client against the CPU image: the SageMaker Python SDK (v2) in local mode.

``Estimator(image_uri=..., instance_type="local", hyperparameters={...}).fit({"train": "file://..."})``, run
by tests/sagemaker_local_job.py in the SDK's venv (``make sagemaker-sdk``). The SDK lays out /opt/ml as the
service does (root-owned, ``input/data`` readable by root only) and starts the image with docker-compose
(Debian's ``docker-compose``), as root. Needs the CPU image, docker-compose and .venv-sagemaker: skipped
without them, failed under CI=true (as tests/test_docker.py). Nothing leaves the machine: fake credentials,
a fixed region, telemetry opted out in the SDK's defaults config file, every HTTP proxy pointed at a closed
port on 127.0.0.1; the jobs' ``sagemaker-local`` compose network is made beforehand as an internal one (no route
off the machine), and it and the jobs' stopped containers are removed afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import REPO, docker, run_cli, unavailable, word_records

SDK_PYTHON = Path(os.environ.get("SAGEMAKER_SDK_PYTHON", REPO / ".venv-sagemaker" / "bin" / "python"))
DRIVER = Path(__file__).with_name("sagemaker_local_job.py")
NETWORK = "sagemaker-local"
# Obviously fake: local mode hands the session's credentials to the container, and needs some.
FAKE_AWS = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true"}
CLOSED_PORT = "http://127.0.0.1:9"  # discard: any HTTP(S) request the SDK tried would fail here, at once
TELEMETRY_OPT_OUT = "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"


@pytest.fixture(scope="module")
def local_mode(tmp_path_factory, cpu_image):
    """Everything one local-mode job needs; yields a function that runs one and returns its JSON line."""
    if not SDK_PYTHON.exists():
        unavailable(f"no SageMaker SDK venv at {SDK_PYTHON} (make sagemaker-sdk)")
    if shutil.which("docker-compose") is None:
        unavailable("docker-compose is not installed (Debian: apt-get install docker-compose)")
    root = tmp_path_factory.mktemp("sagemaker-local")
    home, container_root = root / "home", root / "container-root"
    (home / ".sagemaker").mkdir(parents=True)
    container_root.mkdir()
    # Local mode's settings (~/.sagemaker/config.yaml): its temporary /opt/ml trees under our tmp folder.
    (home / ".sagemaker" / "config.yaml").write_text(f"local:\n  container_root: {container_root}\n")
    (root / "sdk-defaults.yaml").write_text(TELEMETRY_OPT_OUT)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", **FAKE_AWS,
           "SAGEMAKER_USER_CONFIG_OVERRIDE": str(root / "sdk-defaults.yaml"),
           "SAGEMAKER_ADMIN_CONFIG_OVERRIDE": str(root / "sdk-defaults.yaml"),
           "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
           "HTTP_PROXY": CLOSED_PORT, "HTTPS_PROXY": CLOSED_PORT, "NO_PROXY": "",
           **({"DOCKER_HOST": os.environ["DOCKER_HOST"]} if "DOCKER_HOST" in os.environ else {})}
    network_was_there = docker("network", "inspect", NETWORK, check=False).returncode == 0
    if not network_was_there:
        # Local mode always attaches its containers to this compose network; compose reuses one of that name that
        # exists. Ours is internal: no route off the machine (and training sends nothing over it). A network with
        # no address at all would be better, but Docker refuses one (null IPAM needs a pool; the host and none
        # networks are single; ipvlan and macvlan need kernel support CI machines may lack).
        docker("network", "create", "--internal", NETWORK)

    def run(records: Path, output: Path, job_name: str, hyperparameters: dict) -> dict:
        result = subprocess.run([str(SDK_PYTHON), str(DRIVER), cpu_image, str(records), str(output), job_name,
                                 json.dumps(hyperparameters)], capture_output=True, text=True, env=env, timeout=900)
        assert result.returncode == 0, f"driver exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        *log, last = result.stdout.strip().splitlines()
        outcome = json.loads(last)
        outcome["log"] = "\n".join(log) + "\n" + result.stderr  # the container's log comes on the SDK's stdout
        return outcome

    yield run
    # The jobs' stopped containers (compose leaves them), then the network compose made for them.
    listed = docker("ps", "-a", "--filter", "label=com.docker.compose.project.working_dir", "--format",
                    '{{.ID}} {{.Label "com.docker.compose.project.working_dir"}}').stdout.split("\n")
    ours = [line.split()[0] for line in listed if line.strip() and line.split()[1].startswith(str(container_root))]
    if ours:
        docker("rm", "-f", *ours)
    if not network_was_there:
        docker("network", "rm", NETWORK, check=False)
    assert docker("network", "inspect", NETWORK, check=False).returncode != 0 or network_was_there


@pytest.fixture(scope="module")
def world_readable_records(tmp_path_factory) -> Path:
    records = word_records(tmp_path_factory.mktemp("sdk-records"), 40, 32, 7, "--workers", "1")
    for path in [records, *records.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return records


def members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return {member.name.removeprefix("./"): member for member in tar.getmembers()}


def read_member(archive: Path, name: str) -> bytes:
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.name.removeprefix("./") == name:
                return tar.extractfile(member).read()
    raise AssertionError(f"{archive.name} has no {name}: {sorted(members(archive))}")


@pytest.mark.slow
def test_local_mode_trains_the_cpu_image_end_to_end(local_mode, world_readable_records, tmp_path):
    output = tmp_path / "output"
    output.mkdir()
    outcome = local_mode(world_readable_records, output, "shadownet-local-1", {
        "model": "shadownet_small", "train_steps": "3", "batch_size": "8", "warmup_steps": "1",
        "eval_every": "1000", "log_every": "1", "checkpoint_every": "3"})
    assert outcome["telemetry_opt_out"] is True
    assert outcome["status"] == "Completed", outcome["log"][-3000:]
    assert outcome["model_data"] == f"file://{output}/model.tar.gz"
    assert "platform=sagemaker" in outcome["log"] and "step=3 loss=" in outcome["log"]
    assert "Traceback" not in outcome["log"]

    # model.tar.gz: the SavedModel in TF Serving's <name>/<version>/ layout, as SageMaker's TF Serving loads it.
    model = members(output / "model.tar.gz")
    assert {"shadownet/1/saved_model.pb", "shadownet/1/variables/variables.index"} <= set(model)
    assert any(name.startswith("shadownet/1/variables/variables.data-") for name in model)
    output_files = members(output / "output.tar.gz")
    assert "failure" not in output_files
    report = json.loads(read_member(output / "output.tar.gz", "data/evaluation-test.json"))
    assert report["num_samples"] == 8

    # The artifact serves: unpacked as SageMaker hosting does, it predicts with shadownet's own loader.
    served = tmp_path / "served"
    with tarfile.open(output / "model.tar.gz") as tar:
        tar.extractall(served, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    images = sorted((world_readable_records.parent / "dataset" / "img").glob("*.jpg"))[:2]
    result = run_cli("predict", "--model", served / "shadownet", "--json", *images, check=True)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["image"] for line in lines] == [str(image) for image in images]
    assert all(isinstance(line["text"], str) and 0.0 <= line["confidence"] <= 1.0 for line in lines)


@pytest.mark.slow
def test_local_mode_failure_leaves_the_reason_in_the_failure_output(local_mode, world_readable_records, tmp_path):
    output = tmp_path / "output"
    output.mkdir()
    outcome = local_mode(world_readable_records, output, "shadownet-local-2", {"batch_size": "many"})
    assert outcome["status"] == "Failed"
    assert "exited with code: 2" in outcome["error"], outcome["error"]
    reason = read_member(output / "output.tar.gz", "failure").decode()
    assert reason == "shadownet train: sagemaker hyperparameters: batch_size must be a whole number, not 'many'"
    assert "Traceback" not in outcome["log"]
