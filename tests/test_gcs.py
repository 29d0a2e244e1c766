"""gs:// inputs against a real Cloud Storage API server (gcp-storage-emulator) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import Dataset, run_cli, tree_digest
from shadownet.cloud.gcs import READ_ONLY, GcsConfig, GcsReader, GcsUrl, _error, is_gcs
from shadownet.cloud.storage import Staging, is_remote
from shadownet.errors import ShadownetError

FILES = {
    "shadownet/1/saved_model.pb": os.urandom(200_000),  # binary, several chunks
    "shadownet/1/variables/variables.index": bytes(range(256)),
    "shadownet/1/variables/variables.data-00000-of-00001": b"\x00" * 10,
    "shadownet/1/assets/shadownet.json": b'{"name": "shadownet"}',
    "empty.txt": b"",
}


def tree(root, files: dict[str, bytes]):
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_urls():
    assert GcsUrl.parse("gs://bucket/some/prefix/") == GcsUrl("bucket", "some/prefix")
    assert GcsUrl.parse("gs://bucket") == GcsUrl("bucket", "")
    assert str(GcsUrl("bucket", "a").child("b/c")) == "gs://bucket/a/b/c"
    assert is_gcs("gs://b/x") and not is_remote("gs://b/x") and not is_gcs("s3://b/x")
    with pytest.raises(ShadownetError, match="no bucket name"):
        GcsUrl.parse("gs:///prefix")


def test_staged_tree_is_byte_identical_and_follows_the_bucket(gcs, gcs_bucket, tmp_path):
    source = tree(tmp_path / "source", FILES)
    gcs.upload(source, f"gs://{gcs_bucket}/models")
    gcs.upload(tree(tmp_path / "other", {"x.bin": b"x"}), f"gs://{gcs_bucket}/models-old")  # a sibling prefix
    gcs.client().bucket(gcs_bucket).blob("models/folder/").upload_from_string(b"")  # a console "folder"

    staging = Staging(tmp_path / "scratch")
    local = staging.input_dir(f"gs://{gcs_bucket}/models/")
    assert tree_digest(local) == tree_digest(source)

    # A rerun keeps what is current (no download: same inode), drops what the bucket no longer has.
    inode = (local / "shadownet/1/saved_model.pb").stat().st_ino
    gcs.client().bucket(gcs_bucket).blob("models/empty.txt").delete()
    assert staging.input_dir(f"gs://{gcs_bucket}/models") == local
    assert (local / "shadownet/1/saved_model.pb").stat().st_ino == inode
    assert not (local / "empty.txt").exists() and not list(local.rglob("*.partial"))

    only = Staging(tmp_path / "scratch2").input_dir(f"gs://{gcs_bucket}/models/shadownet/1",
                                                    only=lambda relative: relative.endswith(".pb"))
    assert [p.relative_to(only).as_posix() for p in only.rglob("*") if p.is_file()] == ["saved_model.pb"]


def test_missing_bucket_and_empty_prefix_are_one_line(gcs, gcs_bucket, tmp_path):
    staging = Staging(tmp_path / "scratch")
    with pytest.raises(ShadownetError) as missing:
        staging.input_dir("gs://no-such-bucket/models")
    assert str(missing.value) == "gs://no-such-bucket/models: cannot list: no such bucket (404)"
    with pytest.raises(ShadownetError) as empty:
        staging.input_dir(f"gs://{gcs_bucket}/nothing")
    assert str(empty.value) == f"gs://{gcs_bucket}/nothing: no objects under this prefix"

    # Through the command: one line, exit 2, no traceback (validate imports no TensorFlow: quick).
    result = run_cli("validate", "--dataset-dir", "gs://no-such-bucket/dataset", "--scratch-dir", tmp_path / "s")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "shadownet: error: gs://no-such-bucket/dataset: cannot list: no such bucket (404)"]


def test_unreachable_endpoint_and_refused_requests(monkeypatch, tmp_path):
    from google.api_core import exceptions

    from gcsserver import EMULATOR_VAR
    from s3server import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv(EMULATOR_VAR, endpoint)
    reader = GcsReader(GcsConfig(retry_seconds=1, connect_timeout=1, read_timeout=1))
    with pytest.raises(ShadownetError) as unreachable:
        Staging(tmp_path, gcs=reader).input_dir("gs://bucket/models")
    assert str(unreachable.value) == (
        f"gs://bucket/models: cannot list: {endpoint} did not answer (still failing after retries)")

    url = GcsUrl("bucket", "models/a.pb")
    assert str(_error(url, "download", exceptions.Forbidden("denied"))) == (
        "gs://bucket/models/a.pb: cannot download: access denied (403)")
    assert str(_error(url, "download", exceptions.NotFound("gone"))) == (
        "gs://bucket/models/a.pb: cannot download: no such object (404)")
    retried = exceptions.RetryError("deadline", exceptions.ServiceUnavailable("busy"))
    assert str(_error(url, "list", retried)) == (
        "gs://bucket/models/a.pb: cannot list: HTTP 503 (still failing after retries)")


def test_outputs_to_gs_are_refused(tmp_path, good_dataset):
    staging = Staging(tmp_path / "scratch")
    for output in (staging.output_dir, staging.output_file):
        with pytest.raises(ShadownetError, match="gs://b/out: gs:// is read-only here"):
            output("gs://b/out")
    result = run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", "gs://b/records", "--workers", "1")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"shadownet: error: gs://b/records: {READ_ONLY}"]


def test_google_cloud_storage_is_imported_only_for_gs_paths(tmp_path):
    script = textwrap.dedent("""
        import sys
        from shadownet.cloud.storage import Staging
        from shadownet.flags import build_parser

        args = build_parser().parse_args(["predict", "--model", "gs://bucket/export", "image.jpg"])
        assert args.model == "gs://bucket/export"
        Staging(sys.argv[1]).input_dir(sys.argv[1])
        print(sorted(m for m in sys.modules if m.startswith("google.cloud.storage")))
    """)
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_predict_reads_a_model_from_gs(gcs, gcs_bucket, trained_dir, tmp_path):
    from shadownet.learn import export

    export.export(trained_dir, tmp_path / "serving")
    gcs.upload(tmp_path / "serving", f"gs://{gcs_bucket}/serving")
    image = tmp_path / "images" / Dataset(tmp_path / "images").image("a.jpg", "abc")

    local = run_cli("predict", "--model", tmp_path / "serving/shadownet", "--json", image, check=True)
    remote = run_cli("predict", "--model", f"gs://{gcs_bucket}/serving/shadownet/1", "--json", image,
                     "--scratch-dir", tmp_path / "scratch", check=True)
    assert json.loads(remote.stdout) == json.loads(local.stdout)
    assert (tmp_path / "scratch/gs" / gcs_bucket / "serving/shadownet/1/saved_model.pb").is_file()


@pytest.mark.slow
def test_training_refuses_a_gs_output_before_it_trains(export_records, tmp_path):
    result = run_cli("train", "--tfrecords-dir", export_records, "--model-dir", tmp_path / "run", "--export-dir",
                     "gs://b/serving", "--train-steps", "1")
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == (
        f"shadownet: error: gs://b/serving: {READ_ONLY}")
    assert not (tmp_path / "run").exists()
