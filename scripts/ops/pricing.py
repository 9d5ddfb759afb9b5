"""Hourly instance prices: the cloud pricing APIs, or the dated price table in the repo.

`Rates` is per instance-hour in USD with the GPU included. Sources:
- `PriceTable`: scripts/data/prices-<date>.json (offline; the date is part of every report)
- `AwsPricingApi`: AWS Price List GetProducts (OnDemand and 1-year Reserved terms) plus
  EC2 DescribeSpotPriceHistory (median of the latest price per availability zone)
- GCP: the table. Compute Engine GPU prices in the Cloud Billing Catalog are per SKU (GPU,
  core, RAM) and need an API key; the table holds them summed per machine type.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from scripts.ops._common import AwsClientFactory, OpsError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
HOURS_PER_MONTH = 730.0  # the clouds' own convention (8760 / 12)


@dataclass(frozen=True)
class Rates:
    on_demand: float
    spot: float
    reserved_1y: float
    source: str


class PriceSource(Protocol):
    def rates(self, cloud: str, region: str, instance_type: str) -> Rates: ...


def latest_table() -> Path:
    tables = sorted(DATA_DIR.glob("prices-*.json"))
    if not tables:
        raise OpsError(f"no price table in {DATA_DIR} (prices-YYYY-MM-DD.json)")
    return tables[-1]


class PriceTable:
    """The dated table; a missing entry is a clear error naming what to add."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or latest_table()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.as_of = str(data["as_of"])
            self._prices: dict[str, dict[str, dict[str, dict[str, float]]]] = data["prices"]
        except (OSError, ValueError, KeyError) as exc:
            raise OpsError(f"{self.path}: not a readable price table ({exc})") from None

    @property
    def label(self) -> str:
        return f"price table {self.as_of}"

    def rates(self, cloud: str, region: str, instance_type: str) -> Rates:
        entry = self._prices.get(cloud, {}).get(region, {}).get(instance_type)
        if entry is None:
            raise OpsError(
                f"{self.path.name}: no price for {cloud} {instance_type} in {region}; "
                "add it to the table or run with the pricing APIs (without --offline)"
            )
        return Rates(float(entry["on_demand"]), float(entry["spot"]), float(entry["reserved_1y"]), self.label)


def _usd(dimensions: dict[str, Any]) -> float:
    for dim in dimensions.values():
        if dim.get("unit") in ("Hrs", "Hours"):
            return float(dim["pricePerUnit"]["USD"])
    raise ValueError("no hourly price dimension")


def parse_price_list(products: Iterable[str]) -> tuple[float, float]:
    """(on-demand, 1-year no-upfront standard reserved) hourly USD from GetProducts PriceList items."""
    on_demand: list[float] = []
    reserved: list[float] = []
    for raw in products:
        item = json.loads(raw)
        terms = item.get("terms", {})
        for term in terms.get("OnDemand", {}).values():
            on_demand.append(_usd(term["priceDimensions"]))
        for term in terms.get("Reserved", {}).values():
            attrs = term.get("termAttributes", {})
            if (
                attrs.get("LeaseContractLength") == "1yr"
                and attrs.get("PurchaseOption") == "No Upfront"
                and attrs.get("OfferingClass") == "standard"
            ):
                reserved.append(_usd(term["priceDimensions"]))
    if not on_demand:
        raise ValueError("no OnDemand term in the price list")
    od = max(on_demand)  # the plain Linux SKU; a smaller match would be a capacity-block artefact
    return od, (min(reserved) if reserved else od)


def median_latest_spot(history: Iterable[dict[str, Any]]) -> float:
    """Median over availability zones of each zone's latest spot price."""
    latest: dict[str, tuple[dt.datetime, float]] = {}
    for row in history:
        zone, when, price = row["AvailabilityZone"], row["Timestamp"], float(row["SpotPrice"])
        if zone not in latest or when > latest[zone][0]:
            latest[zone] = (when, price)
    if not latest:
        raise ValueError("no spot price history")
    return float(statistics.median(p for _, p in latest.values()))


class AwsPricingApi:
    """Live AWS prices; GCP (and any failure) falls back to the table, saying so."""

    def __init__(self, aws: AwsClientFactory, fallback: PriceTable, *, now: dt.datetime | None = None) -> None:
        self._aws = aws
        self._fallback = fallback
        self._now = now
        self.fallbacks: list[str] = []

    def rates(self, cloud: str, region: str, instance_type: str) -> Rates:
        if cloud != "aws":
            return self._fallback.rates(cloud, region, instance_type)
        try:
            on_demand, reserved = self._list_prices(region, instance_type)
            spot = self._spot(region, instance_type)
        except Exception as exc:
            from scripts.ops._common import cloud_error_message

            reason = cloud_error_message(exc) or f"{type(exc).__name__}: {exc}"
            self.fallbacks.append(f"{instance_type} in {region}: {reason}")
            return self._fallback.rates(cloud, region, instance_type)
        return Rates(on_demand, spot, reserved, "AWS Price List + spot price history")

    def _list_prices(self, region: str, instance_type: str) -> tuple[float, float]:
        pricing = self._aws("pricing", "us-east-1")  # the Price List API lives in us-east-1
        filters = {
            "instanceType": instance_type,
            "regionCode": region,
            "operatingSystem": "Linux",
            "tenancy": "Shared",
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
        }
        paginator = pricing.get_paginator("get_products")
        items: list[str] = []
        for page in paginator.paginate(
            ServiceCode="AmazonEC2",
            Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()],
            PaginationConfig={"MaxItems": 20},
        ):
            items.extend(page["PriceList"])
        return parse_price_list(items)

    def _spot(self, region: str, instance_type: str) -> float:
        now = self._now or dt.datetime.now(dt.UTC)
        ec2 = self._aws("ec2", region)
        history = ec2.describe_spot_price_history(
            InstanceTypes=[instance_type],
            ProductDescriptions=["Linux/UNIX"],
            StartTime=now - dt.timedelta(hours=6),
            EndTime=now,
        )["SpotPriceHistory"]
        return median_latest_spot(history)
