"""The GCP side of the one boot-script family (`infra.boot`): the startup-script is the shared
boot script rendered for a GCP region, the shutdown-script drains within GCP's budget."""

from __future__ import annotations

from contract.facts import GCP_GPU_METRIC_TYPE, GCP_IN_FLIGHT_METRIC_TYPE
from infra.boot import instance_contract, render_shutdown_script, render_user_data
from infra.config import Fleet, RegionSpec

IN_FLIGHT_METRIC_TYPE = GCP_IN_FLIGHT_METRIC_TYPE
GPU_METRIC_TYPE = GCP_GPU_METRIC_TYPE


def startup_script(fleet: Fleet, region: RegionSpec) -> str:
    return render_user_data(instance_contract(fleet, region))


def shutdown_script(fleet: Fleet, region: RegionSpec) -> str:
    return render_shutdown_script(instance_contract(fleet, region))
