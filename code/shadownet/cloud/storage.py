"""Object storage: ``s3://bucket/prefix`` paths on S3 and S3-compatible stores (MinIO, Ceph, UCloud UFile).

Inputs are staged to local scratch and outputs published from it; the stages themselves only ever see
local folders. Reading and writing follow two rules:

* a download lands under a temporary name and is renamed when complete (s3transfer does this), so a
  staged folder never holds half a file under its final name;
* an upload sends the data objects first and the objects a reader trusts last (a records manifest,
  a checkpoint's ``checkpoint`` state file, a SavedModel's ``saved_model.pb``), so a reader that finds
  those finds everything they refer to. One object's PUT is atomic in S3.

A staged folder, input or output, is what the store holds now (``staged.py``): a local file counts only with
the object's bytes (size and ETag), and one the prefix lacks is removed, so a scratch copy left by an earlier
run, another endpoint or a bucket emptied since never stands in for the store.

Transient failures (throttling, 5xx, timeouts, dropped connections) are retried by botocore's
"standard" retry mode with backoff, and dropped downloads by s3transfer; what still fails, and
permanent errors (no such bucket, access denied), become a ``ShadownetError`` naming the object and
the reason. Credentials come from boto3's standard chain and never appear in a message.

``gs://`` inputs are staged the same way by ``gcs.py`` (read only: outputs to ``gs://`` are refused).
"""

from __future__ import annotations

import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..errors import ShadownetError, converted
from .gcs import READ_ONLY, GcsReader, GcsUrl, is_gcs
from .staged import PART_SIZE, is_current, prune

SCHEME = "s3://"

# Error codes no retry can fix: say so at once instead of backing off.
_PERMANENT = {
    "NoSuchBucket": "no such bucket",
    "NoSuchKey": "no such object",
    "404": "not found",
    "AccessDenied": "access denied",
    "403": "access denied",
    "AllAccessDisabled": "access denied",
    "InvalidAccessKeyId": "the access key is not valid for this endpoint",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "InvalidBucketName": "invalid bucket name",
    "ExpiredToken": "the session token has expired",
}


def is_remote(path: str | os.PathLike) -> bool:
    return str(path).startswith(SCHEME)


@dataclass(frozen=True)
class S3Url:
    bucket: str
    key: str  # no leading or trailing slash; "" is the whole bucket

    @classmethod
    def parse(cls, url: str) -> "S3Url":
        if not is_remote(url):
            raise ShadownetError(f"{url}: not an s3:// URL")
        bucket, _, key = url[len(SCHEME):].partition("/")
        if not bucket:
            raise ShadownetError(f"{url}: no bucket name (expected s3://bucket/prefix)")
        return cls(bucket, key.strip("/"))

    def child(self, relative: str) -> "S3Url":
        return S3Url(self.bucket, f"{self.key}/{relative}" if self.key else relative)

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


@dataclass(frozen=True)
class StorageConfig:
    endpoint_url: str | None = None  # None: boto3's own resolution (AWS_ENDPOINT_URL, config files)
    max_attempts: int = 8  # per request, first try included
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    workers: int = 8  # objects moved at once
    # "auto": path-style with a custom endpoint (MinIO, IP addresses), virtual hosts on AWS.
    addressing_style: str = "auto"


def _client(config: StorageConfig):
    import boto3
    from botocore.config import Config

    endpoint = config.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    style = config.addressing_style
    if style == "auto":
        style = "path" if endpoint else "virtual"
    botocore_config = Config(retries={"total_max_attempts": config.max_attempts, "mode": "standard"},
                             connect_timeout=config.connect_timeout, read_timeout=config.read_timeout,
                             s3={"addressing_style": style}, max_pool_connections=max(10, 2 * config.workers))
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=botocore_config)


class ObjectStore:
    """One S3 client and the transfers shadownet needs: list, stage a prefix in, publish a folder out."""

    def __init__(self, config: StorageConfig | None = None, client=None):
        self.config = config or StorageConfig()
        self._client = client

    @property
    def client(self):
        if self._client is None:  # boto3 is slow to import; local-only runs never pay for it
            self._client = _client(self.config)
        return self._client

    def list(self, url: S3Url) -> list[tuple[str, int, float]]:
        """(path relative to ``url``, size, last modified as a Unix time) of every object under ``url``, sorted."""
        return [(relative, size, modified) for relative, size, modified, _ in self.listing(url)]

    def listing(self, url: S3Url) -> list[tuple[str, int, float, str | None]]:
        """Like ``list``, each with the object's ETag too (unquoted; None where the store gives none)."""
        prefix = f"{url.key}/" if url.key else ""
        found = []
        with _reported(url, "list"):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=url.bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    relative = item["Key"][len(prefix):]
                    if relative and not relative.endswith("/"):  # "folder" marker objects hold nothing
                        etag = str(item.get("ETag") or "").strip('"') or None
                        found.append((relative, int(item["Size"]), item["LastModified"].timestamp(), etag))
        return sorted(found)

    def exists(self, url: S3Url) -> bool:
        import botocore.exceptions

        try:
            self.client.head_object(Bucket=url.bucket, Key=url.key)
            return True
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise _error(url, "read", exc) from None

    def download(self, url: S3Url, destination: Path) -> Path:
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        with _reported(url, "download"):
            self.client.download_file(url.bucket, url.key, str(destination))
        return destination

    def upload(self, source: Path, url: S3Url) -> None:
        from boto3.s3.transfer import TransferConfig

        # Parts of PART_SIZE: the object's ETag is then one a local copy's content can be checked against.
        config = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE)
        with _reported(url, "upload"):
            self.client.upload_file(str(source), url.bucket, url.key, Config=config)

    def delete(self, urls: Sequence[S3Url]) -> None:
        for url in urls:
            with _reported(url, "delete"):
                self.client.delete_object(Bucket=url.bucket, Key=url.key)

    def stage_in(self, url: S3Url, destination: Path, skip_existing: bool = True,
                 allow_empty: bool = False, only: Callable[[str], bool] | None = None) -> list[Path]:
        """Every object under ``url`` into ``destination`` (same relative paths), several at once; a file
        there that the prefix does not hold is removed, so the folder is what the store has now.

        With ``skip_existing``, a local file with the object's content (its size and ETag) is kept: a
        restarted job re-stages only what it lacks or what changed in the bucket since. ``only(relative
        path)``: stage (and remove) just the objects and files it accepts.
        """
        destination = Path(destination)
        objects = [item for item in self.listing(url) if only is None or only(item[0])]
        if not objects and not allow_empty:
            raise ShadownetError(f"{url}: no objects under this prefix")
        if destination.is_dir():
            prune(destination, [relative for relative, *_ in objects], only)
        wanted = [(relative, destination / relative) for relative, size, modified, etag in objects
                  if not (skip_existing and is_current(destination / relative, size, modified, etag))]
        self._each(lambda item: self.download(url.child(item[0]), item[1]), wanted)
        return [destination / relative for relative, *_ in objects]

    def publish(self, source: Path, url: S3Url, last: Sequence[str] = ()) -> int:
        """Upload the files under ``source`` to ``url``; files named in ``last`` (basenames) go after all
        others, so that a reader who finds them finds everything. Returns the number of files sent."""
        files = sorted(p for p in Path(source).rglob("*") if p.is_file() and not _is_partial(p))
        self.upload_ordered(Path(source), files, url, last)
        return len(files)

    def upload_ordered(self, source: Path, files: Sequence[Path], url: S3Url, last: Sequence[str] = ()) -> None:
        """``files`` (under ``source``) to the same relative keys under ``url``, several at once; those named
        in ``last`` once all the others are there."""
        late = [p for p in files if p.name in last]
        early = [p for p in files if p.name not in last]
        for group in (early, late):
            self._each(lambda path: self.upload(path, url.child(path.relative_to(source).as_posix())), group)

    def _each(self, work, items: Iterable) -> None:
        items = list(items)
        if len(items) <= 1 or self.config.workers <= 1:
            for item in items:
                work(item)
            return
        with ThreadPoolExecutor(max_workers=self.config.workers) as pool:
            for future in [pool.submit(work, item) for item in items]:
                future.result()  # the first failure is raised; the others still finish or fail quietly


class Arrivals:
    """Objects staged in the background, one after the other; ``wait(local path)`` returns once that one is
    here (at once for any other path) and raises the download's error if it failed."""

    def __init__(self, store: ObjectStore, url: S3Url, local: Path, names: list[str]):
        self.local = Path(local)
        self._arrived = {str(self.local / name): threading.Event() for name in names}
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._stage, args=(store, url, names), daemon=True,
                                        name="shadownet-stage-in")
        self._thread.start()

    def _stage(self, store: ObjectStore, url: S3Url, names: list[str]) -> None:
        try:
            listed = {relative: (size, modified, etag) for relative, size, modified, etag in store.listing(url)}
            for name in names:
                if name not in listed:
                    raise ShadownetError(f"{url.child(name)}: not found (the manifest names it)")
                if not is_current(self.local / name, *listed[name]):
                    store.download(url.child(name), self.local / name)
                self._arrived[str(self.local / name)].set()
        except BaseException as exc:  # handed to whoever waits for a file
            self._error = exc
            for event in self._arrived.values():
                event.set()

    def wait(self, path: str) -> None:
        event = self._arrived.get(str(path))
        if event is None:
            return
        event.wait()
        if self._error is not None:
            raise self._error

    @property
    def error(self) -> BaseException | None:
        """Why staging stopped, if it failed (what a reader of the files should report, not TensorFlow's wrapping)."""
        return self._error


def _is_partial(path: Path) -> bool:
    # Files another writer has not finished (fileio's ".NAME.partial", s3transfer's "NAME.<random>").
    return path.name.startswith(".") and path.name.endswith(".partial")


def _reported(url: S3Url, action: str) -> converted:
    """botocore's exceptions as a ShadownetError naming the object, for the duration of a call."""
    return converted(lambda exc: _error(url, action, exc))


def _code(exc) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _error(url: S3Url, action: str, exc: BaseException) -> ShadownetError | None:
    import botocore.exceptions as bce
    from boto3.exceptions import S3UploadFailedError

    if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, bce.ClientError):
        exc = exc.__context__  # boto3 wraps the upload's own error: its code says what went wrong
    if isinstance(exc, bce.ClientError):
        code = _code(exc)
        if code in _PERMANENT:
            return ShadownetError(f"{url}: cannot {action}: {_PERMANENT[code]} ({code})")
        return ShadownetError(f"{url}: cannot {action}: {code or 'error'} (still failing after retries)")
    if isinstance(exc, bce.NoCredentialsError):
        return ShadownetError(f"{url}: no credentials found (environment, shared credentials file or instance role)")
    if isinstance(exc, (bce.EndpointConnectionError, bce.ConnectTimeoutError, bce.ReadTimeoutError,
                        bce.ConnectionClosedError)):
        return ShadownetError(f"{url}: cannot {action}: the endpoint did not answer (still failing after retries)")
    if isinstance(exc, S3UploadFailedError):
        return ShadownetError(f"{url}: cannot {action}: {_short(str(exc))}")
    if isinstance(exc, bce.BotoCoreError):
        return ShadownetError(f"{url}: cannot {action}: {_short(str(exc))}")
    return None


def _short(message: str) -> str:
    return message.splitlines()[0][:300] if message else "failed"



# -- local views of remote paths, for the CLI edge ------------------------------------------------------


class Staging:
    """Local folders standing in for ``s3://`` paths: inputs staged in, outputs sent back; ``gs://`` inputs too.

    Local paths pass through untouched, so a stage never needs to know where its data lives.
    """

    def __init__(self, scratch: Path, store: ObjectStore | None = None, gcs: GcsReader | None = None):
        self.scratch = Path(scratch)
        self._store = store
        self._gcs = gcs
        self._sent: dict[str, dict[str, tuple[int, int]]] = {}  # remote path -> file -> (size, mtime) sent

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = ObjectStore()
        return self._store

    @property
    def gcs(self) -> GcsReader:
        if self._gcs is None:
            self._gcs = GcsReader()
        return self._gcs

    def _local(self, url: S3Url, role: str) -> Path:
        return self.scratch / role / url.bucket / (url.key or "_root")

    def input_dir(self, path: str | Path, only: Callable[[str], bool] | None = None) -> Path:
        """A folder to read: ``path`` itself, or the objects under an ``s3://`` or ``gs://`` prefix staged
        locally (``only(relative path)``: just those it accepts)."""
        if is_gcs(path):
            url = GcsUrl.parse(str(path))
            local = self.scratch / "gs" / url.bucket / (url.prefix or "_root")
            self.gcs.stage_in(url, local, only=only)
            return local
        if not is_remote(path):
            return Path(path)
        url = S3Url.parse(str(path))
        local = self._local(url, "in")
        self.store.stage_in(url, local, only=only)
        return local

    def input_dir_then(self, path: str, now: Callable[[str], bool], later: Sequence[str]) -> tuple[Path, "Arrivals"]:
        """Like ``input_dir`` for the objects ``now`` accepts; then the objects ``later`` (relative paths, in
        that order) are staged in a background thread, and ``Arrivals.wait`` blocks until one is here."""
        url = S3Url.parse(str(path))
        local = self._local(url, "in")
        self.store.stage_in(url, local, only=now)
        return local, Arrivals(self.store, url, local, list(later))

    def output_dir(self, path: str | Path, existing: bool = False) -> Path:
        """A local folder whose content ``sync`` sends to ``path``. ``existing``: start from what is
        already there (a run to resume, a folder to add to) -- what the store holds now, and only that: a
        local file it lacks (never sent, or from another endpoint or a bucket emptied since) is removed."""
        check_writable(path)
        if not is_remote(path):
            return Path(path)
        url = S3Url.parse(str(path))
        local = self._local(url, "out")
        if not existing:  # leftovers of an earlier attempt were never sent: start clean
            shutil.rmtree(local, ignore_errors=True)
        local.mkdir(parents=True, exist_ok=True)
        if existing:  # the folder becomes a copy of the prefix: each file the object of that name
            self.store.stage_in(url, local, allow_empty=True)
        self._sent[str(path)] = _state(local)  # the store holds exactly this: it needs no upload
        return local

    def sync(self, local: Path, path: str | Path, last: Sequence[str] = ()) -> int:
        """Send what changed under ``local`` since the last sync: data first, files named in ``last`` after
        them; then delete the objects this run sent or staged whose file is gone (old checkpoints).
        Returns the number of files sent."""
        if not is_remote(path):
            return 0
        url, local = S3Url.parse(str(path)), Path(local)
        before, now = self._sent.get(str(path), {}), _state(local)
        changed = [local / relative for relative, stamp in now.items() if before.get(relative) != stamp]
        self.store.upload_ordered(local, changed, url, last)
        self.store.delete([url.child(relative) for relative in before if relative not in now])
        self._sent[str(path)] = now
        return len(changed)

    def output_file(self, path: str | Path) -> Path:
        check_writable(path)
        if not is_remote(path):
            return Path(path)
        url = S3Url.parse(str(path))
        local = self._local(url, "out")
        local.parent.mkdir(parents=True, exist_ok=True)
        return local

    def send_file(self, local: Path, path: str | Path) -> None:
        if is_remote(path) and Path(local).exists():
            self.store.upload(Path(local), S3Url.parse(str(path)))


def check_writable(path: str | Path | None) -> None:
    """Refuse an output to ``gs://`` (read only here), saying how to write there; any other path (or None) passes."""
    if is_gcs(path):
        raise ShadownetError(f"{path}: {READ_ONLY}")


def _state(folder: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime) of the finished files under ``folder``."""
    state = {}
    for path in Path(folder).rglob("*"):
        if path.is_file() and not _is_partial(path):
            stat = path.stat()
            state[path.relative_to(folder).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return state
