"""OIDC trust for GitHub Actions: the only way the deploy workflow reaches the clouds.

Two construct functions, wired into the bootstrap stack:

- `aws_github_oidc(scope, fleet=...)`: the IAM OIDC provider for
  token.actions.githubusercontent.com (created, or with `github.oidc_provider: existing` the
  account's own, read by a data source), a read-only *plan* role whose trust pins
  `repo:<repository>:pull_request`, and one *deploy* role per GitHub environment (one per
  stack that the workflow applies) whose trust pins `repo:<repository>:environment:<stack>`.
- `gcp_github_oidc(scope, fleet=...)`: a workload identity pool + OIDC provider whose
  attribute_condition pins `assertion.repository` and admits only the subjects the workflows
  use (`repo:<repository>:pull_request`, `repo:<repository>:environment:*`), a plan and a
  deploy service account, and `roles/iam.workloadIdentityUser` bindings for the matching
  principals.

The audience is `sts.amazonaws.com` (AWS, the configure-aws-credentials default) and the
provider's default audience on GCP. What each role may do, scoped to what its stacks touch:
`infra/constructs/aws_ci_policies.py` (AWS: one inline policy per role) and
`infra/constructs/gcp_ci_roles.py` (GCP project roles).
Policies are separate `aws_iam_role_policy` resources (the role's `inline_policy` and
`managed_policy_arns` arguments are deprecated in hashicorp/aws 5.x).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from infra.config import Fleet

if TYPE_CHECKING:
    from cdktf import ITerraformDependable
    from cdktf_cdktf_provider_aws.data_aws_iam_openid_connect_provider import DataAwsIamOpenidConnectProvider
    from cdktf_cdktf_provider_aws.iam_openid_connect_provider import IamOpenidConnectProvider
    from cdktf_cdktf_provider_aws.iam_role import IamRole
    from cdktf_cdktf_provider_google.iam_workload_identity_pool import IamWorkloadIdentityPool
    from cdktf_cdktf_provider_google.iam_workload_identity_pool_provider import IamWorkloadIdentityPoolProvider
    from cdktf_cdktf_provider_google.service_account import ServiceAccount
    from constructs import Construct

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_URL = f"https://{GITHUB_OIDC_HOST}"
AWS_AUDIENCE = "sts.amazonaws.com"


def deploy_environments(fleet: Fleet) -> list[str]:
    """GitHub environments the deploy workflow applies through: every region stack and global.

    GCP region stacks are included: their Terraform state lives in the fleet's S3 bucket.
    """
    return [name for name in fleet.stack_names() if name != "bootstrap"]


def resource_suffix(env: str) -> str:
    """A Terraform-id-safe suffix for an environment (stack) name."""
    return env.replace("-", "_")


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
    """The OIDC trust and one inline policy per role (infra/constructs/aws_ci_policies.py): the
    state bucket's ARN and key, and the fleet's hosted zone, scope what each role may touch."""
    # Deferred: a stack that only needs one cloud never pays for the other's bindings.
    from cdktf_cdktf_provider_aws.data_aws_iam_openid_connect_provider import DataAwsIamOpenidConnectProvider
    from cdktf_cdktf_provider_aws.iam_openid_connect_provider import IamOpenidConnectProvider
    from cdktf_cdktf_provider_aws.iam_role import IamRole
    from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy

    from infra.constructs import aws_ci_policies as ci

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
        if env == "global":
            document = ci.global_deploy_policy(fleet, zone_id=zone_id, **state)
        elif env.startswith("gcp-"):
            document = ci.gcp_region_deploy_policy(fleet, env, **state)
        else:
            document = ci.aws_region_deploy_policy(fleet, env, fleet.region(env).region, zone_id=zone_id, **state)
        IamRolePolicy(scope, f"github_deploy_role_{suffix}_policy", role=role.id, policy=json.dumps(document))
        deploy[env] = role
    return AwsGithubOidc(provider, plan, deploy)


def gcp_attribute_condition(repository: str) -> str:
    """CEL: tokens of this repository's pull requests and deployment environments only."""
    subject = f"repo:{repository}"
    return (
        f"assertion.repository == '{repository}' && "
        f"(assertion.sub == '{subject}:pull_request' || assertion.sub.startsWith('{subject}:environment:'))"
    )


@dataclass(frozen=True)
class GcpGithubOidc:
    pool: IamWorkloadIdentityPool
    provider: IamWorkloadIdentityPoolProvider
    plan_account: ServiceAccount
    deploy_account: ServiceAccount


def gcp_github_oidc(
    scope: Construct, *, fleet: Fleet, depends_on: Sequence[ITerraformDependable] = ()
) -> GcpGithubOidc:
    """`depends_on`: the API enablement (IAM, STS, IAM credentials) the pool and accounts need."""
    from cdktf_cdktf_provider_google.iam_workload_identity_pool import IamWorkloadIdentityPool
    from cdktf_cdktf_provider_google.iam_workload_identity_pool_provider import (
        IamWorkloadIdentityPoolProvider,
        IamWorkloadIdentityPoolProviderOidc,
    )
    from cdktf_cdktf_provider_google.service_account import ServiceAccount
    from cdktf_cdktf_provider_google.service_account_iam_member import ServiceAccountIamMember

    if fleet.gcp.project is None:
        raise ValueError("gcp.project: required for the GitHub workload identity pool of a fleet with gcp regions")
    project = fleet.gcp.project
    repo = fleet.github.repository
    pool = IamWorkloadIdentityPool(
        scope,
        "github_pool",
        project=project,
        workload_identity_pool_id=f"{fleet.project}-github"[:32],
        display_name="GitHub Actions",
        description=f"workflows of {repo}",
        depends_on=list(depends_on),
    )
    provider = IamWorkloadIdentityPoolProvider(
        scope,
        "github_pool_provider",
        project=project,
        workload_identity_pool_id=pool.workload_identity_pool_id,
        workload_identity_pool_provider_id="github",
        display_name="GitHub Actions OIDC",
        attribute_mapping={
            "google.subject": "assertion.sub",
            "attribute.repository": "assertion.repository",
            "attribute.environment": "assertion.environment",
            "attribute.event_name": "assertion.event_name",
        },
        attribute_condition=gcp_attribute_condition(repo),
        oidc=IamWorkloadIdentityPoolProviderOidc(issuer_uri=GITHUB_OIDC_URL),
    )
    accounts: dict[str, ServiceAccount] = {}
    for kind in ("plan", "deploy"):
        accounts[kind] = ServiceAccount(
            scope,
            f"github_{kind}_account",
            project=project,
            account_id=f"{fleet.project}-gh-{kind}"[:30],
            display_name=f"GitHub Actions {kind} ({repo})",
            depends_on=list(depends_on),
        )
    principal = f"principal://iam.googleapis.com/{pool.name}/subject/repo:{repo}"
    ServiceAccountIamMember(
        scope,
        "github_plan_binding",
        service_account_id=accounts["plan"].name,
        role="roles/iam.workloadIdentityUser",
        member=f"{principal}:pull_request",
    )
    for env in deploy_environments(fleet):
        if not env.startswith("gcp-"):
            continue  # AWS region stacks and global (Route 53 only) never touch GCP
        ServiceAccountIamMember(
            scope,
            f"github_deploy_binding_{resource_suffix(env)}",
            service_account_id=accounts["deploy"].name,
            role="roles/iam.workloadIdentityUser",
            member=f"{principal}:environment:{env}",
        )
    return GcpGithubOidc(pool, provider, accounts["plan"], accounts["deploy"])
