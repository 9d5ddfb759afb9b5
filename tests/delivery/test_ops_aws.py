"""preflight, fleet_status and cost against moto_server holding the fleet's AWS resources."""

from __future__ import annotations

import io
import json

import pytest

from infra.config import Fleet
from scripts.ops import cost, fleet_status, preflight
from scripts.ops._common import AwsClientFactory
from tests.delivery.conftest import Seeded

pytestmark = pytest.mark.moto


def test_fleet_status_reports_the_fleet(
    fleet: Fleet, aws: AwsClientFactory, seeded: Seeded, gcp_clients: object
) -> None:
    out = io.StringIO()
    rc = fleet_status.main(["--json"], aws=aws, gcp=gcp_clients, out=out)  # type: ignore[arg-type]
    statuses = {s["stack"]: s for s in json.loads(out.getvalue())}
    assert set(statuses) == {r.stack_name for r in fleet.regions}
    for region in fleet.regions_of(fleet.canary.cloud):
        s = statuses[region.stack_name]
        assert [g["name"] for g in s["groups"]] == [seeded.asgs[region.stack_name]]  # not other-fleet's
        group = s["groups"][0]
        assert (group["desired"], group["min_size"], group["max_size"]) == (
            region.min_replicas,
            region.min_replicas,
            region.max_replicas,
        )
        assert group["in_service"] == region.min_replicas
        assert group["on_demand"] + group["spot"] == group["in_service"]
        assert s["targets"] == region.min_replicas
        assert s["healthy_targets"] == region.min_replicas
    for s in statuses.values():
        assert s["global_health"] == "healthy"  # moto reports every Route 53 checker as Success
    assert rc == 0


def test_fleet_status_table(fleet: Fleet, aws: AwsClientFactory, seeded: Seeded, gcp_clients: object) -> None:
    out = io.StringIO()
    assert fleet_status.main([], aws=aws, gcp=gcp_clients, out=out) == 0  # type: ignore[arg-type]
    text = out.getvalue()
    assert "us-west-2.api.example.com: healthy" in text
    assert seeded.asgs["aws-eu-central-1"] in text


def test_preflight_aws_region(fleet: Fleet, aws: AwsClientFactory, seeded: Seeded) -> None:
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
