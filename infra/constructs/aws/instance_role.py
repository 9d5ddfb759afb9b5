"""Least-privilege instance profile for the GPU instances.

Allowed: SSM Session Manager (no SSH), reading the API-keys secret (and the Hugging Face token
secret when the fleet names one; Secrets Manager ARNs end in a random 6-character suffix, hence
`<name>-*`), reading the weights
mirror prefix (when it is on S3), publishing metrics in the fleet's namespace, reading its own
ASG, completing the termination lifecycle hook of its own ASG, marking itself Unhealthy in
its own ASG (SetInstanceHealth, used by the liveness agent; resource-level on the group ARN)
and writing to the region's instance log group.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from cdktf_cdktf_provider_aws.iam_instance_profile import IamInstanceProfile
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from constructs import Construct

from infra.tagging import suppress


def _s3_mirror(weights_mirror: str | None) -> tuple[str, str] | None:
    if not weights_mirror or not weights_mirror.startswith("s3://"):
        return None
    bucket, _, prefix = weights_mirror.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


class AwsInstanceRole(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name: str,
        region: str,
        account_id: str,
        partition: str,
        api_keys_secret: str,
        weights_mirror: str | None,
        optional_secrets: Mapping[str, str] | None = None,
        metrics_namespace: str,
        asg_name: str,
        log_group_name: str,
    ) -> None:
        super().__init__(scope, id_)
        self.role = IamRole(
            self,
            "role",
            name=f"{name}-instance"[:64],
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
                    ],
                }
            ),
        )
        IamRolePolicyAttachment(
            self,
            "ssm",
            role=self.role.name,
            policy_arn=f"arn:{partition}:iam::aws:policy/AmazonSSMManagedInstanceCore",
        )
        asg_arn = (
            f"arn:{partition}:autoscaling:{region}:{account_id}:autoScalingGroup:*:autoScalingGroupName/{asg_name}"
        )
        log_group_arn = f"arn:{partition}:logs:{region}:{account_id}:log-group:{log_group_name}"
        statements: list[dict[str, object]] = [
            {
                "Sid": "ReadApiKeys",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": f"arn:{partition}:secretsmanager:{region}:{account_id}:secret:{api_keys_secret}-*",
            },
            {
                "Sid": "PublishFleetMetrics",
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": metrics_namespace}},
            },
            {
                "Sid": "CompleteOwnLifecycleHook",
                "Effect": "Allow",
                "Action": "autoscaling:CompleteLifecycleAction",
                "Resource": asg_arn,
            },
            {
                # The liveness agent: `set-instance-health --health-status Unhealthy` when
                # /health/live fails past its threshold (the group's checks are EC2 only).
                "Sid": "ReportOwnLiveness",
                "Effect": "Allow",
                "Action": "autoscaling:SetInstanceHealth",
                "Resource": asg_arn,
            },
            {
                # Boot log and the service's JSON logs into the region's instance log group only
                # (the group exists: no CreateLogGroup). Streams are `<group>:log-stream:<name>`.
                "Sid": "WriteInstanceLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                "Resource": [log_group_arn, f"{log_group_arn}:*"],
            },
            {
                "Sid": "FindOwnGroup",
                "Effect": "Allow",
                "Action": "autoscaling:DescribeAutoScalingInstances",
                "Resource": "*",
            },
        ]
        # The Hugging Face token, the registry credentials: readable only when the fleet names them.
        statements += [
            {
                "Sid": f"Read{purpose}",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": f"arn:{partition}:secretsmanager:{region}:{account_id}:secret:{secret}-*",
            }
            for purpose, secret in (optional_secrets or {}).items()
        ]
        mirror = _s3_mirror(weights_mirror)
        if mirror is not None:
            bucket, prefix = mirror
            statements += [
                {
                    "Sid": "ListWeights",
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": f"arn:{partition}:s3:::{bucket}",
                    "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*" if prefix else "*"]}},
                },
                {
                    "Sid": "ReadWeights",
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:{partition}:s3:::{bucket}/{prefix + '/' if prefix else ''}*",
                },
            ]
        self.policy = IamRolePolicy(
            self,
            "policy",
            role=self.role.id,
            policy=json.dumps({"Version": "2012-10-17", "Statement": statements}),
        )
        suppress(
            self.policy,
            {
                "CKV_AWS_290": "cloudwatch:PutMetricData supports no resource ARN; it is limited by a namespace "
                "condition",
                "CKV_AWS_355": "PutMetricData and DescribeAutoScalingInstances support no resource ARN",
            },
        )
        self.profile = IamInstanceProfile(self, "profile", name=f"{name}-instance"[:128], role=self.role.name)
