"""A local cloud metadata server: AWS IMDSv2 notices and GCP preemption, switched by the test.

It speaks the real protocols the watchers use (IMDSv2 session token, 404 until a notice,
GCP's Metadata-Flavor header and the wait_for_change hanging GET) on 127.0.0.1 only. It runs
in its own process (`python -m tests.service.metadata_server PORT`) so a busy test process
cannot slow its answers; the test flips notices with `POST /__test__/<spot|rebalance|preempt>`
and reads counters from `GET /__test__/stats`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

TOKEN = "imds-session-token"
_HANG_S = 5.0
_REPO = Path(__file__).resolve().parents[2]


class _State:
    def __init__(self) -> None:
        self.events = {name: threading.Event() for name in ("spot", "rebalance", "preempt")}
        self.stats = {"token_requests": 0, "unauthorised": 0}


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            name = self.path.removeprefix("/__test__/")
            if name in state.events:
                state.events[name].set()
                self._send(200, "ok")
            else:
                self._send(404, "")

        def do_PUT(self) -> None:
            if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                state.stats["token_requests"] += 1
                self._send(200, TOKEN)
            else:
                self._send(400, "bad token request")

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/__test__/stats":
                self._send(200, json.dumps(state.stats))
            elif url.path.startswith("/latest/"):
                self._aws(url.path)
            elif url.path == "/computeMetadata/v1/instance/preempted":
                self._gcp(parse_qs(url.query).get("wait_for_change") == ["true"])
            else:
                self._send(404, "")

        def _aws(self, path: str) -> None:
            if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
                state.stats["unauthorised"] += 1
                self._send(401, "")
            elif path == "/latest/meta-data/spot/instance-action" and state.events["spot"].is_set():
                self._send(200, json.dumps({"action": "terminate", "time": "2026-01-01T00:02:00Z"}))
            elif path == "/latest/meta-data/events/recommendations/rebalance" and state.events["rebalance"].is_set():
                self._send(200, json.dumps({"noticeTime": "2026-01-01T00:00:00Z"}))
            else:
                self._send(404, "")

        def _gcp(self, wait: bool) -> None:
            if self.headers.get("Metadata-Flavor") != "Google":
                self._send(403, "Missing Metadata-Flavor:Google header.")
                return
            if wait:
                state.events["preempt"].wait(_HANG_S)
            value = "TRUE" if state.events["preempt"].is_set() else "FALSE"
            self._send(200, value, {"ETag": "etag-" + value.lower(), "Metadata-Flavor": "Google"})

    return Handler


@dataclass
class MetadataControl:
    url: str

    def trigger(self, name: str) -> None:
        httpx.post(f"{self.url}/__test__/{name}", timeout=10).raise_for_status()

    def stats(self) -> dict[str, int]:
        stats: dict[str, int] = httpx.get(f"{self.url}/__test__/stats", timeout=10).json()
        return stats


@contextmanager
def metadata_server() -> Iterator[MetadataControl]:
    from tests.service.helpers import free_port, status_of, wait_for

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.service.metadata_server", str(port)], cwd=_REPO)
    control = MetadataControl(f"http://127.0.0.1:{port}")
    try:
        wait_for(lambda: status_of(control.url + "/__test__/stats") == 200, 30, "the metadata server")
        yield control
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), _handler(_State()))
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
