"""`python -m scripts.ops.fleet_status`: what the fleet is running right now.

Per region: the instance groups found by the fleet's tags / labels (AWS: ASG tags
Project + Stack; GCP: instance template labels project + stack), their desired / min /
max sizes, instances in service split on-demand / spot, healthy load balancer targets
(AWS target groups, GCP backend service health) and the Route 53 health check of the
region behind the global name. Exit 1 when a region has no healthy capacity.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from infra.cliutil import EXIT_OK, EXIT_PROBLEM, ArgParser, add_fleet_argument, table
from infra.config import Fleet, RegionSpec
from infra.naming import endpoint_name
from infra.tagging import PROJECT_LABEL, PROJECT_TAG, STACK_LABEL, STACK_TAG
from scripts.ops._common import AwsClientFactory, OpsError, Progress, boto3_factory, emit, load_fleet_or_raise, run_main
from scripts.ops._gcp import GcpClients, template_labels


@dataclass
class Group:
    name: str
    desired: int
    min_size: int
    max_size: int
    in_service: int
    on_demand: int
    spot: int
    # AWS mixed instances policy: replicas never spot, how spot is placed, the types it may use.
    on_demand_base: int | None = None
    spot_strategy: str | None = None
    instance_types: list[str] = field(default_factory=list)


@dataclass
class RegionStatus:
    stack: str
    groups: list[Group] = field(default_factory=list)
    healthy_targets: int = 0
    targets: int = 0
    global_health: str = "no check"

    @property
    def ok(self) -> bool:
        return bool(self.groups) and self.healthy_targets > 0 and self.global_health in ("healthy", "no check")


def _paginate(client: Any, operation: str, key: str, **kwargs: Any) -> list[Any]:
    items: list[Any] = []
    for page in client.get_paginator(operation).paginate(**kwargs):
        items.extend(page[key])
    return items


def aws_region_status(aws: AwsClientFactory, fleet: Fleet, region: RegionSpec) -> RegionStatus:
    status = RegionStatus(region.stack_name)
    autoscaling = aws("autoscaling", region.region)
    ec2 = aws("ec2", region.region)
    elbv2 = aws("elbv2", region.region)
    asgs = _paginate(
        autoscaling,
        "describe_auto_scaling_groups",
        "AutoScalingGroups",
        Filters=[
            {"Name": f"tag:{PROJECT_TAG}", "Values": [fleet.project]},
            {"Name": f"tag:{STACK_TAG}", "Values": [region.stack_name]},
        ],
    )
    target_groups: set[str] = set()
    for asg in asgs:
        in_service = [i for i in asg.get("Instances", []) if i["LifecycleState"] == "InService"]
        ids = [i["InstanceId"] for i in in_service]
        spot = 0
        if ids:
            reservations = _paginate(ec2, "describe_instances", "Reservations", InstanceIds=ids)
            spot = sum(1 for r in reservations for inst in r["Instances"] if inst.get("InstanceLifecycle") == "spot")
        mixed = asg.get("MixedInstancesPolicy", {})
        distribution = mixed.get("InstancesDistribution", {})
        overrides = mixed.get("LaunchTemplate", {}).get("Overrides", [])
        status.groups.append(
            Group(
                name=asg["AutoScalingGroupName"],
                desired=asg["DesiredCapacity"],
                min_size=asg["MinSize"],
                max_size=asg["MaxSize"],
                in_service=len(ids),
                on_demand=len(ids) - spot,
                spot=spot,
                on_demand_base=distribution.get("OnDemandBaseCapacity"),
                spot_strategy=distribution.get("SpotAllocationStrategy"),
                instance_types=[o["InstanceType"] for o in overrides if "InstanceType" in o],
            )
        )
        target_groups.update(asg.get("TargetGroupARNs", []))
    for arn in sorted(target_groups):
        health = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        status.targets += len(health)
        status.healthy_targets += sum(1 for h in health if h["TargetHealth"]["State"] == "healthy")
    return status


def gcp_region_status(gcp: GcpClients, fleet: Fleet, region: RegionSpec) -> RegionStatus:
    from google.cloud import compute_v1

    if fleet.gcp.project is None:  # the fleet model requires it for gcp regions
        raise OpsError("gcp.project: required for gcp regions")
    project = fleet.gcp.project
    status = RegionStatus(region.stack_name)
    groups: dict[str, str] = {}  # instance group URL path -> MIG name
    for mig in gcp.region_instance_group_managers.list(project=project, region=region.region):
        labels = template_labels(gcp, mig.instance_template)
        if labels.get(PROJECT_LABEL) != fleet.project or labels.get(STACK_LABEL) != region.stack_name:
            continue
        actions = mig.current_actions
        running = actions.none
        spot = running if "spot" in mig.name or labels.get("capacity") == "spot" else 0
        status.groups.append(
            Group(
                name=mig.name,
                desired=mig.target_size,
                min_size=mig.target_size,
                max_size=mig.target_size,
                in_service=running,
                on_demand=running - spot,
                spot=spot,
            )
        )
        groups[_path(mig.instance_group)] = mig.name
    if not groups:
        return status
    for service in gcp.region_backend_services.list(project=project, region=region.region):
        for backend in service.backends:
            if _path(backend.group) not in groups:
                continue
            health = gcp.region_backend_services.get_health(
                project=project,
                region=region.region,
                backend_service=service.name,
                resource_group_reference_resource=compute_v1.ResourceGroupReference(group=backend.group),
            )
            status.targets += len(health.health_status)
            status.healthy_targets += sum(1 for h in health.health_status if h.health_state == "HEALTHY")
    return status


def _path(url: str) -> str:
    """projects/.../instanceGroups/name from a full or partial Compute API URL."""
    idx = url.find("projects/")
    return url[idx:] if idx >= 0 else url


def global_health(aws: AwsClientFactory, fleet: Fleet) -> dict[str, str]:
    """Route 53 health check verdict per region name (`<region>.<domain>`), by tags."""
    route53 = aws("route53", "us-east-1")
    checks = _paginate(route53, "list_health_checks", "HealthChecks")
    ours: dict[str, dict[str, Any]] = {}
    ids = [c["Id"] for c in checks]
    for start in range(0, len(ids), 10):
        batch = route53.list_tags_for_resources(ResourceType="healthcheck", ResourceIds=ids[start : start + 10])
        for tagset in batch["ResourceTagSets"]:
            tags = {t["Key"]: t["Value"] for t in tagset.get("Tags", [])}
            if tags.get(PROJECT_TAG) == fleet.project:
                check = next(c for c in checks if c["Id"] == tagset["ResourceId"])
                ours[tagset["ResourceId"]] = check
    suffix = "." + fleet.global_.domain
    verdicts: dict[str, str] = {}
    for check_id, check in ours.items():
        fqdn = check["HealthCheckConfig"].get("FullyQualifiedDomainName", "").rstrip(".")
        if not fqdn.endswith(suffix):
            continue
        name = fqdn.removesuffix(suffix)
        observations = route53.get_health_check_status(HealthCheckId=check_id)["HealthCheckObservations"]
        ok = sum(1 for o in observations if o["StatusReport"]["Status"].startswith("Success"))
        verdicts[name] = (
            "healthy" if observations and ok * 2 > len(observations) else f"unhealthy ({ok}/{len(observations)})"
        )
    return verdicts


def collect(fleet: Fleet, *, aws: AwsClientFactory, gcp: GcpClients | None, progress: Progress) -> list[RegionStatus]:
    out: list[RegionStatus] = []
    for region in fleet.regions:
        with progress.step(f"{region.stack_name}: instance groups and targets"):
            if region.cloud.value == "aws":
                out.append(aws_region_status(aws, fleet, region))
            else:
                if gcp is None:
                    gcp = GcpClients.create()
                out.append(gcp_region_status(gcp, fleet, region))
    with progress.step("global: Route 53 health checks"):
        verdicts = global_health(aws, fleet)
    for status, region in zip(out, fleet.regions, strict=True):
        status.global_health = verdicts.get(region.region, "no check")
    return out


def render(fleet: Fleet, statuses: list[RegionStatus]) -> str:
    rows = []
    for status, region in zip(statuses, fleet.regions, strict=True):
        groups = status.groups or [Group("(none found)", 0, 0, 0, 0, 0, 0)]
        for i, g in enumerate(groups):
            first = i == 0
            rows.append(
                [
                    status.stack if first else "",
                    g.name,
                    f"{g.desired}",
                    f"{g.min_size}/{g.max_size}" if region.cloud.value == "aws" else "-",
                    f"{g.in_service}",
                    f"{g.on_demand}/{g.spot}",
                    "-" if g.on_demand_base is None else f"{g.on_demand_base}",
                    ",".join(g.instance_types) or "-",
                    f"{status.healthy_targets}/{status.targets}" if first else "",
                    f"{endpoint_name(fleet, region)}: {status.global_health}" if first else "",
                    ("ok" if status.ok else "DEGRADED") if first else "",
                ]
            )
    header = [
        "stack",
        "group",
        "desired",
        "min/max",
        "in service",
        "od/spot",
        "od base",
        "types",
        "healthy",
        "global health check",
        "state",
    ]
    return table(header, rows)


def main(
    argv: Sequence[str] | None = None,
    *,
    aws: AwsClientFactory | None = None,
    gcp: GcpClients | None = None,
    out: TextIO | None = None,
) -> int:
    parser = ArgParser(prog="python -m scripts.ops.fleet_status", description="instance groups, targets, global health")
    add_fleet_argument(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    stream = out or sys.stdout

    def body() -> int:
        fleet = load_fleet_or_raise(args.file)
        progress = Progress(total=len(fleet.regions) + 1, enabled=not args.json)
        statuses = collect(fleet, aws=aws or boto3_factory(), gcp=gcp, progress=progress)
        emit(
            statuses,
            as_json=args.json,
            verdict="ok",
            judge=lambda s: s.ok,
            text=lambda: render(fleet, statuses),
            stream=stream,
        )
        return EXIT_OK if all(s.ok for s in statuses) else EXIT_PROBLEM

    return run_main("fleet_status", body)


if __name__ == "__main__":
    sys.exit(main())
