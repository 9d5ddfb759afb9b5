"""`global`: one name for the whole fleet, routed to the nearest healthy region.

Every region, AWS or GCP, gets an HTTPS Route 53 health check on `/health/ready` and its own
name `<region>.<domain>`. The global name is either a set of latency records (latency-dns)
or an alias to an AWS Global Accelerator (global-accelerator, AWS-only fleets).

Region data comes from each regional stack's outputs through terraform_remote_state (never a
cloud provider), so this stack validates and deploys without the Google provider.

Latency records name AWS regions; a GCP region uses the nearest AWS region. Route 53 answers
a latency query by choosing one latency *region* and then one record of it, so when two fleet
regions map to the same AWS region they are not given two latency records: they become an
equal-weight, health-checked weighted set under `<aws-region>.latency.<domain>`, and one
latency record aliases that set (evaluate_target_health), so each keeps its own health check
and a failed one drops out of the answer.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from cdktf import TerraformOutput
from cdktf_cdktf_provider_aws.data_aws_route53_zone import DataAwsRoute53Zone
from cdktf_cdktf_provider_aws.globalaccelerator_accelerator import GlobalacceleratorAccelerator
from cdktf_cdktf_provider_aws.globalaccelerator_endpoint_group import (
    GlobalacceleratorEndpointGroup,
    GlobalacceleratorEndpointGroupEndpointConfiguration,
)
from cdktf_cdktf_provider_aws.globalaccelerator_listener import (
    GlobalacceleratorListener,
    GlobalacceleratorListenerPortRange,
)
from cdktf_cdktf_provider_aws.provider import AwsProvider
from cdktf_cdktf_provider_aws.route53_record import (
    Route53Record,
    Route53RecordAlias,
    Route53RecordLatencyRoutingPolicy,
    Route53RecordWeightedRoutingPolicy,
)
from constructs import Construct

from contract.facts import HEALTH_READY_PATH
from infra.catalog import Cloud
from infra.config import Fleet, GlobalMode, RegionSpec
from infra.constructs.aws.region_routing import (
    ATTACHED_RESOURCE_CHECK,
    ATTACHED_RESOURCE_REASON,
    AwsRegionRouting,
    RegionTarget,
)
from infra.naming import Backend, endpoint_name
from infra.stacks.common import FleetStack
from infra.tagging import suppress

if TYPE_CHECKING:
    from cdktf import TerraformRemoteState

# Route 53's own hosted zone and API live in us-east-1.
ROUTE53_REGION = "us-east-1"


def latency_region(region: RegionSpec) -> str:
    """The AWS region a latency record for this fleet region names."""
    if region.cloud == Cloud.AWS:
        return region.region
    nearest = region.info.nearest_aws_region
    if nearest is None:
        raise ValueError(f"region: {region.stack_name} has no nearest AWS region in the catalogue")
    return nearest


class GlobalStack(FleetStack):
    def __init__(self, scope: Construct, id_: str, *, fleet: Fleet, backend: Backend) -> None:
        super().__init__(scope, id_, fleet=fleet, backend=backend)

        AwsProvider(self, "aws", region=ROUTE53_REGION)
        g = fleet.global_
        self.zone = DataAwsRoute53Zone(self, "zone", name=g.hosted_zone, private_zone=False)
        self.regions: dict[str, AwsRegionRouting] = {}
        self.alb_arns: dict[str, str] = {}
        certificate_authorized = False
        for region in fleet.regions:
            state = self.remote_state(region.stack_name)
            if region.cloud == Cloud.AWS:
                target = RegionTarget(
                    alias_name=state.get_string("alb_dns_name"), alias_zone_id=state.get_string("alb_zone_id")
                )
                self.alb_arns[region.region] = state.get_string("alb_arn")
            else:
                target = RegionTarget(ip=state.get_string("lb_ip_address"))
                if not certificate_authorized:
                    self._gcp_certificate_authorization(state)
                    certificate_authorized = True
            self.regions[region.stack_name] = AwsRegionRouting(
                self,
                f"region_{region.stack_name.replace('-', '_')}",
                zone_id=self.zone.zone_id,
                endpoint_name=endpoint_name(fleet, region),
                target=target,
                interval_s=g.health_check_interval_s,
                failure_threshold=g.health_check_failure_threshold,
            )

        if g.mode == GlobalMode.GLOBAL_ACCELERATOR:
            self._global_accelerator()
        else:
            self._latency_records()
        TerraformOutput(self, "global_endpoint", value=g.domain)
        TerraformOutput(
            self,
            "health_check_ids",
            value={name: r.health_check.id for name, r in self.regions.items()},
        )

    # -- latency-dns ---------------------------------------------------------------------
    def _latency_records(self) -> None:

        domain = self.fleet.global_.domain
        groups: dict[str, list[RegionSpec]] = defaultdict(list)
        for region in self.fleet.regions:
            groups[latency_region(region)].append(region)
        for aws_region, members in groups.items():
            rid = aws_region.replace("-", "_")
            if len(members) == 1:
                self._region_record(
                    f"latency_{rid}",
                    members[0],
                    name=domain,
                    latency_routing_policy=Route53RecordLatencyRoutingPolicy(region=aws_region),
                )
                continue
            shared = f"{aws_region}.latency.{domain}"
            weighted = []
            for region in members:
                member = self._region_record(
                    f"weighted_{region.stack_name.replace('-', '_')}",
                    region,
                    name=shared,
                    weighted_routing_policy=Route53RecordWeightedRoutingPolicy(weight=1),
                )
                weighted.append(member)
            Route53Record(
                self,
                f"latency_{rid}",
                zone_id=self.zone.zone_id,
                name=domain,
                type="A",
                set_identifier=aws_region,
                latency_routing_policy=Route53RecordLatencyRoutingPolicy(region=aws_region),
                alias=Route53RecordAlias(name=shared, zone_id=self.zone.zone_id, evaluate_target_health=True),
                depends_on=weighted,
            )

    def _region_record(self, id_: str, region: RegionSpec, *, name: str, **policy: Any) -> Route53Record:
        """An A record for one region's load balancer, answered only while its health check
        passes; `policy`: the record's routing policy (latency or weighted)."""
        routing = self.regions[region.stack_name]
        record = Route53Record(
            self,
            id_,
            zone_id=self.zone.zone_id,
            name=name,
            type="A",
            set_identifier=region.stack_name,
            health_check_id=routing.health_check.id,
            alias=routing.target.alias,
            records=routing.target.records,
            ttl=routing.target.ttl,
            **policy,
        )
        suppress(record, {ATTACHED_RESOURCE_CHECK: ATTACHED_RESOURCE_REASON})
        return record

    # -- global-accelerator (AWS-only fleets; the config refuses it with GCP regions) ----
    def _global_accelerator(self) -> None:

        g = self.fleet.global_
        self.accelerator = GlobalacceleratorAccelerator(
            self, "accelerator", name=self.fleet.project, ip_address_type="IPV4", enabled=True
        )
        suppress(
            self.accelerator,
            {
                "CKV_AWS_75": "each region's VPC flow logs and the gateway's request logs already record every "
                "connection; accelerator flow logs would need their own bucket in us-west-2",
            },
        )
        listener = GlobalacceleratorListener(
            self,
            "accelerator_https",
            accelerator_arn=self.accelerator.id,
            protocol="TCP",
            client_affinity="NONE",
            port_range=[GlobalacceleratorListenerPortRange(from_port=443, to_port=443)],
        )
        for aws_region, alb_arn in self.alb_arns.items():
            # ALB endpoints: the accelerator follows the ALB's target health (/health/ready).
            GlobalacceleratorEndpointGroup(
                self,
                f"endpoints_{aws_region.replace('-', '_')}",
                listener_arn=listener.id,
                endpoint_group_region=aws_region,
                health_check_protocol="HTTPS",
                health_check_path=HEALTH_READY_PATH,
                health_check_interval_seconds=g.health_check_interval_s,
                threshold_count=g.health_check_failure_threshold,
                endpoint_configuration=[
                    GlobalacceleratorEndpointGroupEndpointConfiguration(
                        endpoint_id=alb_arn, weight=100, client_ip_preservation_enabled=True
                    )
                ],
            )
        Route53Record(
            self,
            "accelerator_alias",
            zone_id=self.zone.zone_id,
            name=g.domain,
            type="A",
            alias=Route53RecordAlias(
                name=self.accelerator.dns_name, zone_id=self.accelerator.hosted_zone_id, evaluate_target_health=True
            ),
        )

    # -- GCP: Google-managed certificate DNS authorization ----------------------------------
    def _gcp_certificate_authorization(self, state: TerraformRemoteState) -> None:
        """The CNAME that proves domain control for the GCP regions' managed certificates.

        Every GCP region authorizes the same domain in the fleet's one project with a
        PER_PROJECT_RECORD authorization, whose record is the project's (one name, one
        target), so one record serves them all: two would collide in Route 53. It is read
        from the first GCP region's outputs `dns_authorization_record_{name,type,data}`;
        its address does not name the region, so removing that region only changes where
        the (identical) value is read from.
        """

        Route53Record(
            self,
            "gcp_certificate_authorization",
            zone_id=self.zone.zone_id,
            name=state.get_string("dns_authorization_record_name"),
            type=state.get_string("dns_authorization_record_type"),
            records=[state.get_string("dns_authorization_record_data")],
            ttl=300,
        )
