"""`python -m scripts.ops.preflight`: does the fleet file fit the accounts, region by region?

AWS: the EC2 vCPU quotas of the GPU family (on-demand and spot, Service Quotas), the
availability zones offering the instance types (DescribeInstanceTypeOfferings) and the
recent spot prices (DescribeSpotPriceHistory). GCP: the region's GPU quotas (regions.get,
standard and preemptible), the zones offering the accelerator (acceleratorTypes
aggregatedList); spot price from the price table. A region fits when the quotas cover
`on_demand_base` (on-demand) and `max - base` (spot) replicas and the primary type is
offered in at least two zones (AWS) / one zone (GCP). Exit 1 when a region does not fit.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from infra.cliutil import EXIT_OK, EXIT_PROBLEM, ArgParser, add_fleet_argument, table
from infra.config import Fleet, RegionSpec
from scripts.ops._common import (
    AwsClientFactory,
    OpsError,
    Progress,
    boto3_factory,
    cloud_error_message,
    emit,
    load_fleet_or_raise,
    run_main,
)
from scripts.ops._gcp import GcpClients, gpu_quota_metric, last_segment
from scripts.ops.pricing import PriceTable, median_latest_spot

# EC2 vCPU quotas by instance family letter: (on-demand, spot) quota codes.
AWS_QUOTA_CODES: dict[str, tuple[str, str]] = {
    "g": ("L-DB2E81BA", "L-3819A6DF"),  # Running On-Demand G and VT instances / All G and VT Spot Instance Requests
    "p": ("L-417A185B", "L-7212CCBC"),  # Running On-Demand P instances / All P Spot Instance Requests
}


@dataclass
class Quota:
    name: str
    need: int
    limit: float | None  # None: could not be read
    unit: str

    @property
    def fits(self) -> bool | None:
        return None if self.limit is None else self.need <= self.limit

    def __str__(self) -> str:
        limit = "?" if self.limit is None else f"{self.limit:g}"
        return f"{self.need}/{limit} {self.unit}"


@dataclass
class RegionCheck:
    stack: str
    instance_type: str
    zones: list[str] = field(default_factory=list)
    min_zones: int = 2
    on_demand: Quota | None = None
    spot: Quota | None = None
    spot_price: str = "-"
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool | None:
        verdicts: list[bool | None] = [len(self.zones) >= self.min_zones]
        verdicts += [q.fits for q in (self.on_demand, self.spot) if q is not None]
        if False in verdicts:
            return False
        return None if None in verdicts else True

    @property
    def verdict(self) -> str:
        return {True: "fits", False: "DOES NOT FIT", None: "unknown"}[self.fits]


def _aws_quota(quotas: Any, code: str) -> tuple[float | None, str | None]:
    for call in ("get_service_quota", "get_aws_default_service_quota"):
        try:
            return float(getattr(quotas, call)(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"]), None
        except Exception as exc:
            reason = cloud_error_message(exc)
            if reason is None:
                raise
            if "NoSuchResource" not in reason:
                return None, reason
    return None, f"service quota {code} not found"


def check_aws(aws: AwsClientFactory, region: RegionSpec, *, now: dt.datetime) -> RegionCheck:
    types = [t.name for t in region.offering.instance_types]
    primary = region.offering.instance_types[0]
    check = RegionCheck(region.stack_name, primary.name)
    ec2 = aws("ec2", region.region)
    zones_by_type: dict[str, set[str]] = {}
    for page in ec2.get_paginator("describe_instance_type_offerings").paginate(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": types}]
    ):
        for offer in page["InstanceTypeOfferings"]:
            zones_by_type.setdefault(offer["InstanceType"], set()).add(offer["Location"])
    check.zones = sorted(zones_by_type.get(primary.name, set()))
    others = [t for t in types[1:] if zones_by_type.get(t)]
    check.notes.append(f"{len(others)} fallback type(s) offered")
    family = primary.name[0]
    od_code, spot_code = AWS_QUOTA_CODES.get(family, AWS_QUOTA_CODES["g"])
    quotas = aws("service-quotas", region.region)
    for attr, code, replicas in (("on_demand", od_code, region.on_demand_base), ("spot", spot_code, region.spot_max)):
        limit, reason = _aws_quota(quotas, code)
        setattr(check, attr, Quota(code, replicas * primary.vcpus, limit, "vCPU"))
        if reason:
            check.notes.append(f"{attr} quota unreadable: {reason}")
    history = ec2.describe_spot_price_history(
        InstanceTypes=[primary.name],
        ProductDescriptions=["Linux/UNIX"],
        StartTime=now - dt.timedelta(hours=6),
        EndTime=now,
    )["SpotPriceHistory"]
    if history:
        check.spot_price = f"${median_latest_spot(history):.3f}/h"
    else:
        check.notes.append("no recent spot price")
    return check


def check_gcp(gcp: GcpClients, project: str, region: RegionSpec, prices: PriceTable) -> RegionCheck:
    offering = region.offering
    machine = offering.instance_types[0]
    accelerator = offering.accelerator or ""
    check = RegionCheck(region.stack_name, f"{machine.name}+{accelerator}", min_zones=1)
    info = gcp.regions.get(project=project, region=region.region)
    limits = {q.metric: (q.limit, q.usage) for q in info.quotas}
    for attr, preemptible, replicas in (("on_demand", False, region.on_demand_base), ("spot", True, region.spot_max)):
        metric = gpu_quota_metric(accelerator, preemptible=preemptible)
        limit = limits.get(metric)
        setattr(check, attr, Quota(metric, replicas * machine.gpus, limit[0] if limit else None, "GPU"))
        if limit is None:
            check.notes.append(f"quota {metric} not listed for {region.region}")
        elif limit[1]:
            check.notes.append(f"{metric} in use: {limit[1]:g}")
    from google.cloud import compute_v1

    zones: set[str] = set()
    request = compute_v1.AggregatedListAcceleratorTypesRequest(project=project, filter=f'name = "{accelerator}"')
    for scope, scoped in gcp.accelerator_types.aggregated_list(request=request):
        zone = last_segment(scope)
        if zone.startswith(region.region + "-") and any(a.name == accelerator for a in scoped.accelerator_types):
            zones.add(zone)
    check.zones = sorted(zones)
    try:
        check.spot_price = f"${prices.rates('gcp', region.region, machine.name).spot:.3f}/h ({prices.label})"
    except OpsError as exc:
        check.notes.append(str(exc))
    return check


def collect(
    fleet: Fleet, *, aws: AwsClientFactory, gcp: GcpClients | None, progress: Progress, now: dt.datetime | None = None
) -> list[RegionCheck]:
    now = now or dt.datetime.now(dt.UTC)
    prices = PriceTable()
    out = []
    for region in fleet.regions:
        with progress.step(f"{region.stack_name}: quotas, zone offerings, spot prices"):
            if region.cloud.value == "aws":
                out.append(check_aws(aws, region, now=now))
            else:
                if gcp is None:
                    gcp = GcpClients.create()
                assert fleet.gcp.project is not None  # the fleet model requires it for gcp regions
                out.append(check_gcp(gcp, fleet.gcp.project, region, prices))
    return out


def render(checks: list[RegionCheck]) -> str:
    header = ["stack", "type", "zones offering", "on-demand need/limit", "spot need/limit", "spot price", "verdict"]
    rows = [
        [
            c.stack,
            c.instance_type,
            f"{len(c.zones)} ({', '.join(z.rsplit('-', 1)[-1] for z in c.zones)})" if c.zones else "0",
            str(c.on_demand or "-"),
            str(c.spot or "-"),
            c.spot_price,
            c.verdict,
        ]
        for c in checks
    ]
    notes = [f"  {c.stack}: {n}" for c in checks for n in c.notes]
    return table(header, rows) + ("\n\nnotes:\n" + "\n".join(notes) if notes else "")


def main(
    argv: Sequence[str] | None = None,
    *,
    aws: AwsClientFactory | None = None,
    gcp: GcpClients | None = None,
    out: TextIO | None = None,
) -> int:
    parser = ArgParser(prog="python -m scripts.ops.preflight", description="does the fleet file fit, region by region")
    add_fleet_argument(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    stream = out or sys.stdout

    def body() -> int:
        fleet = load_fleet_or_raise(args.file)
        progress = Progress(total=len(fleet.regions), enabled=not args.json)
        checks = collect(fleet, aws=aws or boto3_factory(), gcp=gcp, progress=progress)
        emit(
            checks,
            as_json=args.json,
            verdict="fits",
            judge=lambda c: c.fits,
            text=lambda: render(checks),
            stream=stream,
        )
        return EXIT_PROBLEM if any(c.fits is False for c in checks) else EXIT_OK

    return run_main("preflight", body)


if __name__ == "__main__":
    sys.exit(main())
