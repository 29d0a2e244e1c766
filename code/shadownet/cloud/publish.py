"""A stage's outputs on object storage: what goes up in which order, so that readers see whole results.

Local folders need none of this (the stages write them in place); an ``s3://`` destination is staged in a
local folder (``storage.Staging``) and published from it here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..data.record_format import MANIFEST_FILE
from ..data.write_records import finish_shards, part_name
from ..errors import ShadownetError
from .storage import S3Url, Staging, is_remote


def publish_shard(staging: Staging, save_dir: Path, save_path: str | Path, shards: int) -> bool:
    """Publish one shard of a sharded generation; the run that finds every shard's manifest part there
    merges them into ``manifest.json`` (and removes the parts). True when the manifest was written."""
    if not is_remote(save_path):
        return finish_shards(save_dir, shards) is not None
    url = S3Url.parse(str(save_path))
    parts = [part_name(shard, shards) for shard in range(shards)]
    staging.store.delete([url.child(MANIFEST_FILE)])  # an older manifest would describe a mix of files
    staging.sync(save_dir, save_path, last=parts)  # this shard's records, then its part
    present = {relative for relative, *_ in staging.store.list(url)}
    if not set(parts) <= present:
        return False
    Path(staging.scratch).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=staging.scratch) as merge_dir:
        for part in parts:
            try:
                staging.store.download(url.child(part), Path(merge_dir) / part)
            except ShadownetError:
                # Two shards that finish together both see every part; the first to merge removes them. Its
                # manifest is this one's too (the merge is deterministic): nothing is left to do here.
                if MANIFEST_FILE in {relative for relative, *_ in staging.store.list(url)}:
                    return False
                raise
        finish_shards(Path(merge_dir), shards)
        staging.store.upload(Path(merge_dir) / MANIFEST_FILE, url.child(MANIFEST_FILE))
    staging.store.delete([url.child(part) for part in parts])
    return True


def export_version(staging: Staging, export_path: str | Path, name: str, version: int | None,
                   saved_model_file: str | tuple[str, ...]) -> int | None:
    """The version an export to an ``s3://`` prefix gets: the one asked for, unless it is published already
    (versions are never overwritten), else one past the highest there. None for a local folder (the
    exporter numbers it). ``saved_model_file``: the file (or files) whose presence makes a version."""
    if not is_remote(export_path):
        return version
    base = S3Url.parse(str(export_path)).child(name)
    published = {int(rel.split("/")[0]) for rel, *_ in staging.store.list(base)
                 if rel.split("/")[0].isdigit() and rel.endswith(saved_model_file)}
    if version is None:
        return max(published, default=0) + 1
    if version in published:
        raise ShadownetError(f"{base}/{version} already exists; versions are never overwritten "
                             "(choose another --version)")
    return version
