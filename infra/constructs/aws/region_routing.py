"""Route 53 pieces for one fleet region: a health check on its readiness path, its own name.

The global stack creates one of these per region (AWS or GCP) and then joins them under the
global name with latency records (or Global Accelerator).
"""

from __future__ import annotations

from cdktf_cdktf_provider_aws.route53_health_check import Route53HealthCheck
from cdktf_cdktf_provider_aws.route53_record import Route53Record, Route53RecordAlias
from constructs import Construct

from contract.facts import HEALTH_READY_PATH
from infra.tagging import suppress

# CKV2_AWS_23 looks for the record's target in the same configuration; it lives in the
# regional stack (or on GCP) and arrives through remote state.
ATTACHED_RESOURCE_CHECK = "CKV2_AWS_23"
ATTACHED_RESOURCE_REASON = "the target is the regional stack's load balancer, read through terraform_remote_state"
RECORD_TTL_S = 60


class RegionTarget:
    """Where a region's traffic goes: an ALB alias (AWS) or the regional LB's IP (GCP)."""

    def __init__(
        self, *, alias_name: str | None = None, alias_zone_id: str | None = None, ip: str | None = None
    ) -> None:
        if (alias_name is None) == (ip is None):
            raise ValueError("RegionTarget: give either an alias (AWS load balancer) or an IP address")
        self.alias_name = alias_name
        self.alias_zone_id = alias_zone_id
        self.ip = ip

    @property
    def alias(self) -> Route53RecordAlias | None:
        if self.alias_name is None:
            return None
        return Route53RecordAlias(name=self.alias_name, zone_id=str(self.alias_zone_id), evaluate_target_health=True)

    @property
    def records(self) -> list[str] | None:
        return None if self.ip is None else [self.ip]

    @property
    def ttl(self) -> int | None:
        return None if self.ip is None else RECORD_TTL_S


class AwsRegionRouting(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        zone_id: str,
        endpoint_name: str,
        target: RegionTarget,
        interval_s: int,
        failure_threshold: int,
    ) -> None:
        super().__init__(scope, id_)
        self.endpoint_name = endpoint_name
        self.target = target
        self.health_check = Route53HealthCheck(
            self,
            "health",
            type="HTTPS",
            fqdn=endpoint_name,
            port=443,
            resource_path=HEALTH_READY_PATH,
            enable_sni=True,
            request_interval=interval_s,
            failure_threshold=failure_threshold,
            measure_latency=True,
            tags={"Name": endpoint_name},
        )
        self.record = Route53Record(
            self,
            "endpoint",
            zone_id=zone_id,
            name=endpoint_name,
            type="A",
            alias=target.alias,
            records=target.records,
            ttl=target.ttl,
        )
        suppress(self.record, {ATTACHED_RESOURCE_CHECK: ATTACHED_RESOURCE_REASON})
