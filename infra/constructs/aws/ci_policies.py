"""What each GitHub Actions role may do in AWS: only what its stacks touch.

Pure functions returning IAM policy documents (no cdktf), used by `github_oidc.aws_github_oidc`:

- plan (pull requests, every stack, `terraform plan -lock=false`): read every stack's state
  object and decrypt it, and the read-only calls of the services the stacks use. Not
  ReadOnlyAccess, which reads every S3 object (and DynamoDB item, log event, ...) in the account.
- deploy, `gcp-<region>`: its own state object and lock file only (the Google side is the GCP
  deploy account's).
- deploy, `global`: its own state, read of the regional stacks' state (remote state), Route 53
  changes in the fleet's hosted zone and health checks, and Global Accelerator when the fleet
  uses it.
- deploy, `aws-<region>`: its own state; the regional services the stack creates (EC2, ELB,
  Auto Scaling, ACM, CloudWatch Logs, alarms) only in its region; KMS keys tagged with its
  stack; IAM roles and instance profiles whose names start with its resource prefix, passable
  only to EC2 and VPC flow logs, with no managed policy but SSM core; the public GPU AMI
  parameter; its hosted zone's records.

Terraform S3 backend docs: `s3:ListBucket` on the bucket, `s3:GetObject`/`PutObject`/
`DeleteObject` on the state key and, with `use_lockfile`, on `<key>.tflock`; with `kms_key_id`,
`kms:Encrypt`, `kms:Decrypt` and `kms:GenerateDataKey` on the key.
"""

from __future__ import annotations

from typing import Any

from infra.config import Fleet, GlobalMode, RegionSpec
from infra.naming import BOOTSTRAP_STACK, GLOBAL_STACK, resource_prefix, state_key
from infra.tagging import STACK_TAG

Statement = dict[str, Any]
Policy = dict[str, Any]

GPU_AMI_PARAMETER_PATH = "/aws/service/deeplearning/*"
SSM_CORE_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
# Regional services an AWS region stack creates, allowed only in its region.
REGIONAL_SERVICES = ("ec2", "elasticloadbalancing", "autoscaling", "acm", "logs")
# Target tracking: Auto Scaling creates the CloudWatch alarms with the caller's permissions.
ALARM_ACTIONS = ("cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms")
SERVICE_LINKED_ROLES = ("autoscaling.amazonaws.com", "elasticloadbalancing.amazonaws.com", "spot.amazonaws.com")
PASSED_TO = ("ec2.amazonaws.com", "vpc-flow-logs.amazonaws.com")
# Read-only calls `terraform plan` makes for every resource type of the stacks.
PLAN_READ_ACTIONS = (
    "ec2:Describe*",
    "elasticloadbalancing:Describe*",
    "autoscaling:Describe*",
    "acm:DescribeCertificate",
    "acm:GetCertificate",
    "acm:ListCertificates",
    "acm:ListTagsForCertificate",
    "route53:Get*",
    "route53:List*",
    "iam:Get*",
    "iam:List*",
    "kms:Describe*",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:List*",
    "logs:Describe*",
    "logs:ListTagsForResource",
    "logs:ListTagsLogGroup",
    "cloudwatch:DescribeAlarms",
    "cloudwatch:ListTagsForResource",
    "globalaccelerator:Describe*",
    "globalaccelerator:List*",
)
# IAM names the regional stack creates start with `<project>-<region>`; IAM name prefixes are cut
# at 38 characters, so the pattern keeps the first 32 (every such name starts with them).
IAM_PREFIX_CHARS = 32


def policy(*statements: Statement) -> Policy:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def state_object(bucket_arn: str, project: str, stack: str) -> str:
    return f"{bucket_arn}/{state_key(project, stack)}"


def state_statements(
    *, bucket_arn: str, key_arn: str, project: str, write: str | None, read: list[str]
) -> list[Statement]:
    """Read `read` stacks' state; read and write (with its lock file) the `write` stack's."""
    statements: list[Statement] = [
        {"Sid": "ListStateBucket", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn}
    ]
    if read:
        statements.append(
            {
                "Sid": "ReadState",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": [state_object(bucket_arn, project, s) for s in read],
            }
        )
    kms = ["kms:Decrypt"]
    if write is not None:
        own = state_object(bucket_arn, project, write)
        statements.append(
            {
                "Sid": "WriteOwnStateAndLock",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": [own, f"{own}.tflock"],
            }
        )
        kms = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    statements.append({"Sid": "UseStateKey", "Effect": "Allow", "Action": kms, "Resource": key_arn})
    return statements


def plan_policy(fleet: Fleet, *, bucket_arn: str, key_arn: str) -> Policy:
    stacks = [n for n in fleet.stack_names() if n != BOOTSTRAP_STACK]
    return policy(
        *state_statements(bucket_arn=bucket_arn, key_arn=key_arn, project=fleet.project, write=None, read=stacks),
        {"Sid": "ReadStackResources", "Effect": "Allow", "Action": list(PLAN_READ_ACTIONS), "Resource": "*"},
        {
            "Sid": "ReadGpuAmiParameter",
            "Effect": "Allow",
            "Action": ["ssm:GetParameter", "ssm:GetParameters"],
            "Resource": f"arn:aws:ssm:*::parameter{GPU_AMI_PARAMETER_PATH}",
        },
    )


def zone_statements(zone_id: str) -> list[Statement]:
    return [
        {
            "Sid": "WriteFleetZoneRecords",
            "Effect": "Allow",
            "Action": [
                "route53:ChangeResourceRecordSets",
                "route53:GetHostedZone",
                "route53:ListResourceRecordSets",
                "route53:ListTagsForResource",
            ],
            "Resource": f"arn:aws:route53:::hostedzone/{zone_id}",
        },
        {
            "Sid": "FollowRoute53Changes",
            "Effect": "Allow",
            "Action": "route53:GetChange",
            "Resource": "arn:aws:route53:::change/*",
        },
        {
            "Sid": "FindFleetZone",
            "Effect": "Allow",
            "Action": ["route53:ListHostedZones", "route53:ListHostedZonesByName"],
            "Resource": "*",
        },
    ]


def gcp_region_deploy_policy(fleet: Fleet, stack: str, *, bucket_arn: str, key_arn: str) -> Policy:
    return policy(
        *state_statements(bucket_arn=bucket_arn, key_arn=key_arn, project=fleet.project, write=stack, read=[])
    )


def global_deploy_policy(fleet: Fleet, *, bucket_arn: str, key_arn: str, zone_id: str) -> Policy:
    regions = [r.stack_name for r in fleet.regions]
    statements = [
        *state_statements(
            bucket_arn=bucket_arn, key_arn=key_arn, project=fleet.project, write=GLOBAL_STACK, read=regions
        ),
        *zone_statements(zone_id),
        {"Sid": "CreateHealthChecks", "Effect": "Allow", "Action": "route53:CreateHealthCheck", "Resource": "*"},
        {
            "Sid": "ManageHealthChecks",
            "Effect": "Allow",
            "Action": [
                "route53:GetHealthCheck",
                "route53:UpdateHealthCheck",
                "route53:DeleteHealthCheck",
                "route53:ChangeTagsForResource",
                "route53:ListTagsForResource",
            ],
            "Resource": "arn:aws:route53:::healthcheck/*",
        },
    ]
    if fleet.global_.mode == GlobalMode.GLOBAL_ACCELERATOR:
        statements += [
            {
                "Sid": "ManageAccelerator",
                "Effect": "Allow",
                "Action": ["globalaccelerator:*", "elasticloadbalancing:DescribeLoadBalancers", "ec2:DescribeRegions"],
                "Resource": "*",
            },
            {
                "Sid": "AcceleratorServiceLinkedRole",
                "Effect": "Allow",
                "Action": "iam:CreateServiceLinkedRole",
                "Resource": "*",
                "Condition": {"StringEquals": {"iam:AWSServiceName": "globalaccelerator.amazonaws.com"}},
            },
        ]
    return policy(*statements)


def iam_prefix(fleet: Fleet, region: RegionSpec) -> str:
    """The start of every IAM name a regional stack creates (its resource prefix, cut)."""
    return resource_prefix(fleet, region)[:IAM_PREFIX_CHARS]


def aws_region_deploy_policy(fleet: Fleet, spec: RegionSpec, *, bucket_arn: str, key_arn: str, zone_id: str) -> Policy:
    stack, region = spec.stack_name, spec.region
    prefix = iam_prefix(fleet, spec)
    roles = f"arn:aws:iam::*:role/{prefix}*"
    in_region = {"StringEquals": {"aws:RequestedRegion": region}}
    return policy(
        *state_statements(bucket_arn=bucket_arn, key_arn=key_arn, project=fleet.project, write=stack, read=[]),
        {
            "Sid": "RegionalServices",
            "Effect": "Allow",
            "Action": [f"{service}:*" for service in REGIONAL_SERVICES] + list(ALARM_ACTIONS),
            "Resource": "*",
            "Condition": in_region,
        },
        {
            "Sid": "ReadGpuAmiParameter",
            "Effect": "Allow",
            "Action": ["ssm:GetParameter", "ssm:GetParameters"],
            "Resource": f"arn:aws:ssm:{region}::parameter{GPU_AMI_PARAMETER_PATH}",
        },
        {
            "Sid": "CreateStackKeys",
            "Effect": "Allow",
            "Action": ["kms:CreateKey", "kms:TagResource"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestedRegion": region, f"aws:RequestTag/{STACK_TAG}": stack}},
        },
        {
            "Sid": "ManageStackKeys",
            "Effect": "Allow",
            "Action": "kms:*",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestedRegion": region, f"aws:ResourceTag/{STACK_TAG}": stack}},
        },
        {"Sid": "ListKeys", "Effect": "Allow", "Action": ["kms:ListAliases", "kms:ListKeys"], "Resource": "*"},
        {
            "Sid": "ManageStackRoles",
            "Effect": "Allow",
            "Action": [
                "iam:CreateRole",
                "iam:DeleteRole",
                "iam:GetRole",
                "iam:UpdateRole",
                "iam:UpdateAssumeRolePolicy",
                "iam:TagRole",
                "iam:UntagRole",
                "iam:PutRolePolicy",
                "iam:GetRolePolicy",
                "iam:DeleteRolePolicy",
                "iam:ListRolePolicies",
                "iam:ListAttachedRolePolicies",
                "iam:ListInstanceProfilesForRole",
            ],
            "Resource": roles,
        },
        {
            "Sid": "AttachOnlySsmCore",
            "Effect": "Allow",
            "Action": ["iam:AttachRolePolicy", "iam:DetachRolePolicy"],
            "Resource": roles,
            "Condition": {"ArnEquals": {"iam:PolicyARN": SSM_CORE_POLICY}},
        },
        {
            "Sid": "ManageStackInstanceProfiles",
            "Effect": "Allow",
            "Action": [
                "iam:CreateInstanceProfile",
                "iam:DeleteInstanceProfile",
                "iam:GetInstanceProfile",
                "iam:AddRoleToInstanceProfile",
                "iam:RemoveRoleFromInstanceProfile",
                "iam:TagInstanceProfile",
                "iam:UntagInstanceProfile",
            ],
            "Resource": f"arn:aws:iam::*:instance-profile/{prefix}*",
        },
        {
            "Sid": "PassStackRoles",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": roles,
            "Condition": {"StringEquals": {"iam:PassedToService": list(PASSED_TO)}},
        },
        {
            "Sid": "ServiceLinkedRoles",
            "Effect": "Allow",
            "Action": "iam:CreateServiceLinkedRole",
            "Resource": "*",
            "Condition": {"StringEquals": {"iam:AWSServiceName": list(SERVICE_LINKED_ROLES)}},
        },
        *zone_statements(zone_id),
    )
