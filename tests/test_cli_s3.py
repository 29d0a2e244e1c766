"""Every stage with s3:// paths, through the real command, against moto's S3 server on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from conftest import Dataset, run_cli, tree_digest, words
from shadownet.cloud.storage import ObjectStore, S3Url, StorageConfig

pytestmark = pytest.mark.slow


def keys(s3, bucket: str, prefix: str) -> list[str]:
    listed = s3.client().list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(item["Key"][len(prefix):] for item in listed)


def puts(s3) -> list[str]:
    return [path.split("?")[0] for method, path in s3.proxy.requests if method == "PUT"]


def test_generate_train_evaluate_export_predict_on_s3(s3, bucket, tmp_path):
    store = ObjectStore(StorageConfig(endpoint_url=s3.endpoint))
    dataset = Dataset(tmp_path / "dataset")
    for i, word in enumerate(words(24, seed=5)):
        dataset.sample("Train" if i < 18 else "Test", f"img/{i}.jpg", word)
    store.publish(dataset.write(), S3Url(bucket, "data/dataset"))
    remote = f"s3://{bucket}/data"
    common = ["--s3-endpoint-url", s3.endpoint]

    # Records: the same bytes as a local run, the manifest uploaded after every shard.
    s3.proxy.reset()
    run_cli("tfrecords", "--dataset-dir", f"{remote}/dataset", "--save-dir", f"{remote}/records", "--workers", "1",
            "--scratch-dir", tmp_path / "scratch1", *common, check=True)
    assert puts(s3)[-1] == f"/{bucket}/data/records/manifest.json"
    run_cli("tfrecords", "--dataset-dir", tmp_path / "dataset", "--save-dir", tmp_path / "local-records",
            "--workers", "1", check=True)
    fetched = store.stage_in(S3Url(bucket, "data/records"), tmp_path / "fetched")
    assert len(fetched) >= 3
    local, remote_records = tree_digest(tmp_path / "local-records"), tree_digest(tmp_path / "fetched")
    assert set(local) == set(remote_records)
    assert all(local[name] == remote_records[name] for name in local if name != "manifest.json")
    manifests = [json.loads(p.read_text()) for p in (tmp_path / "local-records/manifest.json",
                                                     tmp_path / "fetched/manifest.json")]
    assert manifests[1]["source"]["dataset_dir"] == f"{remote}/dataset"  # not the scratch copy
    for manifest in manifests:
        del manifest["source"]["dataset_dir"]
    assert manifests[0] == manifests[1]

    # Training: checkpoints reach the bucket as they are saved, state file last.
    train = ["train", "--tfrecords-dir", f"{remote}/records", "--model-dir", f"{remote}/run", "--model",
             "shadownet_small", "--batch-size", "4", "--checkpoint-every", "2", "--eval-every", "2",
             "--log-every", "1", "--keep-checkpoints", "2", *common]
    s3.proxy.reset()
    first = run_cli(*train, "--train-steps", "4", "--scratch-dir", tmp_path / "scratch2", check=True)
    assert "step=4 loss=" in first.stdout
    run_keys = keys(s3, bucket, "data/run/")
    assert {"checkpoints/checkpoint", "checkpoints/ckpt-4.index", "config.json", "charset.json",
            "best.json"} <= set(run_keys)
    assert "checkpoints/ckpt-2.index" in run_keys  # both saves kept (keep_checkpoints=2)
    checkpoint_puts = [p for p in puts(s3) if "/checkpoints/" in p]
    assert checkpoint_puts[-1].endswith("/checkpoints/checkpoint")

    # A new machine (empty scratch) resumes from the bucket and stops at exactly the configured step.
    # With --export-dir (as the Kubeflow spec runs it), the best model and its test report follow.
    second = run_cli(*train, "--train-steps", "6", "--scratch-dir", tmp_path / "scratch3", "--export-dir",
                     f"{remote}/serving", check=True)
    assert "at step 4" in second.stdout and "step=5 " in second.stdout and "step=4 " not in second.stdout
    assert "trained to step 6" in second.stdout
    assert "shadownet/1/saved_model.pb" in keys(s3, bucket, "data/serving/")
    assert json.loads(s3.client().get_object(Bucket=bucket, Key="data/run/evaluation-test.json")["Body"].read())[
        "num_samples"] == 6
    run_keys = keys(s3, bucket, "data/run/")
    assert "checkpoints/ckpt-6.index" in run_keys
    assert "checkpoints/ckpt-2.index" not in run_keys  # keep_checkpoints=2: the manager dropped it, so did the sync

    # Evaluation: the report lands next to the run.
    evaluated = run_cli("evaluate", "--tfrecords-dir", f"{remote}/records", "--model-dir", f"{remote}/run",
                        "--scratch-dir", tmp_path / "scratch4", *common, check=True)
    assert "num_samples=6" in evaluated.stdout
    report = json.loads(s3.client().get_object(Bucket=bucket, Key="data/run/evaluation-test.json")["Body"].read())
    assert report["num_samples"] == 6
    assert "evaluation-test.png" in keys(s3, bucket, "data/run/")

    # Export: TF Serving layout in the bucket, saved_model.pb last, versions never reused.
    s3.proxy.reset()
    export = ["export", "--model-dir", f"{remote}/run", "--export-dir", f"{remote}/export", *common]
    out = run_cli(*export, "--scratch-dir", tmp_path / "scratch5", check=True)
    assert out.stdout.strip() == f"exported {remote}/export/shadownet/1"
    assert puts(s3)[-1] == f"/{bucket}/data/export/shadownet/1/saved_model.pb"
    assert "shadownet/1/variables/variables.index" in keys(s3, bucket, "data/export/")
    out = run_cli(*export, "--scratch-dir", tmp_path / "scratch6", check=True)
    assert out.stdout.strip() == f"exported {remote}/export/shadownet/2"
    refused = run_cli(*export, "--version", "1", "--scratch-dir", tmp_path / "scratch7")
    assert refused.returncode == 2 and "shadownet/1 already exists" in refused.stderr

    predicted = run_cli("predict", "--model", f"{remote}/export/shadownet", "--json", *common,
                        "--scratch-dir", tmp_path / "scratch8", tmp_path / "dataset/img/0.jpg", check=True)
    assert json.loads(predicted.stdout.splitlines()[0])["image"].endswith("img/0.jpg")


def test_storage_errors_are_one_clear_line(s3, bucket, tmp_path):
    result = run_cli("tfrecords", "--dataset-dir", "s3://no-such-bucket-anywhere/dataset", "--save-dir",
                     tmp_path / "out", "--s3-endpoint-url", s3.endpoint, "--scratch-dir", tmp_path / "scratch")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "shadownet: error: s3://no-such-bucket-anywhere/dataset: cannot list: no such bucket (NoSuchBucket)")
    assert "Traceback" not in result.stderr
    missing = run_cli("inspect", "--tfrecords-dir", f"s3://{bucket}/nothing", "--s3-endpoint-url", s3.endpoint,
                      "--scratch-dir", tmp_path / "scratch")
    assert missing.returncode == 2 and f"s3://{bucket}/nothing: no objects under this prefix" in missing.stderr


def test_shard_runs_on_s3_write_what_one_run_writes(s3, bucket, tmp_path, good_dataset):
    """An Indexed Job's pods share no disk: each sends its shard and manifest part; the last one merges."""
    import os
    import subprocess
    import sys

    common = ["--s3-endpoint-url", s3.endpoint, "--workers", "1", "--seed", "3"]
    run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", tmp_path / "single", "--shards", "3", *common,
            check=True)
    processes = [subprocess.Popen(
        [sys.executable, "-m", "shadownet", "tfrecords", "--dataset-dir", str(good_dataset), "--save-dir",
         f"s3://{bucket}/records", "--num-shards", "3", "--scratch-dir", str(tmp_path / f"pod{i}"), *common],
        env=dict(os.environ, JOB_COMPLETION_INDEX=str(i)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(3)]
    errors = [p.communicate(timeout=300)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], errors
    fetched = ObjectStore(StorageConfig(endpoint_url=s3.endpoint)).stage_in(S3Url(bucket, "records"),
                                                                             tmp_path / "fetched")
    assert sorted(p.name for p in fetched) == sorted(p.name for p in (tmp_path / "single").iterdir())  # no parts
    single, sharded = tree_digest(tmp_path / "single"), tree_digest(tmp_path / "fetched")
    assert {k: v for k, v in single.items() if k != "manifest.json"} == {
        k: v for k, v in sharded.items() if k != "manifest.json"}
    manifests = [json.loads((folder / "manifest.json").read_text()) for folder in (tmp_path / "single",
                                                                                   tmp_path / "fetched")]
    assert manifests[0] == manifests[1]
