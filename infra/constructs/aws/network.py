"""A VPC over two or three AZs: public subnets (ALB, NAT), private subnets (instances).

Instances reach the internet (image registry, model hub, SSM, Secrets Manager) through one
NAT gateway per AZ, so an AZ outage never cuts the other AZ's egress. VPC flow logs go to a
KMS-encrypted CloudWatch log group (the same key encrypts the region's other log groups, named
by `encrypted_log_groups`); the default security group is emptied.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from cdktf import Fn, Token
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.data_aws_availability_zones import (
    DataAwsAvailabilityZones,
    DataAwsAvailabilityZonesFilter,
)
from cdktf_cdktf_provider_aws.default_security_group import DefaultSecurityGroup
from cdktf_cdktf_provider_aws.eip import Eip
from cdktf_cdktf_provider_aws.flow_log import FlowLog
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.internet_gateway import InternetGateway
from cdktf_cdktf_provider_aws.nat_gateway import NatGateway
from cdktf_cdktf_provider_aws.route import Route
from cdktf_cdktf_provider_aws.route_table import RouteTable
from cdktf_cdktf_provider_aws.route_table_association import RouteTableAssociation
from cdktf_cdktf_provider_aws.subnet import Subnet
from cdktf_cdktf_provider_aws.vpc import Vpc
from constructs import Construct

from infra.constructs.aws.kms import customer_key

LOG_RETENTION_DAYS = 365


class AwsNetwork(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name: str,
        region: str,
        account_id: str,
        partition: str,
        cidr: str = "10.0.0.0/16",
        zones: Sequence[str],
        az_count: int,
        encrypted_log_groups: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, id_)
        if not 2 <= az_count <= len(zones):
            raise ValueError(f"az_count: {az_count} of {len(zones)} allowed zones; the network spans at least 2")
        # An allowlist of zone names (the catalogue's) keeps the set closed when AWS adds a zone;
        # the first `az_count` available ones are used (more zones, more spot capacity pools).
        azs = DataAwsAvailabilityZones(
            self,
            "azs",
            state="available",
            filter=[DataAwsAvailabilityZonesFilter(name="zone-name", values=list(zones))],
        )
        self.vpc = Vpc(self, "vpc", cidr_block=cidr, enable_dns_hostnames=True, enable_dns_support=True)
        self.vpc.tags = {"Name": name}
        DefaultSecurityGroup(self, "default_sg", vpc_id=self.vpc.id)  # no rules: deny all
        self.igw = InternetGateway(self, "igw", vpc_id=self.vpc.id)

        public_rt = RouteTable(self, "public_rt", vpc_id=self.vpc.id)
        Route(
            self,
            "public_default",
            route_table_id=public_rt.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=self.igw.id,
        )

        self.public_subnets: list[Subnet] = []
        self.private_subnets: list[Subnet] = []
        self.nat_gateways: list[NatGateway] = []
        for i in range(az_count):
            az = Token.as_string(Fn.element(azs.names, i))
            public = Subnet(
                self,
                f"public_{i}",
                vpc_id=self.vpc.id,
                availability_zone=az,
                cidr_block=Fn.cidrsubnet(cidr, 4, i),
                map_public_ip_on_launch=False,
                tags={"Name": f"{name}-public-{i}", "Tier": "public"},
            )
            private = Subnet(
                self,
                f"private_{i}",
                vpc_id=self.vpc.id,
                availability_zone=az,
                cidr_block=Fn.cidrsubnet(cidr, 4, 8 + i),
                tags={"Name": f"{name}-private-{i}", "Tier": "private"},
            )
            RouteTableAssociation(self, f"public_rta_{i}", subnet_id=public.id, route_table_id=public_rt.id)
            eip = Eip(self, f"nat_eip_{i}", domain="vpc", depends_on=[self.igw])
            nat = NatGateway(self, f"nat_{i}", allocation_id=eip.id, subnet_id=public.id, depends_on=[self.igw])
            private_rt = RouteTable(self, f"private_rt_{i}", vpc_id=self.vpc.id)
            Route(
                self,
                f"private_default_{i}",
                route_table_id=private_rt.id,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nat.id,
            )
            RouteTableAssociation(self, f"private_rta_{i}", subnet_id=private.id, route_table_id=private_rt.id)
            self.public_subnets.append(public)
            self.private_subnets.append(private)
            self.nat_gateways.append(nat)

        self._flow_logs(
            name=name,
            region=region,
            account_id=account_id,
            partition=partition,
            encrypted_log_groups=encrypted_log_groups,
        )

    def _flow_logs(
        self, *, name: str, region: str, account_id: str, partition: str, encrypted_log_groups: Sequence[str]
    ) -> None:
        log_group_name = f"/{name}/vpc-flow-logs"
        log_group_arn = f"arn:{partition}:logs:{region}:{account_id}:log-group:{log_group_name}"
        # The same key encrypts the region's other log groups (the instances' logs); CloudWatch
        # Logs may use it only for these groups (KMS encryption context aws:logs:arn).
        key_users = [log_group_arn] + [
            f"arn:{partition}:logs:{region}:{account_id}:log-group:{group}" for group in encrypted_log_groups
        ]
        self.log_key = customer_key(
            self,
            "log_key",
            description=f"{name} VPC flow logs and instance logs",
            account_root=f"arn:{partition}:iam::{account_id}:root",
            statements=[
                {
                    "Sid": "CloudWatchLogsUsesKey",
                    "Effect": "Allow",
                    "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                    "Action": [
                        "kms:Encrypt*",
                        "kms:Decrypt*",
                        "kms:ReEncrypt*",
                        "kms:GenerateDataKey*",
                        "kms:Describe*",
                    ],
                    "Resource": "*",
                    "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": key_users}},
                }
            ],
        )
        self.flow_log_group = CloudwatchLogGroup(
            self, "flow_logs", name=log_group_name, retention_in_days=LOG_RETENTION_DAYS, kms_key_id=self.log_key.arn
        )
        role = IamRole(
            self,
            "flow_log_role",
            name_prefix=f"{name}-flow-"[:38],
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                        }
                    ],
                }
            ),
        )
        IamRolePolicy(
            self,
            "flow_log_policy",
            role=role.id,
            policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                            "Resource": [log_group_arn, f"{log_group_arn}:*"],
                        }
                    ],
                }
            ),
        )
        FlowLog(
            self,
            "flow_log",
            vpc_id=self.vpc.id,
            traffic_type="ALL",
            log_destination=self.flow_log_group.arn,
            iam_role_arn=role.arn,
        )
