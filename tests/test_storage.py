"""Object storage against a real S3 API server (moto, server mode) on 127.0.0.1, with injected failures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from s3server import Fault
from shadownet.cloud.storage import ObjectStore, S3Url, StorageConfig, is_remote
from shadownet.errors import ShadownetError


def store(s3, **overrides) -> ObjectStore:
    # Short backoff keeps the retry tests quick; the attempts are what they test.
    config = StorageConfig(endpoint_url=s3.endpoint, read_timeout=5, connect_timeout=5, **overrides)
    return ObjectStore(config)


def tree(root, files: dict[str, bytes]):
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


FILES = {
    "train-00000-of-00002.tfrecord": os.urandom(300_000),
    "train-00001-of-00002.tfrecord": os.urandom(1000),
    "nested/deeper/b.bin": b"\x00" * 10,
    "manifest.json": b'{"counts": {}}',
}


def test_urls():
    assert S3Url.parse("s3://bucket/some/prefix/") == S3Url("bucket", "some/prefix")
    assert S3Url.parse("s3://bucket") == S3Url("bucket", "")
    assert str(S3Url("b", "p").child("x/y")) == "s3://b/p/x/y"
    assert S3Url("b", "").child("x").key == "x"
    assert is_remote("s3://b/p") and not is_remote("/data/s3:/x")
    with pytest.raises(ShadownetError, match="no bucket name"):
        S3Url.parse("s3:///prefix")


def test_publish_then_stage_in_round_trip_with_manifest_last(s3, bucket, tmp_path):
    source = tree(tmp_path / "out", FILES)
    (source / ".manifest.json.partial").write_bytes(b"half")  # an unfinished file is never published
    url = S3Url(bucket, "runs/records")
    assert store(s3).publish(source, url, last=["manifest.json"]) == len(FILES)
    puts = [path for method, path in s3.proxy.requests if method == "PUT"]
    assert len(puts) == len(FILES) and puts[-1].startswith(f"/{bucket}/runs/records/manifest.json")
    keys = sorted(o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted(f"runs/records/{k}" for k in FILES)

    staged = store(s3).stage_in(url, tmp_path / "in")
    assert sorted(p.relative_to(tmp_path / "in").as_posix() for p in staged) == sorted(FILES)
    for relative, data in FILES.items():
        assert (tmp_path / "in" / relative).read_bytes() == data

    s3.proxy.reset()  # a restarted job stages only what it lacks, or what changed in the bucket since
    (tmp_path / "in" / "nested/deeper/b.bin").unlink()
    changed = tmp_path / "changed.json"
    changed.write_bytes(b'{"counts": {1}}')  # the same size as the staged copy
    os.utime(tmp_path / "in" / "manifest.json", (0, 0))  # the staged copy is older than the bucket's now
    store(s3).upload(changed, url.child("manifest.json"))
    store(s3).stage_in(url, tmp_path / "in")
    gets = sorted(path for method, path in s3.proxy.requests if method == "GET" and "list-type" not in path)
    assert gets == [f"/{bucket}/runs/records/manifest.json", f"/{bucket}/runs/records/nested/deeper/b.bin"]
    assert (tmp_path / "in" / "manifest.json").read_bytes() == b'{"counts": {1}}'


def test_transient_failures_are_retried(s3, bucket, tmp_path):
    source = tree(tmp_path / "out", FILES)
    url = S3Url(bucket, "flaky")
    s3.proxy.faults += [Fault("PUT", "tfrecord", "503", times=2), Fault("PUT", "manifest", "drop"),
                        Fault("PUT", "b.bin", "500")]
    store(s3).publish(source, url, last=["manifest.json"])
    assert sorted(action for *_, action in s3.proxy.injected) == ["500", "503", "503", "drop"]

    s3.proxy.reset()
    s3.proxy.faults += [Fault("GET", "list-type", "503"), Fault("GET", "00000-of", "truncate"),
                        Fault("GET", "manifest", "drop"), Fault("GET", "b.bin", "500", times=2)]
    store(s3).stage_in(url, tmp_path / "in")
    assert sorted(action for *_, action in s3.proxy.injected) == ["500", "500", "503", "drop", "truncate"]
    for relative, data in FILES.items():
        assert (tmp_path / "in" / relative).read_bytes() == data
    assert not [p for p in (tmp_path / "in").rglob("*") if p.is_file() and p.name not in
                {os.path.basename(k) for k in FILES}]  # no temporary files left behind


def test_a_failure_that_persists_stops_after_the_configured_attempts(s3, bucket, tmp_path):
    (tmp_path / "a.bin").write_bytes(b"data")
    s3.proxy.faults.append(Fault("PUT", "a.bin", "503", times=100))
    with pytest.raises(ShadownetError, match=r"s3://bucket-\d+/p/a.bin: cannot upload: SlowDown \(still failing"):
        store(s3, max_attempts=3).upload(tmp_path / "a.bin", S3Url(bucket, "p/a.bin"))
    assert len([1 for method, _ in s3.proxy.requests if method == "PUT"]) == 3


def test_permanent_errors_stop_at_once_with_a_clear_message(s3, bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-never-shown")
    with pytest.raises(ShadownetError) as caught:
        store(s3).stage_in(S3Url("no-such-bucket-here", "x"), tmp_path / "in")
    assert str(caught.value) == "s3://no-such-bucket-here/x: cannot list: no such bucket (NoSuchBucket)"
    assert "s3cr3t" not in str(caught.value)
    assert len(s3.proxy.requests) == 1  # not retried

    (tmp_path / "a.bin").write_bytes(b"data")
    with pytest.raises(ShadownetError, match="cannot upload: no such bucket"):
        store(s3).upload(tmp_path / "a.bin", S3Url("no-such-bucket-here", "a.bin"))

    with pytest.raises(ShadownetError, match=r"/empty: no objects under this prefix"):
        store(s3).stage_in(S3Url(bucket, "empty"), tmp_path / "in")
    assert store(s3).exists(S3Url(bucket, "nothing")) is False


def test_access_denied_is_not_retried(s3, bucket, tmp_path):
    s3.proxy.faults.append(Fault("GET", "list-type", "403", times=100))
    with pytest.raises(ShadownetError, match=r"cannot list: access denied \(AccessDenied\)"):
        store(s3).stage_in(S3Url(bucket, "x"), tmp_path / "in")
    assert len(s3.proxy.requests) == 1


def test_unreachable_endpoint(tmp_path):
    from s3server import free_port

    config = StorageConfig(endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=2, connect_timeout=1)
    with pytest.raises(ShadownetError, match="the endpoint did not answer"):
        ObjectStore(config).stage_in(S3Url("b", "x"), tmp_path)


def test_staging_passes_local_paths_through_and_mirrors_remote_ones(s3, bucket, tmp_path):
    from shadownet.cloud.storage import Staging

    staging = Staging(tmp_path / "scratch", store(s3))
    assert staging.input_dir(tmp_path / "local") == tmp_path / "local"
    assert staging.output_dir("relative/out") == Path("relative/out")
    assert staging.sync(tmp_path / "whatever", tmp_path / "local") == 0  # local: nothing to send
    assert s3.proxy.requests == []

    source = tree(tmp_path / "src", FILES)
    store(s3).publish(source, S3Url(bucket, "records"), last=["manifest.json"])
    staged = staging.input_dir(f"s3://{bucket}/records")
    assert staged.is_relative_to(tmp_path / "scratch")
    assert (staged / "manifest.json").read_bytes() == FILES["manifest.json"]

    report = staging.output_file(f"s3://{bucket}/reports/eval.json")
    report.write_text("{}")
    staging.send_file(report, f"s3://{bucket}/reports/eval.json")
    assert s3.client().get_object(Bucket=bucket, Key="reports/eval.json")["Body"].read() == b"{}"


def test_a_run_folder_syncs_changes_state_file_last_and_drops_old_checkpoints(s3, bucket, tmp_path):
    from shadownet.cloud.storage import Staging

    remote = f"s3://{bucket}/run"
    staging = Staging(tmp_path / "scratch", store(s3))
    run = staging.output_dir(remote, existing=True)  # nothing there yet: an empty folder
    assert run.is_dir() and not list(run.iterdir())
    files = {"config.json": b"{}", "checkpoints/ckpt-1.index": b"i1", "checkpoints/ckpt-1.data-00000-of-00001": b"d1",
             "checkpoints/checkpoint": b'model_checkpoint_path: "ckpt-1"'}
    tree(run, files)
    assert staging.sync(run, remote, last=["checkpoint"]) == 4
    puts = [p for m, p in s3.proxy.requests if m == "PUT"]
    assert puts[-1] == f"/{bucket}/run/checkpoints/checkpoint"

    s3.proxy.reset()  # the next save: a new checkpoint, the old one deleted by the manager
    tree(run, {"checkpoints/ckpt-2.index": b"i2", "checkpoints/ckpt-2.data-00000-of-00001": b"d2",
               "checkpoints/checkpoint": b'model_checkpoint_path: "ckpt-2"'})
    for old in ("checkpoints/ckpt-1.index", "checkpoints/ckpt-1.data-00000-of-00001"):
        (run / old).unlink()
    assert staging.sync(run, remote, last=["checkpoint"]) == 3
    puts = [p for m, p in s3.proxy.requests if m == "PUT"]
    assert len(puts) == 3 and puts[-1].endswith("/checkpoints/checkpoint")  # config.json unchanged: not sent
    keys = sorted(o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket, Prefix="run/")["Contents"])
    assert keys == ["run/checkpoints/checkpoint", "run/checkpoints/ckpt-2.data-00000-of-00001",
                    "run/checkpoints/ckpt-2.index", "run/config.json"]

    s3.proxy.reset()  # a restarted job: the run comes back, and nothing is sent again
    again = Staging(tmp_path / "scratch2", store(s3))
    resumed = again.output_dir(remote, existing=True)
    assert (resumed / "checkpoints/ckpt-2.index").read_bytes() == b"i2"
    assert again.sync(resumed, remote) == 0
    assert not [m for m, _ in s3.proxy.requests if m in ("PUT", "DELETE")]


def test_a_shard_that_finds_the_parts_merged_by_another_leaves_that_manifest(s3, bucket, tmp_path):
    """Two shards that finish together both see every manifest part; the first to merge removes the parts. The
    other, finding a part gone while it downloads, takes that merge as done (exit 0), not as an error."""
    from shadownet.cloud.publish import publish_shard
    from shadownet.cloud.storage import Staging
    from shadownet.data.record_format import MANIFEST_FILE
    from shadownet.data.write_records import part_name

    remote = f"s3://{bucket}/records"
    other_part, mine = part_name(0, 2), part_name(1, 2)
    s3.client().put_object(Bucket=bucket, Key=f"records/{other_part}", Body=b"{}")
    save_dir = tree(tmp_path / "shard-1", {mine: b"{}", "train_feature-00001-of-00002.tfrecords": b"records"})

    class OtherShardMergesFirst(ObjectStore):
        def download(self, url, destination):  # the other shard merges between this one's listing and download
            s3.client().put_object(Bucket=bucket, Key=f"records/{MANIFEST_FILE}", Body=b'{"merged": 1}')
            self.delete([S3Url.parse(f"{remote}/{other_part}"), S3Url.parse(f"{remote}/{mine}")])
            return super().download(url, destination)

    staging = Staging(tmp_path / "scratch", OtherShardMergesFirst(StorageConfig(endpoint_url=s3.endpoint)))
    assert publish_shard(staging, save_dir, remote, 2) is False
    objects = s3.client().list_objects_v2(Bucket=bucket, Prefix="records/")["Contents"]
    assert sorted(o["Key"] for o in objects) == [f"records/{MANIFEST_FILE}",
                                                 "records/train_feature-00001-of-00002.tfrecords"]
    manifest = s3.client().get_object(Bucket=bucket, Key=f"records/{MANIFEST_FILE}")["Body"].read()
    assert manifest == b'{"merged": 1}'
