"""A regional managed instance group over >= 2 zones with its autoscaler: one capacity pool.

A GCP region runs two pools, each a MIG + regional autoscaler on the same per-instance target:

    standard (on-demand / reserved):  min = min(min_replicas, on_demand_base)   max = on_demand_base
    spot:                             min = max(min_replicas - on_demand_base, 0) max = max_replicas - on_demand_base

so the region never has fewer than `min_replicas` nor more than `max_replicas` instances, at
most `on_demand_base` of them on-demand, and every instance above the base is spot. A pool
whose max is 0 (no base, or no room above it) is not created.

Placement: both pools use the BALANCED target shape: VMs are created in the zones where GPUs
(or spot capacity) are available, spread as evenly as that allows. ANY would chase spot
capacity harder, but an autoscaled regional MIG must be EVEN or BALANCED, and EVEN would leave
VMs unstarted in a zone without GPUs. BALANCED requires `instance_redistribution_type = NONE`. Autohealing recreates
an instance whose `/health/live` check fails after the cold-start initial delay; updates roll
out proactively with surge and no unavailable instances.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktf_cdktf_provider_google.compute_region_autoscaler import (
    ComputeRegionAutoscaler,
    ComputeRegionAutoscalerAutoscalingPolicy,
    ComputeRegionAutoscalerAutoscalingPolicyCpuUtilization,
    ComputeRegionAutoscalerAutoscalingPolicyMetric,
    ComputeRegionAutoscalerAutoscalingPolicyScaleInControl,
    ComputeRegionAutoscalerAutoscalingPolicyScaleInControlMaxScaledInReplicas,
)
from cdktf_cdktf_provider_google.compute_region_instance_group_manager import (
    ComputeRegionInstanceGroupManager,
    ComputeRegionInstanceGroupManagerAutoHealingPolicies,
    ComputeRegionInstanceGroupManagerInstanceLifecyclePolicy,
    ComputeRegionInstanceGroupManagerNamedPort,
    ComputeRegionInstanceGroupManagerUpdatePolicy,
    ComputeRegionInstanceGroupManagerVersion,
)
from constructs import Construct

from contract.facts import GCP_GPU_METRIC_TYPE, GCP_IN_FLIGHT_METRIC_TYPE
from infra.config import AutoscaleSpec, RegionSpec
from infra.constructs.gcp.instance_template import Pool
from infra.tagging import gcp_name

NAMED_PORT = "http"
# GCP bounds: autohealing initial delay and autoscaler initialization period 0..3600 s;
# scale-in control time window 60..3600 s.
MAX_DELAY_S = 3600
MIN_SCALE_IN_WINDOW_S = 60
# "Set a target distribution shape" (Compute Engine docs), limitations: "If you want to autoscale
# a regional MIG, you must set the target distribution shape to BALANCED or EVEN"; both pools
# have an autoscaler. BALANCED (not EVEN) because a GPU or its spot capacity can be missing in
# a zone; it also requires proactive instance redistribution to be off.
TARGET_SHAPE = {Pool.STANDARD: "BALANCED", Pool.SPOT: "BALANCED"}


@dataclass(frozen=True)
class PoolSize:
    min: int
    max: int


def pool_sizes(region: RegionSpec) -> dict[Pool, PoolSize]:
    """Both pools' autoscaler bounds from min_replicas, max_replicas and on_demand_base."""
    base = region.on_demand_base
    return {
        Pool.STANDARD: PoolSize(min=min(region.min_replicas, base), max=base),
        Pool.SPOT: PoolSize(min=max(region.min_replicas - base, 0), max=region.spot_max),
    }


def autoscaling_policy(spec: AutoscaleSpec, size: PoolSize, delay_s: int) -> ComputeRegionAutoscalerAutoscalingPolicy:
    """Bounds, initialization period, scale-in control and the per-instance target."""
    cpu = None
    metrics = None
    if spec.metric == "cpu_utilization":
        # The fleet file gives percent (as on AWS); GCP wants a fraction.
        cpu = ComputeRegionAutoscalerAutoscalingPolicyCpuUtilization(target=spec.target / 100)
    else:
        metric = GCP_IN_FLIGHT_METRIC_TYPE if spec.metric == "requests_in_flight_per_instance" else GCP_GPU_METRIC_TYPE
        metrics = [ComputeRegionAutoscalerAutoscalingPolicyMetric(name=metric, target=spec.target, type="GAUGE")]
    return ComputeRegionAutoscalerAutoscalingPolicy(
        min_replicas=size.min,
        max_replicas=size.max,
        mode="ON",
        # New instances are ignored for scaling decisions until they can serve.
        cooldown_period=delay_s,
        scale_in_control=ComputeRegionAutoscalerAutoscalingPolicyScaleInControl(
            max_scaled_in_replicas=ComputeRegionAutoscalerAutoscalingPolicyScaleInControlMaxScaledInReplicas(fixed=1),
            time_window_sec=min(max(spec.scale_in_cooldown_s, MIN_SCALE_IN_WINDOW_S), MAX_DELAY_S),
        ),
        cpu_utilization=cpu,
        metric=metrics,
    )


class GcpGpuPool(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name: str,
        pool: Pool,
        region: str,
        zones: tuple[str, ...],
        instance_template: str,
        size: PoolSize,
        port: int,
        autohealing_check: str,
        cold_start_s: int,
        autoscale: AutoscaleSpec,
    ) -> None:
        super().__init__(scope, id_)
        if len(zones) < 2:
            raise ValueError(f"region: {region} needs at least 2 zones in the catalogue, has {len(zones)}")
        if size.max < 1 or not 0 <= size.min <= size.max:
            raise ValueError(f"{pool.value} pool size {size.min}..{size.max} is not a valid autoscaler range")
        self.pool = pool
        self.size = size
        delay = min(cold_start_s, MAX_DELAY_S)
        self.group = ComputeRegionInstanceGroupManager(
            self,
            "group",
            name=gcp_name(name, pool.value),
            base_instance_name=gcp_name(name, pool.value, max_len=50),
            region=region,
            distribution_policy_zones=list(zones),
            distribution_policy_target_shape=TARGET_SHAPE[pool],
            version=[ComputeRegionInstanceGroupManagerVersion(name=pool.value, instance_template=instance_template)],
            named_port=[ComputeRegionInstanceGroupManagerNamedPort(name=NAMED_PORT, port=port)],
            auto_healing_policies=ComputeRegionInstanceGroupManagerAutoHealingPolicies(
                health_check=autohealing_check, initial_delay_sec=delay
            ),
            instance_lifecycle_policy=ComputeRegionInstanceGroupManagerInstanceLifecyclePolicy(
                default_action_on_failure="REPAIR", force_update_on_repair="YES"
            ),
            update_policy=ComputeRegionInstanceGroupManagerUpdatePolicy(
                type="PROACTIVE",
                minimal_action="REPLACE",
                instance_redistribution_type="NONE",
                # A regional MIG's fixed surge must be 0 or >= the number of zones.
                max_surge_fixed=len(zones),
                max_unavailable_fixed=0,
                replacement_method="SUBSTITUTE",
            ),
            wait_for_instances=False,
        )
        self.autoscaler = ComputeRegionAutoscaler(
            self,
            "autoscaler",
            name=gcp_name(name, pool.value, "autoscaler"),
            region=region,
            target=self.group.id,
            autoscaling_policy=autoscaling_policy(autoscale, size, delay),
        )
