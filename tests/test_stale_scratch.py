"""The store is the truth: a local scratch copy left by an earlier run never stands in for object storage.

A run on ``s3://`` resumes only what the store holds now (another endpoint with a bucket of the same name, or a
bucket emptied since, leaves nothing to resume), and everything it keeps ends up in the store. Staged inputs
follow the store too. moto's S3 server on 127.0.0.1 (tests/s3server.py), two of them where a test needs a
second endpoint.
"""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from conftest import run_cli, tree_digest, word_records
from shadownet.cloud.storage import ObjectStore, S3Url, Staging, StorageConfig

TRAIN = ["--model", "shadownet_small", "--batch-size", "4", "--train-steps", "2", "--checkpoint-every", "2",
         "--eval-every", "1000", "--log-every", "1", "--warmup-steps", "1", "--shuffle-buffer", "16"]
RUN_FILES = {"config.json", "charset.json", "checkpoints/checkpoint", "checkpoints/ckpt-2.index"}


@pytest.fixture(scope="module")
def other_s3(s3):
    """A second S3 endpoint (its own moto server), for a bucket that has the same name as one on ``s3``."""
    from s3server import S3Server

    server = S3Server()
    yield server
    server.stop()


def store(server) -> ObjectStore:
    return ObjectStore(StorageConfig(endpoint_url=server.endpoint, read_timeout=5, connect_timeout=5))


def keys(server, bucket: str, prefix: str) -> set[str]:
    listed = server.client().list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {item["Key"][len(prefix):] for item in listed}


def empty(server, bucket: str) -> None:
    for key in keys(server, bucket, ""):
        server.client().delete_object(Bucket=bucket, Key=key)


def write(root, files: dict[str, bytes]):
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def gets(server) -> list[str]:
    return sorted(path.split("?")[0] for method, path in server.proxy.requests
                  if method == "GET" and "list-type" not in path)


# -- Staging, without training ---------------------------------------------------------------------------------


def test_a_resumed_output_is_exactly_what_the_store_holds(s3, bucket, tmp_path):
    remote = f"s3://{bucket}/run"
    staging = Staging(tmp_path / "scratch", store(s3))
    run = staging.output_dir(remote, existing=True)
    write(run, {"config.json": b"{}", "checkpoints/ckpt-1.index": b"i1", "checkpoints/checkpoint": b"c1"})
    assert staging.sync(run, remote, last=["checkpoint"]) == 3

    # Written after the last sync, never sent (the run was killed, say): the store does not have it.
    write(run, {"checkpoints/ckpt-2.index": b"i2"})
    again = Staging(tmp_path / "scratch", store(s3))
    resumed = again.output_dir(remote, existing=True)
    assert resumed == run
    assert sorted(tree_digest(resumed)) == ["checkpoints/checkpoint", "checkpoints/ckpt-1.index", "config.json"]
    write(resumed, {"checkpoints/ckpt-2.index": b"i2"})
    assert again.sync(resumed, remote) == 1  # what the store lacked is sent this time
    assert keys(s3, bucket, "run/") == {"config.json", "checkpoints/ckpt-1.index", "checkpoints/checkpoint",
                                        "checkpoints/ckpt-2.index"}

    # The bucket emptied: nothing to resume, and the next sync sends everything the run keeps.
    empty(s3, bucket)
    emptied = Staging(tmp_path / "scratch", store(s3))
    fresh = emptied.output_dir(remote, existing=True)
    assert fresh.is_dir() and not list(fresh.rglob("*"))
    write(fresh, {"config.json": b"{}", "checkpoints/checkpoint": b"c1"})
    assert emptied.sync(fresh, remote) == 2
    assert keys(s3, bucket, "run/") == {"config.json", "checkpoints/checkpoint"}


def test_another_endpoint_with_a_bucket_of_the_same_name_gets_its_own_copy(s3, other_s3, bucket, tmp_path):
    remote = f"s3://{bucket}/run"
    staging = Staging(tmp_path / "scratch", store(s3))
    run = staging.output_dir(remote, existing=True)
    write(run, {"config.json": b'{"a": 1}', "checkpoints/ckpt-1.index": b"i1", "best.json": b"{}"})
    staging.sync(run, remote)

    # The other endpoint's bucket: same names, a same-sized file with other bytes, one file fewer, one more.
    other_s3.client().create_bucket(Bucket=bucket)
    theirs = write(tmp_path / "theirs", {"config.json": b'{"b": 2}', "checkpoints/ckpt-1.index": b"i1",
                                         "notes.txt": b"theirs"})
    store(other_s3).publish(theirs, S3Url(bucket, "run"))
    for path in run.rglob("*"):  # the local copies look newer than anything in the store
        os.utime(path, (time.time() + 3600, time.time() + 3600))
    other_s3.proxy.reset()
    other = Staging(tmp_path / "scratch", store(other_s3))
    mirrored = other.output_dir(remote, existing=True)
    assert tree_digest(mirrored) == tree_digest(theirs)
    assert gets(other_s3) == [f"/{bucket}/run/config.json", f"/{bucket}/run/notes.txt"]  # ckpt-1: same bytes
    assert other.sync(mirrored, remote) == 0
    write(mirrored, {"best.json": b"{}"})
    assert other.sync(mirrored, remote) == 1
    assert keys(other_s3, bucket, "run/") == {"config.json", "checkpoints/ckpt-1.index", "notes.txt", "best.json"}
    assert keys(s3, bucket, "run/") == {"config.json", "checkpoints/ckpt-1.index", "best.json"}  # untouched


def test_a_staged_input_follows_the_store(s3, bucket, tmp_path):
    # An export staged, then a version withdrawn: the staged folder must not keep serving it.
    versions = write(tmp_path / "export", {"1/saved_model.pb": b"one", "2/saved_model.pb": b"two",
                                           "2/variables/variables.index": b"v2"})
    store(s3).publish(versions, S3Url(bucket, "export/shadownet"))
    staging = Staging(tmp_path / "scratch", store(s3))
    local = staging.input_dir(f"s3://{bucket}/export/shadownet")
    assert tree_digest(local) == tree_digest(versions)
    for key in ("2/saved_model.pb", "2/variables/variables.index"):
        s3.client().delete_object(Bucket=bucket, Key=f"export/shadownet/{key}")
    s3.proxy.reset()
    assert staging.input_dir(f"s3://{bucket}/export/shadownet") == local
    assert sorted(p.relative_to(local).as_posix() for p in local.rglob("*")) == ["1", "1/saved_model.pb"]
    assert gets(s3) == []  # version 1 was current: not fetched again


def test_a_local_copy_is_current_only_with_the_objects_content(tmp_path):
    from shadownet.cloud.staged import PART_SIZE, is_current

    small = tmp_path / "small.bin"
    small.write_bytes(b"abc")
    md5 = hashlib.md5(b"abc").hexdigest()
    assert is_current(small, 3, time.time() + 60, md5)  # the content decides, not the clock
    assert not is_current(small, 3, 0.0, "0" * 32)
    assert not is_current(small, 4, 0.0, md5)
    assert not is_current(tmp_path / "missing", 3, 0.0, md5)
    assert is_current(small, 3, 0.0) and not is_current(small, 3, time.time() + 60)  # no digest: the times

    # A multipart upload's ETag: the MD5 of its parts' MD5s, then their count.
    data = os.urandom(PART_SIZE + 100)
    large = tmp_path / "large.bin"
    large.write_bytes(data)
    parts = hashlib.md5(hashlib.md5(data[:PART_SIZE]).digest() + hashlib.md5(data[PART_SIZE:]).digest())
    assert is_current(large, len(data), 0.0, f"{parts.hexdigest()}-2")
    assert not is_current(large, len(data), 0.0, f"{parts.hexdigest()}-3")
    assert not is_current(large, len(data), 0.0, hashlib.md5(data).hexdigest() + "-2")


def test_a_multipart_object_staged_again_is_not_fetched_again(s3, bucket, tmp_path):
    from shadownet.cloud.staged import PART_SIZE

    large = tmp_path / "src" / "large.bin"
    large.parent.mkdir()
    large.write_bytes(os.urandom(PART_SIZE + 1000))
    url = S3Url(bucket, "big")
    store(s3).publish(large.parent, url)
    etag = s3.client().head_object(Bucket=bucket, Key="big/large.bin")["ETag"].strip('"')
    assert etag.endswith("-2")  # two parts: a multipart upload
    store(s3).stage_in(url, tmp_path / "in")
    os.utime(tmp_path / "in" / "large.bin", (0, 0))  # older than the object: only its content can vouch for it
    s3.proxy.reset()
    store(s3).stage_in(url, tmp_path / "in")
    assert gets(s3) == []
    assert (tmp_path / "in" / "large.bin").read_bytes() == large.read_bytes()


# -- the real command: a tiny training run -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    return word_records(tmp_path_factory.mktemp("stale"), 12, 10, 4, "--workers", "1")


def train(server, bucket: str, records_dir, scratch):
    return run_cli("train", "--tfrecords-dir", records_dir, "--model-dir", f"s3://{bucket}/model",
                   "--s3-endpoint-url", server.endpoint, "--scratch-dir", scratch, *TRAIN, check=True)


def assert_trained_from_scratch(result) -> None:
    assert "resumed from" not in result.stdout and "already trained" not in result.stdout, result.stdout
    assert "step=1 loss=" in result.stdout and "trained to step 2" in result.stdout, result.stdout


@pytest.mark.slow
def test_a_second_endpoint_trains_from_scratch_and_gets_the_run(s3, other_s3, bucket, records_dir, tmp_path):
    first = train(s3, bucket, records_dir, tmp_path / "scratch")
    assert_trained_from_scratch(first)
    assert RUN_FILES <= keys(s3, bucket, "model/")

    other_s3.client().create_bucket(Bucket=bucket)  # another endpoint, a bucket of the same name, empty
    second = train(other_s3, bucket, records_dir, tmp_path / "scratch")  # the same machine: the same scratch
    assert_trained_from_scratch(second)
    assert RUN_FILES <= keys(other_s3, bucket, "model/")


@pytest.mark.slow
def test_a_bucket_emptied_between_two_runs_gets_the_second_run(s3, bucket, records_dir, tmp_path):
    assert_trained_from_scratch(train(s3, bucket, records_dir, tmp_path / "scratch"))
    empty(s3, bucket)
    assert_trained_from_scratch(train(s3, bucket, records_dir, tmp_path / "scratch"))
    assert RUN_FILES <= keys(s3, bucket, "model/")
