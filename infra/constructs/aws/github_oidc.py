"""The AWS half of the GitHub Actions trust (`infra.constructs.github_oidc`): the IAM OIDC
provider, the plan role and one deploy role per GitHub environment, each with one inline policy.

The audience is `sts.amazonaws.com` (the configure-aws-credentials default). Policies are
separate `aws_iam_role_policy` resources (the role's `inline_policy` and `managed_policy_arns`
arguments are deprecated in hashicorp/aws 5.x).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from infra.catalog import Cloud
from infra.config import Fleet
from infra.constructs.github_oidc import GITHUB_OIDC_HOST, GITHUB_OIDC_URL, deploy_environments, resource_suffix
from infra.naming import GLOBAL_STACK

if TYPE_CHECKING:
    from cdktf_cdktf_provider_aws.data_aws_iam_openid_connect_provider import DataAwsIamOpenidConnectProvider
    from cdktf_cdktf_provider_aws.iam_openid_connect_provider import IamOpenidConnectProvider
    from cdktf_cdktf_provider_aws.iam_role import IamRole
    from constructs import Construct

AWS_AUDIENCE = "sts.amazonaws.com"


def aws_trust_policy(provider_arn: str, repository: str, subjects: list[str]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{GITHUB_OIDC_HOST}:aud": AWS_AUDIENCE,
                            f"{GITHUB_OIDC_HOST}:sub": [f"repo:{repository}:{s}" for s in subjects],
                        }
                    },
                }
            ],
        },
        sort_keys=True,
    )


@dataclass(frozen=True)
class AwsGithubOidc:
    provider: IamOpenidConnectProvider | DataAwsIamOpenidConnectProvider  # created, or the account's
    plan_role: IamRole
    deploy_roles: dict[str, IamRole]  # GitHub environment (stack name) -> role


def aws_github_oidc(
    scope: Construct, *, fleet: Fleet, state_bucket_arn: str, state_key_arn: str, zone_id: str
) -> AwsGithubOidc:
    """The OIDC trust and one inline policy per role (infra/constructs/aws/ci_policies.py): the
    state bucket's ARN and key, and the fleet's hosted zone, scope what each role may touch."""
    # Deferred: a stack that only needs one cloud never pays for the other's bindings.
    from cdktf_cdktf_provider_aws.data_aws_iam_openid_connect_provider import DataAwsIamOpenidConnectProvider
    from cdktf_cdktf_provider_aws.iam_openid_connect_provider import IamOpenidConnectProvider
    from cdktf_cdktf_provider_aws.iam_role import IamRole
    from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy

    from infra.constructs.aws import ci_policies as ci

    repo = fleet.github.repository
    provider: IamOpenidConnectProvider | DataAwsIamOpenidConnectProvider
    if fleet.github.oidc_provider == "existing":
        # IAM allows one OIDC provider per URL in an account (a second CreateOpenIDConnectProvider
        # fails with EntityAlreadyExists): read the one that exists. It must list the
        # sts.amazonaws.com audience, as the created one does.
        provider = DataAwsIamOpenidConnectProvider(scope, "github_oidc_provider", url=GITHUB_OIDC_URL)
    else:
        provider = IamOpenidConnectProvider(
            scope,
            "github_oidc_provider",
            url=GITHUB_OIDC_URL,
            client_id_list=[AWS_AUDIENCE],
        )
    state = {"bucket_arn": state_bucket_arn, "key_arn": state_key_arn}
    plan = IamRole(
        scope,
        "github_plan_role",
        name=f"{fleet.project}-github-plan",
        description=f"terraform plan from pull requests of {repo}",
        assume_role_policy=aws_trust_policy(provider.arn, repo, ["pull_request"]),
        max_session_duration=3600,
    )
    IamRolePolicy(scope, "github_plan_role_policy", role=plan.id, policy=json.dumps(ci.plan_policy(fleet, **state)))
    deploy: dict[str, IamRole] = {}
    for env in deploy_environments(fleet):
        suffix = resource_suffix(env)
        role = IamRole(
            scope,
            f"github_deploy_role_{suffix}",
            name=f"{fleet.project}-github-deploy-{env}"[:64],
            description=f"terraform apply of {env} from the {env} environment of {repo}",
            assume_role_policy=aws_trust_policy(provider.arn, repo, [f"environment:{env}"]),
            max_session_duration=3600,
        )
        if env == GLOBAL_STACK:
            document = ci.global_deploy_policy(fleet, zone_id=zone_id, **state)
        elif fleet.region(env).cloud == Cloud.GCP:
            document = ci.gcp_region_deploy_policy(fleet, env, **state)
        else:
            document = ci.aws_region_deploy_policy(fleet, fleet.region(env), zone_id=zone_id, **state)
        IamRolePolicy(scope, f"github_deploy_role_{suffix}_policy", role=role.id, policy=json.dumps(document))
        deploy[env] = role
    return AwsGithubOidc(provider, plan, deploy)
