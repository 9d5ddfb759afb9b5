"""The cost arithmetic, by hand-computed examples, and the report on the default fleet."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from infra.config import Fleet, RegionSpec
from scripts.ops import cost
from scripts.ops.pricing import HOURS_PER_MONTH, PriceTable, Rates, median_latest_spot, parse_price_list
from tests.delivery.conftest import RECORDINGS, ROOT

RATES = Rates(on_demand=1.0, spot=0.4, reserved_1y=0.6, source="test")


def _region(**kw: object) -> RegionSpec:
    base: dict[str, object] = {
        "cloud": "aws",
        "region": "us-west-2",
        "gpu_type": "a10g",
        "min_replicas": 1,
        "max_replicas": 5,
    }
    return RegionSpec.model_validate(base | kw)


@pytest.mark.parametrize(
    ("kw", "replicas", "expected"),
    [
        ({"on_demand_base": 2}, 5, cost.Mix(0, 2, 3)),
        ({"on_demand_base": 2}, 1, cost.Mix(0, 1, 0)),  # fewer replicas than the base: no spot
        ({"on_demand_base": 0}, 4, cost.Mix(0, 0, 4)),
        ({"on_demand_base": 2, "capacity_reservations": ("cr-0123456789abcdef0",)}, 5, cost.Mix(2, 0, 3)),
        ({"on_demand_base": 2}, 0, cost.Mix(0, 0, 0)),
    ],
)
def test_capacity_mix(kw: dict[str, object], replicas: int, expected: cost.Mix) -> None:
    assert cost.capacity_mix(_region(**kw), replicas) == expected


def test_monthly_cost_by_hand() -> None:
    mix = cost.Mix(reserved=1, on_demand=2, spot=3)
    # 1 * 0.6 + 2 * 1.0 + 3 * 0.4 = 3.8 $/h
    assert cost.monthly_cost(mix, RATES) == pytest.approx(3.8 * 730)
    assert cost.monthly_all_on_demand(6, RATES) == pytest.approx(6 * 730)
    assert HOURS_PER_MONTH == 730


def test_default_fleet_totals_by_hand(fleet: Fleet) -> None:
    table = PriceTable()
    result = cost.fleet_cost(fleet, table)
    # regions.yaml: us-west-2 a10g 1..3 base 1; eu-central-1 t4 1..2 base 1; asia-southeast1 l4 2..4 base 1
    g5 = table.rates("aws", "us-west-2", "g5.xlarge")
    g4 = table.rates("aws", "eu-central-1", "g4dn.xlarge")
    g2 = table.rates("gcp", "asia-southeast1", "g2-standard-8")
    at_min = (g5.on_demand + g4.on_demand + g2.on_demand + g2.spot) * 730
    at_max = (g5.on_demand + 2 * g5.spot + g4.on_demand + g4.spot + g2.on_demand + 3 * g2.spot) * 730
    all_od_max = (3 * g5.on_demand + 2 * g4.on_demand + 4 * g2.on_demand) * 730
    assert result.total("at_min").monthly == pytest.approx(at_min)
    assert result.total("at_max").monthly == pytest.approx(at_max)
    assert result.total("at_max").monthly_all_on_demand == pytest.approx(all_od_max)
    assert result.total("at_max").saving == pytest.approx(all_od_max - at_max)
    assert result.total("at_max").mix == cost.Mix(0, 3, 6)


def test_cost_offline_prints_the_saving(fleet: Fleet) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.ops.cost", "--offline"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    expected = cost.fleet_cost(fleet, PriceTable()).total("at_max")
    assert f"${expected.saving:,.0f}/month at max replicas" in proc.stdout
    assert "offline: prices from prices-2026-11-01.json" in proc.stderr


def test_price_table_miss_is_one_line(tmp_path: object) -> None:
    fleet_file = ROOT / "regions.yaml"
    text = fleet_file.read_text(encoding="utf-8").replace("region: eu-central-1,   ", "region: ap-south-1,     ")
    out = io.StringIO()
    path = f"{tmp_path}/fleet.yaml"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    assert cost.main(["--offline", "--file", path], out=out) == 2


def test_aws_price_list_parsing() -> None:
    recorded = (RECORDINGS / "aws" / "pricing_get_products_g5.xlarge_us-west-2.json").read_text(encoding="utf-8")
    import json

    on_demand, reserved = parse_price_list(json.loads(recorded)["PriceList"])
    assert on_demand == pytest.approx(1.006)
    assert reserved == pytest.approx(0.634)


def test_spot_median_uses_latest_per_zone() -> None:
    import datetime as dt

    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    history = [
        {"AvailabilityZone": "a", "Timestamp": t0, "SpotPrice": "0.90"},
        {"AvailabilityZone": "a", "Timestamp": t0 + dt.timedelta(hours=1), "SpotPrice": "0.40"},
        {"AvailabilityZone": "b", "Timestamp": t0, "SpotPrice": "0.50"},
        {"AvailabilityZone": "c", "Timestamp": t0, "SpotPrice": "0.30"},
    ]
    assert median_latest_spot(history) == pytest.approx(0.40)
