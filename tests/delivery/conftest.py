"""Session fixtures for the delivery tier: boto3 clients aimed at the fleet's AWS stacks deployed
to moto_server with terraform (shared with the AWS tier), and a local server replaying recorded
Compute API responses to the real google-cloud-compute client."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from infra.config import Fleet, load_fleet
from scripts.ops._common import AwsClientFactory
from tests.plugins.moto_fleet import MotoDeployment

ROOT = Path(__file__).resolve().parents[2]
RECORDINGS = Path(__file__).resolve().parent / "recordings"


@pytest.fixture(scope="session")
def fleet() -> Fleet:
    return load_fleet(ROOT / "regions.yaml")


@pytest.fixture(scope="session")
def aws(moto_deployment: MotoDeployment) -> AwsClientFactory:
    """boto3 clients aimed at the moto_server holding the fleet's deployed AWS stacks.

    The deployment is the AWS tier's offline `terraform apply` of bootstrap, every AWS region
    and global (tests/plugins/moto_fleet.py), made once per session for both tiers.
    """
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    clients: dict[tuple[str, str], Any] = {}

    def make(service: str, region: str) -> Any:
        key = (service, region)
        if key not in clients:
            clients[key] = session.client(service, region_name=region, endpoint_url=moto_deployment.endpoint)
        return clients[key]

    return make


# --------------------------------------------------------------------------------------
# Compute API recordings


@dataclass
class Recorder:
    """Requests the replay server saw: (method, path with query, JSON body or None)."""

    requests: list[tuple[str, str, Any]] = field(default_factory=list)


def _load_routes() -> list[dict[str, Any]]:
    return json.loads((RECORDINGS / "gcp" / "routes.json").read_text(encoding="utf-8"))["routes"]


class _ReplayHandler(BaseHTTPRequestHandler):
    routes: ClassVar[list[dict[str, Any]]] = []
    recorder: Recorder

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, doc: Any) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        self.recorder.requests.append((method, self.path, body))
        path = self.path.split("?", 1)[0]
        for route in self.routes:
            if route["method"] != method or route["path"] != path:
                continue
            match = route.get("body_group_endswith")
            if match and not (body and str(body.get("group", "")).endswith(match)):
                continue
            self._reply(200, json.loads((RECORDINGS / "gcp" / route["file"]).read_text(encoding="utf-8")))
            return
        self._reply(
            404,
            {
                "error": {
                    "code": 404,
                    "message": f"The resource '{path}' was not found",
                    "errors": [
                        {"message": f"The resource '{path}' was not found", "domain": "global", "reason": "notFound"}
                    ],
                }
            },
        )

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")


@pytest.fixture(scope="session")
def gcp_replay() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()
    handler = type("Handler", (_ReplayHandler,), {"routes": _load_routes(), "recorder": recorder})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def gcp_clients(gcp_replay: tuple[str, Recorder]) -> Any:
    from google.auth.credentials import AnonymousCredentials

    from scripts.ops._gcp import GcpClients

    return GcpClients.create(api_endpoint=gcp_replay[0], credentials=AnonymousCredentials())
