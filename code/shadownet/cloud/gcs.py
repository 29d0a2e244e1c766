"""Google Cloud Storage, read only: a ``gs://bucket/prefix`` staged into a local folder.

What needs it is a model to load (``predict --model``, ``serve --model``, Vertex AI's ``AIP_STORAGE_URI``);
training on Vertex AI reads and writes buckets through their ``/gcs`` mount instead (``platforms.gcs_path``).
google-cloud-storage is imported only when a ``gs://`` path is used. Its client finds credentials the standard
way (``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's, the metadata server) and, with ``STORAGE_EMULATOR_HOST`` set,
talks to that emulator without any. Each object lands under a temporary name and is renamed once complete
(its checksum checked by the library); transient failures are retried with backoff for ``retry_seconds``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from ..errors import ShadownetError, converted
from .staged import is_current, prune

SCHEME = "gs://"
READ_ONLY = ("gs:// is read-only here (a model or data to read); write to a local folder or s3://, or on "
             "Vertex AI training to its Cloud Storage mount, /gcs/BUCKET/PREFIX")


def is_gcs(path: str | os.PathLike) -> bool:
    return str(path).startswith(SCHEME)


@dataclass(frozen=True)
class GcsUrl:
    bucket: str
    prefix: str  # no leading or trailing slash; "" is the whole bucket

    @classmethod
    def parse(cls, url: str) -> "GcsUrl":
        if not is_gcs(url):
            raise ShadownetError(f"{url}: not a gs:// URL")
        bucket, _, prefix = str(url)[len(SCHEME):].partition("/")
        if not bucket:
            raise ShadownetError(f"{url}: no bucket name (expected gs://bucket/prefix)")
        return cls(bucket, prefix.strip("/"))

    def child(self, relative: str) -> "GcsUrl":
        return GcsUrl(self.bucket, f"{self.prefix}/{relative}" if self.prefix else relative)

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class GcsConfig:
    retry_seconds: float = 60.0  # how long one request is retried (429, 5xx, dropped connections)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    workers: int = 8  # objects downloaded at once


class GcsReader:
    """One google-cloud-storage client (made on first use) and what shadownet reads with it."""

    def __init__(self, config: GcsConfig | None = None, client=None):
        self.config = config or GcsConfig()
        self._client = client

    @property
    def client(self):
        if self._client is None:
            self._client = _client()
        return self._client

    def _call(self) -> dict:
        from google.cloud.storage.retry import DEFAULT_RETRY

        return {"retry": DEFAULT_RETRY.with_timeout(self.config.retry_seconds),
                "timeout": (self.config.connect_timeout, self.config.read_timeout)}

    def list(self, url: GcsUrl) -> list[tuple[str, int, float, object]]:
        """(path relative to ``url``, size, last update as a Unix time, the blob) of each object under ``url``."""
        prefix = f"{url.prefix}/" if url.prefix else ""
        found = []
        with _reported(url, "list"):
            for blob in self.client.list_blobs(url.bucket, prefix=prefix, **self._call()):
                relative = blob.name[len(prefix):]
                if relative and not relative.endswith("/"):  # "folder" placeholders hold nothing
                    found.append((_safe(url, relative), int(blob.size or 0), blob.updated.timestamp(), blob))
        return sorted(found, key=lambda item: item[0])

    def download(self, blob, url: GcsUrl, destination: Path) -> None:
        """``blob`` (the listed generation) into ``destination``, through a temporary sibling."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".partial")
        os.close(handle)
        try:
            with _reported(url, "download"):
                blob.download_to_filename(partial, **self._call())
            os.replace(partial, destination)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)

    def stage_in(self, url: GcsUrl, destination: Path, only: Callable[[str], bool] | None = None) -> list[Path]:
        """Every object under ``url`` (that ``only(relative path)`` accepts) into ``destination``, same relative
        paths. A local file with the object's content (its size and MD5; at least as new, for an object listed
        without an MD5) is kept; a file there that the prefix no longer holds is removed, so the folder is what
        the bucket has now. Returns the local files."""
        destination = Path(destination)
        objects = [item for item in self.list(url) if only is None or only(item[0])]
        if not objects:
            raise ShadownetError(f"{url}: no objects under this prefix")
        wanted = [(blob, relative) for relative, size, updated, blob in objects
                  if not is_current(destination / relative, size, updated, _md5(blob))]
        with ThreadPoolExecutor(max_workers=max(1, self.config.workers)) as pool:
            downloads = [pool.submit(self.download, blob, url.child(relative), destination / relative)
                         for blob, relative in wanted]
            for future in downloads:
                future.result()  # the first failure is raised; the others still finish or fail quietly
        prune(destination, [relative for relative, *_ in objects], only)
        return sorted(destination / relative for relative, *_ in objects)


def _client():
    try:
        from google.cloud import storage
    except ImportError:
        raise ShadownetError("gs:// paths need google-cloud-storage (pip install 'shadownet[serve]')") from None
    import google.auth.exceptions

    try:
        return storage.Client(project=None)  # reading needs no project (nor any credentials with an emulator)
    except google.auth.exceptions.DefaultCredentialsError:
        raise ShadownetError("gs://: no Google credentials found (GOOGLE_APPLICATION_CREDENTIALS, "
                             "`gcloud auth application-default login` or the metadata server)") from None


def _md5(blob) -> str | None:
    """The object's MD5 in hex, as listed (base64); None for one listed without (a composite object)."""
    try:
        return base64.b64decode(blob.md5_hash, validate=True).hex() if blob.md5_hash else None
    except (binascii.Error, ValueError, TypeError):
        return None


def _safe(url: GcsUrl, relative: str) -> str:
    parts = PurePosixPath(relative).parts
    if relative.startswith("/") or ".." in parts or "." in relative.split("/"):
        raise ShadownetError(f"{url.child(relative)}: an object name that leaves its folder; not staged")
    return relative


def _reported(url: GcsUrl, action: str) -> converted:
    """google-cloud-storage's exceptions as a ShadownetError naming the object, for the duration of a call."""
    return converted(lambda exc: _error(url, action, exc))


_STATUS = {401: "not authorised (check the credentials)", 403: "access denied", 429: "too many requests"}


def _error(url: GcsUrl, action: str, exc: BaseException) -> ShadownetError | None:
    import google.api_core.exceptions as api
    import google.auth.exceptions as auth
    import requests

    retried = ""
    if isinstance(exc, api.RetryError):  # the retry deadline passed: say what kept failing
        exc, retried = exc.cause or exc, " (still failing after retries)"
    where = f"{url}: cannot {action}"
    if isinstance(exc, api.GoogleAPICallError) and exc.code is not None:
        code = int(exc.code)
        if code == 404:
            return ShadownetError(f"{where}: {'no such bucket' if action == 'list' else 'no such object'} (404)")
        reason = f"{_STATUS[code]} ({code})" if code in _STATUS else f"HTTP {code}"
        return ShadownetError(f"{where}: {reason}{retried}")
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        endpoint = os.environ.get("STORAGE_EMULATOR_HOST") or "Cloud Storage"
        return ShadownetError(f"{where}: {endpoint} did not answer{retried or ' (timed out)'}")
    if isinstance(exc, auth.GoogleAuthError):
        return ShadownetError(f"{where}: credentials refused or unavailable ({type(exc).__name__})")
    from google.cloud.storage.exceptions import DataCorruption

    if isinstance(exc, DataCorruption):
        return ShadownetError(f"{where}: the data received does not match the object's checksum")
    if isinstance(exc, api.GoogleAPIError):
        message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        return ShadownetError(f"{where}: {message}{retried}")
    return None
