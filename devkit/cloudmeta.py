"""Stand-ins for what an instance calls in its cloud: the metadata services and the GCP APIs.

One server per local instance (`python -m devkit.cloudmeta PORT`, its `CloudConfig` as JSON on
stdin), on 127.0.0.1,
in its own process so a busy test process cannot slow its answers. It speaks the real
protocols the boot script, its agents and the gateway's watchers use:

- AWS IMDSv2: `PUT /latest/api/token`, then `GET /latest/meta-data/...` with the token
  (instance-id, placement/region, autoscaling/target-lifecycle-state, spot/instance-action,
  events/recommendations/rebalance; 404 until a notice exists, 401 without a valid token).
- GCP metadata (`Metadata-Flavor: Google`): project-id, instance id/zone/name, the service
  account's token, and `instance/preempted` with `wait_for_change` (a hanging GET).
- GCP APIs, with the metadata token as the bearer: Secret Manager
  `versions/latest:access`, Cloud Monitoring `timeSeries.create` (validated and recorded),
  Cloud Storage JSON API object listing and `alt=media` downloads (from a local directory).

The boot script reaches them through the clouds' own override variables
(`AWS_EC2_METADATA_SERVICE_ENDPOINT`, `GCE_METADATA_HOST`,
`CLOUDSDK_API_ENDPOINT_OVERRIDES_{SECRETMANAGER,MONITORING,STORAGE}`). Tests switch notices
with `POST /__test__/<spot|rebalance|preempt|terminate>` and read what was received from
`GET /__test__/stats`.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from devkit.proc import free_port, http_status, stop_process, wait_until
from service.pipeline.auth import bearer_token

IMDS_TOKEN = "imds-session-token"  # noqa: S105 - the stand-in's fixed session token
GCP_TOKEN = "ya29.local-access-token"  # noqa: S105 - the stand-in's fixed access token
_HANG_S = 5.0
_REPO = Path(__file__).resolve().parent.parent


@dataclass
class CloudConfig:
    """What one instance's cloud knows about it."""

    instance_id: str = "i-0123456789abcdef0"
    region: str = "us-west-2"
    gcp_project: str = "llm-fleet-local"
    gcp_zone: str = "asia-southeast1-a"
    gcp_instance_id: str = "4424213455912345678"
    secrets: dict[str, str] = field(default_factory=dict)  # GCP Secret Manager: name -> payload
    buckets: dict[str, str] = field(default_factory=dict)  # GCS bucket -> local directory

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


class _State:
    def __init__(self, config: CloudConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.events = {name: threading.Event() for name in ("spot", "rebalance", "preempt", "terminate")}
        self.stats: dict[str, Any] = {
            "token_requests": 0,
            "unauthorised": 0,
            "secret_reads": [],
            "time_series": [],
            "objects_read": 0,
        }

    def record(self, key: str, value: Any) -> None:
        with self.lock:
            if isinstance(self.stats[key], list):
                self.stats[key].append(value)
            else:
                self.stats[key] += value


class _BadRequestError(Exception):
    pass


def _check_time_series(body: Any) -> list[dict[str, Any]]:
    """The shape Cloud Monitoring's timeSeries.create requires of custom gce_instance series."""
    if not isinstance(body, dict) or not isinstance(body.get("timeSeries"), list) or not body["timeSeries"]:
        raise _BadRequestError("timeSeries: a non-empty list is required")
    out = []
    for series in body["timeSeries"]:
        metric = series.get("metric", {}).get("type", "")
        if not metric.startswith("custom.googleapis.com/"):
            raise _BadRequestError(f"metric.type {metric!r}: custom metrics live under custom.googleapis.com/")
        resource = series.get("resource", {})
        labels = resource.get("labels", {})
        if resource.get("type") != "gce_instance" or set(labels) != {"project_id", "instance_id", "zone"}:
            raise _BadRequestError("resource: gce_instance with project_id, instance_id and zone labels")
        points = series.get("points", [])
        if len(points) != 1 or "endTime" not in points[0].get("interval", {}):
            raise _BadRequestError("points: exactly one point with interval.endTime")
        value = points[0].get("value", {}).get("doubleValue")
        if not isinstance(value, int | float):
            raise _BadRequestError("points[0].value.doubleValue: a number is required")
        out.append({"type": metric, "value": float(value), "labels": labels})
    return out


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    config = state.config

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def _send(self, status: int, body: bytes | str, headers: dict[str, str] | None = None) -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _json(self, status: int, value: Any) -> None:
            self._send(status, json.dumps(value), {"Content-Type": "application/json"})

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _bearer_ok(self) -> bool:
            if bearer_token(self.headers.get("Authorization")) == GCP_TOKEN:
                return True
            state.record("unauthorised", 1)
            self._json(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
            return False

        # --- control ------------------------------------------------------------------------
        def do_POST(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            if url.path.startswith("/__test__/"):
                name = url.path.removeprefix("/__test__/")
                if name in state.events:
                    state.events[name].set()
                    self._send(200, "ok")
                else:
                    self._send(404, "")
                return
            match = re.fullmatch(r"/v3/projects/([^/]+)/timeSeries", url.path)
            if match:
                body = self._body()
                if not self._bearer_ok():
                    return
                try:
                    series = _check_time_series(json.loads(body))
                except (ValueError, _BadRequestError, AttributeError) as exc:
                    self._json(400, {"error": {"code": 400, "message": str(exc), "status": "INVALID_ARGUMENT"}})
                    return
                for item in series:
                    state.record("time_series", item | {"project": match.group(1)})
                self._json(200, {})
                return
            self._send(404, "")

        def do_PUT(self) -> None:
            if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                self._body()
                state.record("token_requests", 1)
                self._send(200, IMDS_TOKEN)
            else:
                self._send(400, "bad token request")

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            path = url.path
            if path == "/__test__/stats":
                with state.lock:
                    self._json(200, state.stats)
            elif path.startswith("/latest/"):
                self._aws(path)
            elif path.startswith("/computeMetadata/v1/"):
                self._gce(path.removeprefix("/computeMetadata/v1/"), query)
            elif path.startswith("/v1/projects/"):
                self._secret(path)
            elif path.startswith("/storage/v1/b/"):
                self._storage(path, query)
            else:
                self._send(404, "")

        def _aws(self, path: str) -> None:
            if self.headers.get("X-aws-ec2-metadata-token") != IMDS_TOKEN:
                state.record("unauthorised", 1)
                self._send(401, "")
                return
            events = state.events
            answers = {
                "/latest/meta-data/instance-id": config.instance_id,
                "/latest/meta-data/placement/region": config.region,
                "/latest/meta-data/autoscaling/target-lifecycle-state": (
                    "Terminated" if events["terminate"].is_set() else "InService"
                ),
            }
            if path in answers:
                self._send(200, answers[path])
            elif path == "/latest/meta-data/spot/instance-action" and events["spot"].is_set():
                self._json(200, {"action": "terminate", "time": "2026-01-01T00:02:00Z"})
            elif path == "/latest/meta-data/events/recommendations/rebalance" and events["rebalance"].is_set():
                self._json(200, {"noticeTime": "2026-01-01T00:00:00Z"})
            else:
                self._send(404, "")

        def _gce(self, path: str, query: dict[str, list[str]]) -> None:
            if self.headers.get("Metadata-Flavor") != "Google":
                self._send(403, "Missing Metadata-Flavor:Google header.")
                return
            flavor = {"Metadata-Flavor": "Google"}
            answers = {
                "project/project-id": config.gcp_project,
                "instance/id": config.gcp_instance_id,
                "instance/zone": f"projects/000000000000/zones/{config.gcp_zone}",
                "instance/name": f"local-{config.gcp_instance_id}",
            }
            if path in answers:
                self._send(200, answers[path], flavor)
            elif path == "instance/service-accounts/default/token":
                token = {"access_token": GCP_TOKEN, "expires_in": 3599, "token_type": "Bearer"}
                self._send(200, json.dumps(token), flavor | {"Content-Type": "application/json"})
            elif path == "instance/preempted":
                if query.get("wait_for_change") == ["true"]:
                    state.events["preempt"].wait(_HANG_S)
                value = "TRUE" if state.events["preempt"].is_set() else "FALSE"
                self._send(200, value, flavor | {"ETag": "etag-" + value.lower()})
            else:
                self._send(404, "", flavor)

        def _secret(self, path: str) -> None:
            match = re.fullmatch(r"/v1/projects/([^/]+)/secrets/([^/]+)/versions/latest:access", path)
            if not match:
                self._send(404, "")
                return
            if not self._bearer_ok():
                return
            project, name = match.groups()
            if project != config.gcp_project or name not in config.secrets:
                self._json(404, {"error": {"code": 404, "status": "NOT_FOUND", "message": f"Secret {name} not found"}})
                return
            state.record("secret_reads", name)
            data = base64.b64encode(config.secrets[name].encode()).decode()
            self._json(200, {"name": f"projects/{project}/secrets/{name}/versions/1", "payload": {"data": data}})

        def _storage(self, path: str, query: dict[str, list[str]]) -> None:
            if not self._bearer_ok():
                return
            match = re.fullmatch(r"/storage/v1/b/([^/]+)/o(?:/(.+))?", path)
            if not match or match.group(1) not in config.buckets:
                self._json(404, {"error": {"code": 404, "message": "bucket not found"}})
                return
            root = Path(config.buckets[match.group(1)])
            if match.group(2) is None:
                prefix = query.get("prefix", [""])[0]
                items = [
                    {"name": name, "size": str((root / name).stat().st_size)}
                    for name in sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
                    if name.startswith(prefix)
                ]
                self._json(200, {"kind": "storage#objects", "items": items})
                return
            name = urllib.parse.unquote(match.group(2))
            target = (root / name).resolve()
            if query.get("alt") != ["media"] or root.resolve() not in target.parents or not target.is_file():
                self._json(404, {"error": {"code": 404, "message": "object not found"}})
                return
            state.record("objects_read", 1)
            self._send(200, target.read_bytes(), {"Content-Type": "application/octet-stream"})

    return Handler


@dataclass
class CloudControl:
    """The test's handle on one stand-in server."""

    url: str

    @property
    def host(self) -> str:
        """host:port, the form GCE_METADATA_HOST takes."""
        return self.url.removeprefix("http://")

    def trigger(self, name: str) -> None:
        httpx.post(f"{self.url}/__test__/{name}", timeout=10, trust_env=False).raise_for_status()

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(f"{self.url}/__test__/stats", timeout=10, trust_env=False).json()
        return stats


@contextmanager
def cloud_stand_in(config: CloudConfig | None = None) -> Iterator[CloudControl]:
    """One stand-in server for the life of the context."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "devkit.cloudmeta", str(port)], cwd=_REPO, stdin=subprocess.PIPE)
    assert process.stdin is not None
    process.stdin.write((config or CloudConfig()).to_json().encode())
    process.stdin.close()
    control = CloudControl(f"http://127.0.0.1:{port}")
    try:
        wait_until(lambda: http_status(control.url + "/__test__/stats") == 200, 30, "the cloud stand-in")
        yield control
    finally:
        stop_process(process)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a watcher stopped mid-wait, curl's --max-time) is no error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def main() -> None:
    config = CloudConfig(**json.loads(sys.stdin.read()))
    server = _Server(("127.0.0.1", int(sys.argv[1])), _handler(_State(config)))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
