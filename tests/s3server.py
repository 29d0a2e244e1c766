"""A real S3 API server for tests: moto in server mode on 127.0.0.1, behind a proxy that injects faults.

The proxy forwards every HTTP request to moto unchanged, except the ones a test asked to fail: it
answers them with a 503 or 500, closes the connection without answering, or cuts a response body
short; or it holds one in flight (``hold``) until the test lets it go on or drops it, so that a test
can act (kill the client) while that request is under way. It counts requests so that tests can see
the retries happen.
"""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"
# Fake credentials for the fake server; they exist only for the tests' environment.
TEST_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


ERRORS = {"503": "SlowDown", "500": "InternalError", "403": "AccessDenied"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class Fault:
    method: str  # "GET", "PUT", ... or "*"
    path: str  # regular expression searched in the request path
    # "503", "500", "403" (see ERRORS), "drop" (close, no answer), "truncate" (half the body, then close),
    # "hold" (wait for Proxy.release, then forward it or drop it)
    action: str
    times: int = 1

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and self.method in ("*", method) and re.search(self.path, path) is not None


@dataclass
class Proxy:
    target_port: int
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    injected: list[tuple[str, str, str]] = field(default_factory=list)
    held: threading.Event = field(default_factory=threading.Event)  # set while a request is held

    def __post_init__(self):
        self.lock = threading.Lock()
        self._release = threading.Event()
        self._forward_held = True
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b""):
                                pass
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self):
                body = self._body()
                fault = proxy.take(self.command, self.path)
                if fault == "hold":
                    proxy.held.set()
                    proxy._release.wait(120)
                    proxy.held.clear()
                    fault = None if proxy._forward_held else "drop"
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault in ERRORS:
                    code = ERRORS[fault]
                    payload = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                               f"<Message>injected</Message></Error>").encode()
                    self.send_response(int(fault))
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "host")}
                headers["Content-Length"] = str(len(body))
                upstream = http.client.HTTPConnection(HOST, proxy.target_port, timeout=60)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    self.send_response(response.status)
                    for key, value in response.getheaders():
                        if key.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if fault == "truncate" and len(data) > 1:
                        self.wfile.write(data[: len(data) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream.close()

            def _serve(self):
                try:
                    self._handle()
                except (BrokenPipeError, ConnectionResetError):  # the client went away (killed, say)
                    self.close_connection = True

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self, method: str, path: str) -> str | None:
        with self.lock:
            self.requests.append((method, path))
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    self.injected.append((method, path, fault.action))
                    return fault.action
        return None

    def release(self, forward: bool) -> None:
        """Let the held request go on to moto (``forward``) or close its connection unanswered."""
        self._forward_held = forward
        self._release.set()
        deadline = time.monotonic() + 30
        while self.held.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        self._release.clear()

    def reset(self) -> None:
        with self.lock:
            self.faults.clear()
            self.requests.clear()
            self.injected.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class S3Server:
    """``moto_server`` on a free loopback port, and the fault-injecting proxy in front of it."""

    def __init__(self):
        self.moto_port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.moto_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection((HOST, self.moto_port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.2)
        self.proxy = Proxy(self.moto_port)

    @property
    def endpoint(self) -> str:
        """What clients use: the proxy."""
        return f"http://{HOST}:{self.proxy.port}"

    @property
    def direct_endpoint(self) -> str:
        return f"http://{HOST}:{self.moto_port}"

    def env(self) -> dict[str, str]:
        return dict(TEST_ENV, AWS_ENDPOINT_URL=self.endpoint)

    def client(self, direct: bool = True):
        import boto3

        return boto3.client("s3", endpoint_url=self.direct_endpoint if direct else self.endpoint,
                            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")

    def stop(self) -> None:
        if getattr(self, "proxy", None):
            self.proxy.stop()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
