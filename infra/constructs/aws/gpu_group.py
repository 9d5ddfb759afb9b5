"""The GPU instance group: launch template + mixed-instances Auto Scaling group.

The on-demand base (reserved capacity first when reservations are named) comes from the
fleet file; everything above it is spot, spread over >= 2 instance types with the
price-capacity-optimized strategy and capacity rebalancing. Routing follows readiness (the
target group checks `/health/ready`); replacement follows liveness: the group uses EC2 health
checks, and the instance's own liveness agent marks it Unhealthy (SetInstanceHealth) when
`/health/live` fails past its threshold, so an engine restart or one slow readiness probe never
costs a cold start (GCP's MIG autohealing works the same way, on `/health/live`). A
termination lifecycle hook gives each instance its drain budget; changes roll out by instance
refresh; target tracking scales on the fleet's autoscale metric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cdktf import TerraformResourceLifecycle, Token
from cdktf_cdktf_provider_aws.autoscaling_group import (
    AutoscalingGroup,
    AutoscalingGroupCapacityReservationSpecification,
    AutoscalingGroupCapacityReservationSpecificationCapacityReservationTarget,
    AutoscalingGroupInstanceRefresh,
    AutoscalingGroupInstanceRefreshPreferences,
    AutoscalingGroupMixedInstancesPolicy,
    AutoscalingGroupMixedInstancesPolicyInstancesDistribution,
    AutoscalingGroupMixedInstancesPolicyLaunchTemplate,
    AutoscalingGroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecification,
    AutoscalingGroupMixedInstancesPolicyLaunchTemplateOverride,
    AutoscalingGroupTag,
)
from cdktf_cdktf_provider_aws.autoscaling_lifecycle_hook import AutoscalingLifecycleHook
from cdktf_cdktf_provider_aws.autoscaling_policy import (
    AutoscalingPolicy,
    AutoscalingPolicyTargetTrackingConfiguration,
    AutoscalingPolicyTargetTrackingConfigurationCustomizedMetricSpecification,
    AutoscalingPolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricDimension,
    AutoscalingPolicyTargetTrackingConfigurationPredefinedMetricSpecification,
)
from cdktf_cdktf_provider_aws.data_aws_ssm_parameter import DataAwsSsmParameter
from cdktf_cdktf_provider_aws.launch_template import (
    LaunchTemplate,
    LaunchTemplateBlockDeviceMappings,
    LaunchTemplateBlockDeviceMappingsEbs,
    LaunchTemplateIamInstanceProfile,
    LaunchTemplateMetadataOptions,
    LaunchTemplateMonitoring,
    LaunchTemplateNetworkInterfaces,
    LaunchTemplateTagSpecifications,
)
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

from contract.facts import (
    AWS_GPU_UTILIZATION_METRIC,
    AWS_IN_FLIGHT_METRIC,
    AWS_LIFECYCLE_HOOK,
    AWS_METRIC_DIMENSION,
    AWS_METRICS_NAMESPACE,
)
from infra.boot import aws_user_data

# Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04): driver, docker and the NVIDIA
# container toolkit preinstalled; AWS publishes the latest id in this public SSM parameter.
GPU_AMI_SSM_PARAMETER = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
ROOT_VOLUME_GIB = 200  # AMI (~75 GiB) + service image (~20 GiB) + weights cache (~10 GiB) + headroom
# Instance types without instance-store NVMe keep the image and weights on the root volume, so it
# gets gp3's provisioned throughput (EC2 docs, gp3: 125..1,000 MiB/s and 3,000..16,000 IOPS, at
# most 0.25 MiB/s per provisioned IOPS) instead of the 125 MiB/s baseline. Types with NVMe
# (the Deep Learning AMI mounts it at /opt/dlami/nvme; Nitro instance stores need no block
# device mapping) keep the baseline root: the boot script puts the docker data root and the
# model cache there.
PROVISIONED_THROUGHPUT_MIBPS = 1000
PROVISIONED_IOPS = 4000  # 1,000 MiB/s / 0.25 MiB/s per IOPS
# Replacement on liveness: EC2 status checks + the instance's liveness agent (SetInstanceHealth).
HEALTH_CHECK_TYPE = "EC2"


class AwsGpuGroup(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name: str,
        group_name: str,
        vpc_id: str,
        subnet_ids: Sequence[str],
        alb_security_group_id: str,
        target_group_arn: str,
        instance_profile_arn: str,
        instance_types: Sequence[str],
        min_size: int,
        max_size: int,
        on_demand_base: int,
        capacity_reservations: Sequence[str],
        user_data: str,
        service_port: int,
        cold_start_s: int,
        local_nvme: bool,
        lifecycle_heartbeat_s: int,
        autoscale_metric: str,
        autoscale_target: float,
        tags: Mapping[str, str],
    ) -> None:
        super().__init__(scope, id_)
        if len(instance_types) < 2:
            raise ValueError("instance_types: a mixed instances policy needs at least 2 types")
        self.security_group = SecurityGroup(
            self, "sg", name_prefix=f"{name}-gpu-", description=f"{name} GPU instances", vpc_id=vpc_id
        )
        VpcSecurityGroupIngressRule(
            self,
            "from_alb",
            security_group_id=self.security_group.id,
            referenced_security_group_id=alb_security_group_id,
            ip_protocol="tcp",
            from_port=service_port,
            to_port=service_port,
            description="service port, from the load balancer only",
        )
        VpcSecurityGroupEgressRule(
            self,
            "https_out",
            security_group_id=self.security_group.id,
            cidr_ipv4="0.0.0.0/0",
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            description="HTTPS: image registry, model hub, SSM, Secrets Manager, CloudWatch",
        )
        # The ALB may only reach the instances on the service port.
        VpcSecurityGroupEgressRule(
            self,
            "alb_to_instances",
            security_group_id=alb_security_group_id,
            referenced_security_group_id=self.security_group.id,
            ip_protocol="tcp",
            from_port=service_port,
            to_port=service_port,
            description="load balancer to the service port",
        )

        # The AMI is read at plan time, not by EC2 at launch (`resolve:ssm:`): Auto Scaling cannot
        # roll an instance refresh back to a launch template whose AMI comes from Parameter Store
        # ("Undo changes with a manual or auto rollback", considerations). A newly published AMI
        # therefore shows up in the next plan as a new template version, which the group rolls
        # out by instance refresh (with auto rollback).
        self.ami = DataAwsSsmParameter(self, "gpu_ami", name=GPU_AMI_SSM_PARAMETER)
        self.launch_template = LaunchTemplate(
            self,
            "lt",
            name_prefix=f"{name}-",
            description=f"{name} GPU instances",
            image_id=self.ami.insecure_value,  # a public AMI id, not a secret: no `(sensitive)` diffs
            instance_type=instance_types[0],
            update_default_version=True,
            ebs_optimized="true",
            iam_instance_profile=LaunchTemplateIamInstanceProfile(arn=instance_profile_arn),
            user_data=aws_user_data(user_data),
            metadata_options=LaunchTemplateMetadataOptions(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=1,  # the container uses host networking (boot template)
                instance_metadata_tags="disabled",
            ),
            monitoring=LaunchTemplateMonitoring(enabled=True),
            network_interfaces=[
                LaunchTemplateNetworkInterfaces(
                    associate_public_ip_address="false",
                    delete_on_termination="true",
                    security_groups=[self.security_group.id],
                )
            ],
            block_device_mappings=[
                LaunchTemplateBlockDeviceMappings(
                    device_name="/dev/sda1",
                    ebs=LaunchTemplateBlockDeviceMappingsEbs(
                        volume_size=ROOT_VOLUME_GIB,
                        volume_type="gp3",
                        encrypted="true",
                        delete_on_termination="true",
                        throughput=None if local_nvme else PROVISIONED_THROUGHPUT_MIBPS,
                        iops=None if local_nvme else PROVISIONED_IOPS,
                    ),
                )
            ],
            tag_specifications=[
                LaunchTemplateTagSpecifications(resource_type=kind, tags={**tags, "Name": f"{name}-gpu"})
                for kind in ("instance", "volume")
            ],
        )

        reservation = None
        if capacity_reservations:
            # Targeted reservations: the group launches into them first, then into open capacity.
            reservation = AutoscalingGroupCapacityReservationSpecification(
                capacity_reservation_preference="capacity-reservations-first",
                capacity_reservation_target=AutoscalingGroupCapacityReservationSpecificationCapacityReservationTarget(
                    capacity_reservation_ids=list(capacity_reservations)
                ),
            )
        self.asg = AutoscalingGroup(
            self,
            "asg",
            name=group_name,
            min_size=min_size,
            max_size=max_size,
            vpc_zone_identifier=list(subnet_ids),
            target_group_arns=[target_group_arn],
            # Auto Scaling docs ("Health checks"): with ELB health checks the group replaces an
            # instance the target group reports unhealthy, i.e. on a readiness dip; EC2 checks plus
            # SetInstanceHealth from the liveness agent replace only a dead instance or engine.
            health_check_type=HEALTH_CHECK_TYPE,
            health_check_grace_period=cold_start_s,
            default_instance_warmup=cold_start_s,
            capacity_rebalance=True,
            wait_for_capacity_timeout="0",
            termination_policies=["OldestLaunchTemplate", "OldestInstance"],
            enabled_metrics=["GroupInServiceInstances", "GroupDesiredCapacity", "GroupTotalInstances"],
            capacity_reservation_specification=reservation,
            mixed_instances_policy=AutoscalingGroupMixedInstancesPolicy(
                instances_distribution=AutoscalingGroupMixedInstancesPolicyInstancesDistribution(
                    on_demand_allocation_strategy="prioritized",
                    on_demand_base_capacity=on_demand_base,
                    on_demand_percentage_above_base_capacity=0,
                    spot_allocation_strategy="price-capacity-optimized",
                ),
                launch_template=AutoscalingGroupMixedInstancesPolicyLaunchTemplate(
                    launch_template_specification=AutoscalingGroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecification(
                        launch_template_id=self.launch_template.id,
                        # A new template version changes the group, which starts an instance refresh.
                        version=Token.as_string(self.launch_template.latest_version),
                    ),
                    override=[
                        AutoscalingGroupMixedInstancesPolicyLaunchTemplateOverride(instance_type=t)
                        for t in instance_types
                    ],
                ),
            ),
            instance_refresh=AutoscalingGroupInstanceRefresh(
                strategy="Rolling",
                preferences=AutoscalingGroupInstanceRefreshPreferences(
                    min_healthy_percentage=100,
                    max_healthy_percentage=200,
                    instance_warmup=str(cold_start_s),
                    skip_matching=True,
                    auto_rollback=True,
                ),
            ),
            # The Aspect skips ASGs: their tags are blocks that also propagate to the instances.
            tag=[
                AutoscalingGroupTag(key=k, value=v, propagate_at_launch=True)
                for k, v in {**tags, "Name": f"{name}-gpu"}.items()
            ],
            lifecycle=TerraformResourceLifecycle(ignore_changes=["desired_capacity"]),
        )
        self.lifecycle_hook = AutoscalingLifecycleHook(
            self,
            "drain_hook",
            name=AWS_LIFECYCLE_HOOK,
            autoscaling_group_name=self.asg.name,
            lifecycle_transition="autoscaling:EC2_INSTANCE_TERMINATING",
            heartbeat_timeout=lifecycle_heartbeat_s,
            default_result="CONTINUE",
        )
        self.scaling_policy = AutoscalingPolicy(
            self,
            "target_tracking",
            name=f"{name}-{autoscale_metric}".replace("_", "-")[:255],
            autoscaling_group_name=self.asg.name,
            policy_type="TargetTrackingScaling",
            estimated_instance_warmup=cold_start_s,
            target_tracking_configuration=_target_tracking(autoscale_metric, autoscale_target, group_name),
        )


def _target_tracking(metric: str, target: float, asg_name: str) -> AutoscalingPolicyTargetTrackingConfiguration:
    if metric == "cpu_utilization":
        return AutoscalingPolicyTargetTrackingConfiguration(
            predefined_metric_specification=AutoscalingPolicyTargetTrackingConfigurationPredefinedMetricSpecification(
                predefined_metric_type="ASGAverageCPUUtilization"
            ),
            target_value=target,
        )
    name = {"requests_in_flight_per_instance": AWS_IN_FLIGHT_METRIC, "gpu_utilization": AWS_GPU_UTILIZATION_METRIC}[
        metric
    ]
    return AutoscalingPolicyTargetTrackingConfiguration(
        customized_metric_specification=AutoscalingPolicyTargetTrackingConfigurationCustomizedMetricSpecification(
            metric_name=name,
            namespace=AWS_METRICS_NAMESPACE,
            statistic="Average",
            metric_dimension=[
                AutoscalingPolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricDimension(
                    name=AWS_METRIC_DIMENSION, value=asg_name
                )
            ],
        ),
        target_value=target,
    )
