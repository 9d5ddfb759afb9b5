"""Session fixtures for the delivery tier: moto_server with the fleet's AWS resources, and a
local server replaying recorded Compute API responses to the real google-cloud-compute client."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from infra.catalog import Cloud
from infra.config import Fleet, load_fleet
from scripts.ops._common import AwsClientFactory

ROOT = Path(__file__).resolve().parents[2]
RECORDINGS = Path(__file__).resolve().parent / "recordings"
MOTO_SERVER = ROOT / ".venv" / "bin" / "moto_server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - 127.0.0.1 only
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} not up after {timeout_s}s") from None
            time.sleep(0.2)


@pytest.fixture(scope="session")
def fleet() -> Fleet:
    return load_fleet(ROOT / "regions.yaml")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_http(endpoint + "/moto-api/", timeout_s=60)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def aws(moto_endpoint: str) -> AwsClientFactory:
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    clients: dict[tuple[str, str], Any] = {}

    def make(service: str, region: str) -> Any:
        key = (service, region)
        if key not in clients:
            clients[key] = session.client(service, region_name=region, endpoint_url=moto_endpoint)
        return clients[key]

    return make


@dataclass
class Seeded:
    asgs: dict[str, str] = field(default_factory=dict)  # stack -> ASG name
    target_groups: dict[str, str] = field(default_factory=dict)  # stack -> TG ARN
    health_checks: dict[str, str] = field(default_factory=dict)  # region -> health check id


def _tags(project: str, stack: str) -> list[dict[str, str]]:
    return [
        {"Key": "Project", "Value": project},
        {"Key": "Stack", "Value": stack},
        {"Key": "ManagedBy", "Value": "cdktf"},
    ]


def seed_fleet_like_stacks(aws: AwsClientFactory, fleet: Fleet, *, project: str | None = None) -> Seeded:
    """Create in moto what the AWS region and global stacks create, the way they tag it.

    Stand-in for the offline `terraform apply` fixture of the AWS stacks: swap this for
    that fixture once those stacks are on main (the scripts discover by tags either way).
    """
    project = project or fleet.project
    seeded = Seeded()
    for region in fleet.regions_of(Cloud.AWS):
        stack = region.stack_name
        ec2, elbv2, autoscaling = (
            aws("ec2", region.region),
            aws("elbv2", region.region),
            aws("autoscaling", region.region),
        )
        vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.40.{i}.0/24", AvailabilityZone=f"{region.region}{z}")["Subnet"][
                "SubnetId"
            ]
            for i, z in enumerate("ab")
        ]
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        lt = ec2.create_launch_template(
            LaunchTemplateName=f"{project}-{stack}",
            LaunchTemplateData={"ImageId": image, "InstanceType": region.offering.instance_types[0].name},
        )["LaunchTemplate"]["LaunchTemplateId"]
        tg = elbv2.create_target_group(
            Name=f"{project}-{region.region}"[:32],
            Protocol="HTTP",
            Port=fleet.service.port,
            VpcId=vpc,
            HealthCheckPath="/health/ready",
            HealthCheckIntervalSeconds=10,
            HealthCheckTimeoutSeconds=5,
            HealthyThresholdCount=2,
            UnhealthyThresholdCount=3,
            Tags=_tags(project, stack),
        )["TargetGroups"][0]["TargetGroupArn"]
        name = f"{project}-{stack}-gpu"
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            MinSize=region.min_replicas,
            MaxSize=region.max_replicas,
            DesiredCapacity=region.min_replicas,
            VPCZoneIdentifier=",".join(subnets),
            TargetGroupARNs=[tg],
            HealthCheckType="ELB",
            HealthCheckGracePeriod=fleet.service.cold_start_s,
            CapacityRebalance=True,
            MixedInstancesPolicy={
                "LaunchTemplate": {
                    "LaunchTemplateSpecification": {"LaunchTemplateId": lt, "Version": "$Latest"},
                    "Overrides": [{"InstanceType": t.name} for t in region.offering.instance_types[:2]],
                },
                "InstancesDistribution": {
                    "OnDemandBaseCapacity": region.on_demand_base,
                    "OnDemandPercentageAboveBaseCapacity": 0,
                    "SpotAllocationStrategy": "price-capacity-optimized",
                },
            },
            Tags=[
                {**t, "PropagateAtLaunch": True, "ResourceId": name, "ResourceType": "auto-scaling-group"}
                for t in _tags(project, stack)
            ],
        )
        seeded.asgs[stack] = name
        seeded.target_groups[stack] = tg
    route53 = aws("route53", "us-east-1")
    zone_name = fleet.global_.hosted_zone + "."
    zones = [z for z in route53.list_hosted_zones()["HostedZones"] if z["Name"] == zone_name]
    zone = (
        zones[0]["Id"]
        if zones
        else route53.create_hosted_zone(Name=zone_name, CallerReference=f"{project}-zone")["HostedZone"]["Id"]
    )
    for region in fleet.regions:
        fqdn = f"{region.region}.{fleet.global_.domain}"
        check = route53.create_health_check(
            CallerReference=f"{project}-{region.region}",
            HealthCheckConfig={
                "Type": "HTTPS",
                "FullyQualifiedDomainName": fqdn,
                "Port": 443,
                "ResourcePath": "/health/ready",
                "RequestInterval": fleet.global_.health_check_interval_s,
                "FailureThreshold": fleet.global_.health_check_failure_threshold,
            },
        )["HealthCheck"]["Id"]
        route53.change_tags_for_resource(ResourceType="healthcheck", ResourceId=check, AddTags=_tags(project, "global"))
        route53.change_resource_record_sets(
            HostedZoneId=zone,
            ChangeBatch={
                "Changes": [
                    {
                        "Action": "UPSERT",
                        "ResourceRecordSet": {
                            "Name": fleet.global_.domain,
                            "Type": "CNAME",
                            "TTL": 60,
                            "SetIdentifier": region.region,
                            "Region": region.info.nearest_aws_region if region.cloud.value == "gcp" else region.region,
                            "HealthCheckId": check,
                            "ResourceRecords": [{"Value": fqdn}],
                        },
                    }
                ]
            },
        )
        seeded.health_checks[region.region] = check
    return seeded


@pytest.fixture(scope="session")
def seeded(aws: AwsClientFactory, fleet: Fleet) -> Seeded:
    # Another fleet's resources in the same account: the tools must not count them.
    seed_fleet_like_stacks(aws, fleet, project="other-fleet")
    return seed_fleet_like_stacks(aws, fleet)


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
