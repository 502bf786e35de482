"""Helpers shared by the deployer tests (unique module name: test dirs here are not packages)."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from daemon.api.previews import Receive, Scope, Send
from daemon.deployers.base import DeployRequest

VERSION_ID = "01JDQ8Z5V7K3M9QX2R4T6W8Y0A"
INDEX = b"<!doctype html><html><head><script type=module src=/assets/index-abc123.js></script></head></html>"
ASSET = b"console.log('preview');\n"
GUIDE = b"<!doctype html><title>guide</title>"
BIG_SIZE = 3 * 1024 * 1024 + 17  # several streaming chunks, not a multiple of the chunk size


def request_for(out_dir: Path, project_id: str = "proj_1", version_id: str = VERSION_ID) -> DeployRequest:
    """A deploy request for one version of one project."""
    return DeployRequest(out_dir, "user_1", project_id, version_id, "make a page")


class LogLines(list[str]):
    """Collects deploy log lines; callable like the pipeline's log function."""

    def __call__(self, line: str) -> None:
        self.append(line)


@dataclass
class LiveServer:
    """A uvicorn server on a loopback port running the preview wrapper around a tiny inner app."""

    port: int
    previews: Path

    def host(self, label: str) -> str:
        """The Host header value naming a deployment on this server."""
        return f"{label}.localhost:{self.port}"

    @property
    def base(self) -> str:
        """The server's loopback base URL."""
        return f"http://127.0.0.1:{self.port}"


async def inner_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Stands in for the Litestar API: answers every path with JSON naming the path it got."""
    body = json.dumps({"inner": True, "path": scope["path"]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def start_server(app: object) -> tuple[uvicorn.Server, threading.Thread, int]:
    """Run uvicorn in a thread on a free loopback port; returns once it accepts connections."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return server, thread, port


def raw_get(port: int, target: str, host: str) -> tuple[int, bytes]:
    """Send a request target byte for byte (httpx would normalise dot segments away); return status, body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body
