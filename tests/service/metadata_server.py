"""A local cloud metadata server: AWS IMDSv2 notices and GCP preemption, switched by the test.

It speaks the real protocols the watchers use (IMDSv2 session token, 404 until a notice,
GCP's Metadata-Flavor header and wait_for_change hanging GET) on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TOKEN = "imds-session-token"
_HANG_S = 5.0


class MetadataState:
    def __init__(self) -> None:
        self.spot = threading.Event()
        self.rebalance = threading.Event()
        self.preempted = threading.Event()
        self.token_requests = 0
        self.unauthorised = 0


def _handler(state: MetadataState) -> type[BaseHTTPRequestHandler]:
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

        def do_PUT(self) -> None:
            if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                state.token_requests += 1
                self._send(200, TOKEN)
            else:
                self._send(400, "bad token request")

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path.startswith("/latest/"):
                if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
                    state.unauthorised += 1
                    self._send(401, "")
                elif url.path == "/latest/meta-data/spot/instance-action" and state.spot.is_set():
                    self._send(200, json.dumps({"action": "terminate", "time": "2026-01-01T00:02:00Z"}))
                elif url.path == "/latest/meta-data/events/recommendations/rebalance" and state.rebalance.is_set():
                    self._send(200, json.dumps({"noticeTime": "2026-01-01T00:00:00Z"}))
                else:
                    self._send(404, "")
                return
            if url.path == "/computeMetadata/v1/instance/preempted":
                if self.headers.get("Metadata-Flavor") != "Google":
                    self._send(403, "Missing Metadata-Flavor:Google header.")
                    return
                if parse_qs(url.query).get("wait_for_change") == ["true"]:
                    state.preempted.wait(_HANG_S)
                value = "TRUE" if state.preempted.is_set() else "FALSE"
                self._send(200, value, {"ETag": "etag-" + value.lower(), "Metadata-Flavor": "Google"})
                return
            self._send(404, "")

    return Handler


@contextmanager
def metadata_server() -> Iterator[tuple[str, MetadataState]]:
    state = MetadataState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="metadata-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        state.preempted.set()  # release hanging watchers
        server.shutdown()
        server.server_close()
        thread.join(10)
