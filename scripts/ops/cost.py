"""`python -m scripts.ops.cost`: monthly cost of the fleet at min and max replicas.

For every region the replicas split the way the stacks build them:
- the first `on_demand_base` replicas are never spot; when the region names capacity
  reservations they are *reserved* (priced at the 1-year commitment rate: a reservation is
  paired with a Reserved Instance / Savings Plan on AWS, a committed use discount on GCP),
  otherwise *on-demand*;
- every replica above the base is *spot*.
Each mix is shown next to the same number of replicas all on-demand, and the saving.
Prices: the cloud pricing APIs, or the dated price table with --offline (or when an API
fails, which the report says).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TextIO

from infra.cliutil import ArgParser, add_fleet_argument, table
from infra.config import Fleet, RegionSpec
from scripts.ops._common import AwsClientFactory, Progress, boto3_factory, load_fleet_or_raise, run_main
from scripts.ops.pricing import HOURS_PER_MONTH, AwsPricingApi, PriceSource, PriceTable, Rates


@dataclass(frozen=True)
class Mix:
    reserved: int
    on_demand: int
    spot: int

    @property
    def replicas(self) -> int:
        return self.reserved + self.on_demand + self.spot

    def __str__(self) -> str:
        return f"{self.reserved}/{self.on_demand}/{self.spot}"


def capacity_mix(region: RegionSpec, replicas: int) -> Mix:
    """How `replicas` instances of a region split into reserved / on-demand / spot."""
    if replicas < 0:
        raise ValueError("replicas must be >= 0")
    base = min(replicas, region.on_demand_base)
    reserved = base if region.capacity_reservations else 0
    return Mix(reserved=reserved, on_demand=base - reserved, spot=replicas - base)


def monthly_cost(mix: Mix, rates: Rates) -> float:
    hourly = mix.reserved * rates.reserved_1y + mix.on_demand * rates.on_demand + mix.spot * rates.spot
    return hourly * HOURS_PER_MONTH


def monthly_all_on_demand(replicas: int, rates: Rates) -> float:
    return replicas * rates.on_demand * HOURS_PER_MONTH


@dataclass(frozen=True)
class Point:
    """Cost of one region at one replica count."""

    mix: Mix
    monthly: float
    monthly_all_on_demand: float

    @property
    def saving(self) -> float:
        return self.monthly_all_on_demand - self.monthly


@dataclass(frozen=True)
class RegionCost:
    stack: str
    instance_type: str
    rates: Rates
    at_min: Point
    at_max: Point


@dataclass(frozen=True)
class FleetCost:
    regions: tuple[RegionCost, ...]

    def total(self, which: str) -> Point:
        points = [getattr(r, which) for r in self.regions]
        mix = Mix(*(sum(getattr(p.mix, f) for p in points) for f in ("reserved", "on_demand", "spot")))
        return Point(mix, sum(p.monthly for p in points), sum(p.monthly_all_on_demand for p in points))


def _point(region: RegionSpec, replicas: int, rates: Rates) -> Point:
    mix = capacity_mix(region, replicas)
    return Point(mix, monthly_cost(mix, rates), monthly_all_on_demand(replicas, rates))


def fleet_cost(fleet: Fleet, prices: PriceSource, progress: Progress | None = None) -> FleetCost:
    out = []
    for region in fleet.regions:
        instance_type = region.offering.instance_types[0].name  # the template / first-choice type
        if progress is not None:
            with progress.step(f"prices {region.cloud.value} {instance_type} {region.region}"):
                rates = prices.rates(region.cloud.value, region.region, instance_type)
        else:
            rates = prices.rates(region.cloud.value, region.region, instance_type)
        out.append(
            RegionCost(
                stack=region.stack_name,
                instance_type=instance_type,
                rates=rates,
                at_min=_point(region, region.min_replicas, rates),
                at_max=_point(region, region.max_replicas, rates),
            )
        )
    return FleetCost(tuple(out))


def _money(value: float) -> str:
    return f"${value:,.0f}"


def _pct(saving: float, base: float) -> str:
    return f"{100 * saving / base:.0f}%" if base else "-"


def render(cost: FleetCost) -> str:
    header = [
        "stack",
        "instance",
        "$/h od",
        "$/h spot",
        "$/h 1y",
        "min r/od/s",
        "min $/mo",
        "all-od $/mo",
        "max r/od/s",
        "max $/mo",
        "all-od $/mo",
    ]
    rows = []
    for r in cost.regions:
        rows.append(
            [
                r.stack,
                r.instance_type,
                f"{r.rates.on_demand:.3f}",
                f"{r.rates.spot:.3f}",
                f"{r.rates.reserved_1y:.3f}",
                str(r.at_min.mix),
                _money(r.at_min.monthly),
                _money(r.at_min.monthly_all_on_demand),
                str(r.at_max.mix),
                _money(r.at_max.monthly),
                _money(r.at_max.monthly_all_on_demand),
            ]
        )
    lo, hi = cost.total("at_min"), cost.total("at_max")
    rows.append(
        [
            "total",
            "",
            "",
            "",
            "",
            str(lo.mix),
            _money(lo.monthly),
            _money(lo.monthly_all_on_demand),
            str(hi.mix),
            _money(hi.monthly),
            _money(hi.monthly_all_on_demand),
        ]
    )
    sources = sorted({r.rates.source for r in cost.regions})
    lines = [
        table(header, rows),
        "",
        f"monthly = {HOURS_PER_MONTH:g} h; r/od/s = reserved / on-demand / spot replicas; prices: {', '.join(sources)}",
        f"saving against all on-demand: {_money(lo.saving)}/month at min replicas "
        f"({_pct(lo.saving, lo.monthly_all_on_demand)}), "
        f"{_money(hi.saving)}/month at max replicas ({_pct(hi.saving, hi.monthly_all_on_demand)})",
    ]
    return "\n".join(lines)


def main(
    argv: Sequence[str] | None = None,
    *,
    aws: AwsClientFactory | None = None,
    out: TextIO | None = None,
) -> int:
    parser = ArgParser(prog="python -m scripts.ops.cost", description=__doc__.splitlines()[0] if __doc__ else None)
    add_fleet_argument(parser)
    parser.add_argument("--offline", action="store_true", help="use the dated price table only (no API calls)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    stream = out or sys.stdout

    def body() -> int:
        fleet = load_fleet_or_raise(args.file)
        table_prices = PriceTable()
        prices: PriceSource = table_prices
        api: AwsPricingApi | None = None
        if not args.offline:
            api = AwsPricingApi(aws or boto3_factory(), table_prices)
            prices = api
        progress = Progress(total=len(fleet.regions), enabled=not args.json)
        cost = fleet_cost(fleet, prices, progress)
        if args.json:
            doc = {
                "regions": [asdict(r) for r in cost.regions],
                "total_at_min": asdict(cost.total("at_min")),
                "total_at_max": asdict(cost.total("at_max")),
                "saving_at_min": cost.total("at_min").saving,
                "saving_at_max": cost.total("at_max").saving,
            }
            print(json.dumps(doc, indent=2), file=stream)
        else:
            print(render(cost), file=stream)
        if args.offline:
            print(f"offline: prices from {table_prices.path.name} ({table_prices.label})", file=sys.stderr)
        elif api is not None and api.fallbacks:
            for reason in api.fallbacks:
                print(f"pricing API unavailable for {reason}; used {table_prices.label}", file=sys.stderr)
        return 0

    return run_main("cost", body)


if __name__ == "__main__":
    sys.exit(main())
