"""Route 53 pieces for one fleet region: a health check on its readiness path, its own name.

The global stack creates one of these per region (AWS or GCP) and then joins them under the
global name with latency records (or Global Accelerator).
"""

from __future__ import annotations

from cdktf_cdktf_provider_aws.route53_health_check import Route53HealthCheck
from cdktf_cdktf_provider_aws.route53_record import Route53Record, Route53RecordAlias
from constructs import Construct

READY_PATH = "/health/ready"
RECORD_TTL_S = 60


class RegionTarget:
    """Where a region's traffic goes: an ALB alias (AWS) or the regional LB's IP (GCP)."""

    def __init__(self, *, alias_name: str | None = None, alias_zone_id: str | None = None, ip: str | None = None) -> None:
        if (alias_name is None) == (ip is None):
            raise ValueError("RegionTarget: give either an alias (AWS load balancer) or an IP address")
        self.alias_name = alias_name
        self.alias_zone_id = alias_zone_id
        self.ip = ip

    def record_args(self) -> dict[str, object]:
        """Keyword arguments for a Route53Record pointing at this target."""
        if self.alias_name is not None:
            return {
                "alias": Route53RecordAlias(
                    name=self.alias_name, zone_id=str(self.alias_zone_id), evaluate_target_health=True
                )
            }
        return {"records": [str(self.ip)], "ttl": RECORD_TTL_S}


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
            resource_path=READY_PATH,
            enable_sni=True,
            request_interval=interval_s,
            failure_threshold=failure_threshold,
            measure_latency=True,
            tags={"Name": endpoint_name},
        )
        self.record = Route53Record(
            self, "endpoint", zone_id=zone_id, name=endpoint_name, type="A", **target.record_args()
        )
