"""`aws-<region>`: one AWS region of the fleet (docs/aws.md).

VPC over three AZs (two where the region has only two) -> ALB with a DNS-validated
certificate for `<region>.<domain>` and the global name -> GPU Auto Scaling group booting the
service container. The global stack reads this stack's outputs (remote state) to route to it.
"""

from __future__ import annotations

from cdktf import TerraformOutput
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from cdktf_cdktf_provider_aws.data_aws_route53_zone import DataAwsRoute53Zone
from cdktf_cdktf_provider_aws.provider import AwsProvider
from constructs import Construct

from contract.facts import AWS, AWS_METRICS_NAMESPACE, lifecycle_heartbeat_s
from infra.boot import render_boot_script
from infra.catalog import Cloud
from infra.config import Fleet, RegionSpec
from infra.constructs.aws.gpu_group import AwsGpuGroup
from infra.constructs.aws.instance_role import AwsInstanceRole
from infra.constructs.aws.load_balancer import AwsLoadBalancer
from infra.constructs.aws.network import LOG_RETENTION_DAYS, AwsNetwork
from infra.naming import Backend, aws_group_name, endpoint_name, instance_log_group, resource_prefix
from infra.stacks.common import FleetStack
from infra.tagging import fleet_tags


class AwsRegionStack(FleetStack):
    def __init__(self, scope: Construct, id_: str, *, fleet: Fleet, region: RegionSpec, backend: Backend) -> None:
        super().__init__(scope, id_, fleet=fleet, backend=backend)
        if region.cloud != Cloud.AWS:
            raise ValueError(f"region: {region.stack_name} is not an AWS region")

        self.region = region
        name = resource_prefix(fleet, region)
        AwsProvider(self, "aws", region=region.region)
        account = DataAwsCallerIdentity(self, "account")
        partition = DataAwsPartition(self, "partition").partition
        zone = DataAwsRoute53Zone(self, "zone", name=fleet.global_.hosted_zone, private_zone=False)

        log_group = instance_log_group(fleet, region)
        self.network = AwsNetwork(
            self,
            "network",
            name=name,
            region=region.region,
            account_id=account.account_id,
            partition=partition,
            zones=region.info.zones,
            az_count=region.info.azs,
            encrypted_log_groups=[log_group],
        )
        # Boot and service logs, visible without SSH; same retention and key as the flow logs.
        self.instance_logs = CloudwatchLogGroup(
            self,
            "instance_logs",
            name=log_group,
            retention_in_days=LOG_RETENTION_DAYS,
            kms_key_id=self.network.log_key.arn,
        )
        self.endpoint = endpoint_name(fleet, region)
        self.lb = AwsLoadBalancer(
            self,
            "lb",
            name=name,
            vpc_id=self.network.vpc.id,
            subnet_ids=[s.id for s in self.network.public_subnets],
            zone_id=zone.zone_id,
            domain_names=[self.endpoint, fleet.global_.domain],
            shared_names=[fleet.global_.domain],  # its validation record is the bootstrap stack's
            service_port=fleet.service.port,
            # In-flight requests of a deregistered instance finish within the spot notice.
            deregistration_delay_s=AWS.preemption_notice_s,
            # A non-streaming generation of max_tokens must fit; the gateway's keep-alive outlasts it.
            idle_timeout_s=AWS.lb_idle_timeout_s,
        )
        asg_name = aws_group_name(fleet, region)
        self.instance_role = AwsInstanceRole(
            self,
            "instance",
            name=name,
            region=region.region,
            account_id=account.account_id,
            partition=partition,
            api_keys_secret=fleet.service.api_keys_secret,
            weights_mirror=fleet.model.mirror(Cloud.AWS),
            optional_secrets=fleet.service.optional_secrets,
            metrics_namespace=AWS_METRICS_NAMESPACE,
            asg_name=asg_name,
            log_group_name=log_group,
        )
        self.group = AwsGpuGroup(
            self,
            "gpu",
            name=name,
            group_name=asg_name,
            vpc_id=self.network.vpc.id,
            subnet_ids=[s.id for s in self.network.private_subnets],
            alb_security_group_id=self.lb.security_group.id,
            target_group_arn=self.lb.target_group.arn,
            instance_profile_arn=self.instance_role.profile.arn,
            instance_types=[t.name for t in region.offering.instance_types],
            min_size=region.min_replicas,
            max_size=region.max_replicas,
            on_demand_base=region.on_demand_base,
            capacity_reservations=region.capacity_reservations,
            user_data=render_boot_script(fleet, region),
            service_port=fleet.service.port,
            cold_start_s=fleet.cold_start_s(region),
            local_nvme=region.offering.local_nvme,
            lifecycle_heartbeat_s=lifecycle_heartbeat_s(),
            autoscale_metric=fleet.autoscale.metric,
            autoscale_target=fleet.autoscale.target,
            tags=fleet_tags(fleet.project, id_, fleet.tags),
        )

        TerraformOutput(self, "endpoint_name", value=self.endpoint)
        TerraformOutput(self, "alb_dns_name", value=self.lb.alb.dns_name)
        TerraformOutput(self, "alb_zone_id", value=self.lb.alb.zone_id)
        TerraformOutput(self, "alb_arn", value=self.lb.alb.arn)
        TerraformOutput(self, "asg_name", value=self.group.asg.name)
        TerraformOutput(self, "target_group_arn", value=self.lb.target_group.arn)
        TerraformOutput(self, "instance_log_group", value=self.instance_logs.name)
