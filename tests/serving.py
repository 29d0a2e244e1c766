"""A ``shadownet serve`` process (or container) spoken to over HTTP on 127.0.0.1, for the serving tests."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``command`` started in the background; ``request`` speaks HTTP to 127.0.0.1:``port``."""

    def __init__(self, command: list[str], port: int, env: dict | None = None, log=None):
        self.port = port
        self.log = log
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                        stderr=log or subprocess.PIPE, text=True)

    @classmethod
    def local(cls, model, *flags, port: int | None = None, env: dict | None = None, log=None) -> "Server":
        port = port or free_port()
        command = [sys.executable, "-m", "shadownet", "serve", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--model", str(model)] if model is not None else []
        return cls(command + [str(f) for f in flags], port, dict(os.environ, **(env or {})), log)

    def wait_ready(self, timeout: float = 180, path: str = "/ping") -> "Server":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited {self.process.returncode}: {self.stderr()}")
            try:
                if self.request("GET", path, timeout=5)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        self.process.kill()
        raise AssertionError(f"not ready within {timeout} s: {self.stderr()}")

    def stderr(self) -> str:
        if self.log is not None:
            self.log.flush()
            with open(self.log.name, encoding="utf-8", errors="replace") as f:
                return f.read()[-3000:]
        return self.process.stderr.read()[-3000:] if self.process.poll() is not None else ""

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
                headers: dict | None = None, timeout: float = 60) -> tuple[int, dict, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            all_headers = dict(headers or {})
            if content_type is not None:
                all_headers["Content-Type"] = content_type
            connection.request(method, path, body=body, headers=all_headers)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def post_json(self, path: str, document) -> tuple[int, dict]:
        status, _, body = self.request("POST", path, json.dumps(document).encode(), "application/json")
        return status, json.loads(body)

    def stop(self, timeout: float = 120) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def instances(images: list[bytes]) -> dict:
    return {"instances": [{"b64": b64(image)} for image in images]}
