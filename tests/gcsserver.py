"""A real Cloud Storage JSON API server for tests: gcp-storage-emulator on 127.0.0.1, in its own process.

google-cloud-storage talks to it when ``STORAGE_EMULATOR_HOST`` holds its URL (``GcsServer.env()``), and then
needs no credentials. It listens on 127.0.0.1, so a container started with ``--network host`` reaches it at the
same URL. Buckets live in memory and die with the server.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from s3server import HOST, free_port

EMULATOR_VAR = "STORAGE_EMULATOR_HOST"  # the name says host; google-cloud-storage wants the URL, scheme and all


class GcsServer:
    """``gcp-storage-emulator start --in-memory`` on a free loopback port, answering once constructed."""

    def __init__(self, timeout: float = 60):
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", HOST, "--port", str(self.port),
             "--in-memory", "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:  # an HTTP answer from the JSON API, not just an open port
                with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gcp-storage-emulator did not answer on {self.url}")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def env(self) -> dict[str, str]:
        """What a process (or a ``--network host`` container, through ``-e``) needs to use this server."""
        return {EMULATOR_VAR: self.url}

    def client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project="test", credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": self.url})

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(name)
        return name

    def upload(self, folder: Path, url: str) -> list[str]:
        """Every file under ``folder`` to the same relative names under ``url`` (``gs://bucket/prefix``).
        Returns the object names written."""
        bucket_name, _, prefix = url.removeprefix("gs://").partition("/")
        bucket = self.client().bucket(bucket_name)
        names = []
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            name = "/".join(part for part in (prefix.strip("/"), path.relative_to(folder).as_posix()) if part)
            bucket.blob(name).upload_from_filename(str(path))
            names.append(name)
        return names

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
