"""preflight and fleet_status for GCP regions: the real google-cloud-compute REST client
against recorded Compute API responses served on 127.0.0.1."""

from __future__ import annotations

import io
from typing import Any

import pytest
from google.api_core.exceptions import GoogleAPIError

from infra.config import Fleet
from scripts.ops import fleet_status, preflight
from scripts.ops._common import Progress, cloud_error_message
from scripts.ops._gcp import gpu_quota_metric
from scripts.ops.pricing import PriceTable
from tests.delivery.conftest import Recorder


def _gcp_region(fleet: Fleet) -> Any:
    return next(r for r in fleet.regions if r.cloud.value == "gcp")


def test_quota_metric_names() -> None:
    assert gpu_quota_metric("nvidia-l4", preemptible=False) == "NVIDIA_L4_GPUS"
    assert gpu_quota_metric("nvidia-tesla-t4", preemptible=True) == "PREEMPTIBLE_NVIDIA_T4_GPUS"
    assert gpu_quota_metric("nvidia-h100-80gb", preemptible=False) == "NVIDIA_H100_GPUS"


def test_preflight_reads_quotas_and_zones(fleet: Fleet, gcp_clients: Any, gcp_replay: tuple[str, Recorder]) -> None:
    region = _gcp_region(fleet)
    check = preflight.check_gcp(gcp_clients, "llm-fleet-example", region, PriceTable())
    # regions.get: NVIDIA_L4_GPUS limit 4 covers the base of 1; PREEMPTIBLE limit 2 < spot max 3.
    assert check.on_demand is not None
    assert check.spot is not None
    assert (check.on_demand.need, check.on_demand.limit) == (1, 4)
    assert (check.spot.need, check.spot.limit) == (3, 2)
    assert check.zones == ["asia-southeast1-a", "asia-southeast1-b"]  # -c returned a NO_RESULTS warning
    assert check.fits is False
    assert check.verdict == "DOES NOT FIT"
    assert check.spot_price.startswith("$0.421/h")
    sent = [path for method, path, _ in gcp_replay[1].requests if "acceleratorTypes" in path]
    assert sent
    assert "filter=" in sent[-1]
    assert "nvidia-l4" in sent[-1]


def test_preflight_fits_when_spot_fits(fleet: Fleet, gcp_clients: Any) -> None:
    region = _gcp_region(fleet).model_copy(update={"max_replicas": 3})  # spot max 2 == limit
    check = preflight.check_gcp(gcp_clients, "llm-fleet-example", region, PriceTable())
    assert check.fits is True


def test_fleet_status_finds_the_fleet_migs_by_template_labels(fleet: Fleet, gcp_clients: Any) -> None:
    status = fleet_status.gcp_region_status(gcp_clients, fleet, _gcp_region(fleet))
    names = sorted(g.name for g in status.groups)
    assert names == ["llm-fleet-asia-southeast1-base", "llm-fleet-asia-southeast1-spot"]  # not batch-workers
    spot = next(g for g in status.groups if g.name.endswith("spot"))
    assert (spot.in_service, spot.spot, spot.on_demand) == (1, 1, 0)
    assert (status.healthy_targets, status.targets) == (2, 2)


def test_preflight_gcp_error_is_one_line(fleet: Fleet, gcp_clients: Any) -> None:
    region = _gcp_region(fleet).model_copy(update={"region": "europe-west4"})  # no recording: the server says 404
    one_region = fleet.model_copy(update={"regions": (region,)})
    with pytest.raises(GoogleAPIError) as info:
        preflight.collect(one_region, aws=_no_aws, gcp=gcp_clients, progress=Progress(1, io.StringIO(), enabled=False))
    message = cloud_error_message(info.value)
    assert message is not None
    assert message.startswith("GCP: 404")
    assert "\n" not in message


def _no_aws(service: str, region: str) -> Any:
    raise AssertionError(f"no AWS call expected ({service} {region})")
