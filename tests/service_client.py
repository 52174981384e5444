"""Start a real ``melisma serve`` subprocess on a free loopback port and talk to it over HTTP (stdlib only)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """A ``melisma serve`` process; ``request`` returns (status, headers, body bytes) and never raises on 4xx/5xx."""

    def __init__(self, data_dir: Path, *args: str, token: str | None = None):
        self.data_dir, self.args, self.token = data_dir, list(args), token
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> Service:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
        cmd = [sys.executable, "-m", "melisma", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir),
               *self.args, *(["--token", self.token] if self.token else [])]
        self.log = open(self.data_dir.parent / f"serve-{self.port}.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"melisma serve exited with {self.proc.returncode}")
            try:
                if self.request("GET", "/healthz", timeout=2)[0] == 200:
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("melisma serve did not answer /healthz in time")

    def kill(self) -> None:
        """SIGKILL: the service gets no chance to tidy up (a crash or a power cut, as far as it knows)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 120.0, token: str | None = "default") -> tuple[int, dict, bytes]:
        headers = dict(headers or {})
        token = self.token if token == "default" else token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def get_json(self, path: str, **kw) -> tuple[int, dict]:
        status, _, body = self.request("GET", path, **kw)
        return status, json.loads(body)

    def post_form(self, path: str, fields: dict | None = None, files: list[tuple[str, str, bytes]] = (),
                  **kw) -> tuple[int, dict, bytes]:
        body, ctype = multipart(fields or {}, files)
        return self.request("POST", path, body, {"Content-Type": ctype}, **kw)


def multipart(fields: dict, files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body: form ``fields`` and (field, filename, bytes) ``files``."""
    boundary = uuid.uuid4().hex
    parts = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    for field, name, data in files:
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n")
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
