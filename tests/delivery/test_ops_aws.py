"""preflight, fleet_status and cost against moto_server holding the fleet's AWS stacks, deployed
there with terraform by the AWS tier's offline-deploy fixture (tests/plugins/moto_fleet.py)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from infra.catalog import Cloud
from infra.config import Fleet
from scripts.ops import cost, fleet_status, preflight
from scripts.ops._common import AwsClientFactory
from tests.plugins.moto_fleet import MotoDeployment

pytestmark = [pytest.mark.moto, pytest.mark.terraform, pytest.mark.slow]

FOREIGN = "other-fleet"


@pytest.fixture
def foreign_resources(moto_deployment: MotoDeployment, fleet: Fleet) -> Iterator[None]:
    """Another fleet's ASG and health check in the same account and region, tagged with the same
    Stack: the tools must count only resources tagged Project=<fleet.project>. Removed after
    the test, so the shared deployment is left as terraform made it."""
    region = fleet.canary
    autoscaling = moto_deployment.client("autoscaling", region.region)
    ours = moto_deployment.outputs[region.stack_name]["asg_name"]
    (asg,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[ours])["AutoScalingGroups"]
    template = asg["MixedInstancesPolicy"]["LaunchTemplate"]["LaunchTemplateSpecification"]
    name = f"{FOREIGN}-{region.stack_name}-gpu"
    tags = {"Project": FOREIGN, "Stack": region.stack_name, "ManagedBy": "cdktf"}
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        MinSize=1,
        MaxSize=1,
        DesiredCapacity=1,
        VPCZoneIdentifier=asg["VPCZoneIdentifier"],
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "$Latest"},
        TargetGroupARNs=[],
        Tags=[
            {"Key": k, "Value": v, "PropagateAtLaunch": True, "ResourceId": name, "ResourceType": "auto-scaling-group"}
            for k, v in tags.items()
        ],
    )
    route53 = moto_deployment.client("route53")
    check = route53.create_health_check(
        CallerReference=f"{FOREIGN}-{region.region}",
        HealthCheckConfig={
            "Type": "HTTPS",
            "FullyQualifiedDomainName": f"eu-west-9.{fleet.global_.domain}",
            "Port": 443,
            "ResourcePath": "/health/ready",
        },
    )["HealthCheck"]["Id"]
    route53.change_tags_for_resource(
        ResourceType="healthcheck", ResourceId=check, AddTags=[{"Key": k, "Value": v} for k, v in tags.items()]
    )
    try:
        yield
    finally:
        autoscaling.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
        route53.delete_health_check(HealthCheckId=check)


def _status(aws: AwsClientFactory, gcp_clients: object) -> tuple[int, dict[str, dict[str, Any]]]:
    out = io.StringIO()
    rc = fleet_status.main(["--json"], aws=aws, gcp=gcp_clients, out=out)  # type: ignore[arg-type]
    return rc, {s["stack"]: s for s in json.loads(out.getvalue())}


@pytest.mark.usefixtures("foreign_resources")
def test_fleet_status_reports_the_deployed_fleet(
    fleet: Fleet, aws: AwsClientFactory, moto_deployment: MotoDeployment, gcp_clients: object
) -> None:
    rc, statuses = _status(aws, gcp_clients)
    assert set(statuses) == {r.stack_name for r in fleet.regions}
    for region in fleet.regions_of(Cloud.AWS):
        s = statuses[region.stack_name]
        (group,) = s["groups"]  # the fleet's ASG, not other-fleet's
        assert group["name"] == moto_deployment.outputs[region.stack_name]["asg_name"]
        assert (group["desired"], group["min_size"], group["max_size"]) == (
            region.min_replicas,
            region.min_replicas,
            region.max_replicas,
        )
        # The mixed instances policy the stack built: on-demand base, spot strategy, the
        # catalogue's instance types for the region's GPU.
        assert group["on_demand_base"] == region.on_demand_base
        assert group["spot_strategy"] == "price-capacity-optimized"
        assert group["instance_types"] == [t.name for t in region.offering.instance_types]
        assert len(group["instance_types"]) >= 2
        assert group["in_service"] == region.min_replicas
        assert group["on_demand"] + group["spot"] == group["in_service"]
        # The ASG registered its instances with the target group terraform created.
        assert s["targets"] == region.min_replicas
        assert s["healthy_targets"] == region.min_replicas
    # One Route 53 health check per region behind the global name (the GCP region's too);
    # moto reports every checker as Success. other-fleet's check is not listed.
    for s in statuses.values():
        assert s["global_health"] == "healthy", s
    assert rc == 0


def test_fleet_status_table(
    fleet: Fleet, aws: AwsClientFactory, moto_deployment: MotoDeployment, gcp_clients: object
) -> None:
    out = io.StringIO()
    assert fleet_status.main([], aws=aws, gcp=gcp_clients, out=out) == 0  # type: ignore[arg-type]
    text = out.getvalue()
    for region in fleet.regions:
        assert f"{region.region}.api.example.com: healthy" in text
    row = next(line for line in text.splitlines() if line.startswith("aws-eu-central-1"))
    assert moto_deployment.outputs["aws-eu-central-1"]["asg_name"] in row
    assert "g4dn.xlarge" in row
    assert row.rstrip().endswith("ok")


def test_fleet_status_discovers_by_tags(
    fleet: Fleet, aws: AwsClientFactory, moto_deployment: MotoDeployment, gcp_clients: object
) -> None:
    """Another project name finds nothing: the tool discovers by tags, not by names."""
    other = fleet.model_copy(update={"project": FOREIGN})
    statuses = fleet_status.collect(other, aws=aws, gcp=gcp_clients, progress=_quiet(len(fleet.regions) + 1))  # type: ignore[arg-type]
    aws_statuses = [s for s, r in zip(statuses, fleet.regions, strict=True) if r.cloud == Cloud.AWS]
    assert all(s.groups == [] and not s.ok for s in aws_statuses)
    assert all(s.global_health == "no check" for s in statuses)


def _quiet(total: int) -> Any:
    from scripts.ops._common import Progress

    return Progress(total=total, stream=io.StringIO(), enabled=False)


def test_preflight_aws_region(fleet: Fleet, aws: AwsClientFactory) -> None:
    import datetime as dt

    check = preflight.check_aws(aws, fleet.canary, now=dt.datetime.now(dt.UTC))
    assert check.instance_type == "g5.xlarge"
    assert len(check.zones) >= 2
    assert all(z.startswith("us-west-2") for z in check.zones)
    assert check.on_demand is not None
    assert check.on_demand.need == fleet.canary.on_demand_base * 4
    assert check.spot is not None
    assert check.spot.need == fleet.canary.spot_max * 4
    # moto has no EC2 quotas in Service Quotas: the tool says so instead of guessing.
    assert check.on_demand.limit is None
    assert check.fits is None
    assert any("quota unreadable" in n or "not found" in n for n in check.notes)
    assert check.spot_price.startswith("$")


def test_cost_online_falls_back_to_the_table_and_says_so(
    aws: AwsClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    assert cost.main([], aws=aws, out=out) == 0
    assert "saving against all on-demand" in out.getvalue()
    err = capsys.readouterr().err
    assert "pricing API unavailable for g5.xlarge in us-west-2" in err  # moto has no Price List API
    assert "price table 2026-11-01" in err


def test_bad_fleet_file_is_one_line(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    bad = Path(str(tmp_path)) / "bad.yaml"
    bad.write_text("global: {domain: api.example.com, hosted_zone: example.com}\nregions: []\n", encoding="utf-8")
    assert fleet_status.main(["--file", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("fleet_status: error:")
    assert "regions" in err[0]
