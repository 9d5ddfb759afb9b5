"""The GCP half of the GitHub Actions trust (`infra.constructs.github_oidc`): a workload identity
pool and OIDC provider (the provider's default audience), a plan and a deploy service account,
and the bindings that let the matching workflow principals use them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from infra.catalog import Cloud
from infra.config import Fleet
from infra.constructs.github_oidc import GITHUB_OIDC_URL, deploy_environments, resource_suffix
from infra.naming import GLOBAL_STACK

if TYPE_CHECKING:
    from cdktf import ITerraformDependable
    from cdktf_cdktf_provider_google.iam_workload_identity_pool import IamWorkloadIdentityPool
    from cdktf_cdktf_provider_google.iam_workload_identity_pool_provider import IamWorkloadIdentityPoolProvider
    from cdktf_cdktf_provider_google.service_account import ServiceAccount
    from constructs import Construct


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
        if env == GLOBAL_STACK or fleet.region(env).cloud != Cloud.GCP:
            continue  # AWS region stacks and global (Route 53 only) never touch GCP
        ServiceAccountIamMember(
            scope,
            f"github_deploy_binding_{resource_suffix(env)}",
            service_account_id=accounts["deploy"].name,
            role="roles/iam.workloadIdentityUser",
            member=f"{principal}:environment:{env}",
        )
    return GcpGithubOidc(pool, provider, accounts["plan"], accounts["deploy"])
