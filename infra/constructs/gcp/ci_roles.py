"""What the GitHub Actions service accounts may do in the fleet's GCP project.

Without roles the workload identity login succeeds but `terraform plan` / `apply` of a
`gcp-<region>` stack is refused. Each account gets the narrowest predefined roles that cover
the resources those stacks read or write (docs/delivery.md lists them with the reason):

- plan (pull requests): read-only viewers, plus Security Reviewer to read the IAM policies the
  stacks add members to (project, secrets, weights bucket).
- deploy (the `gcp-*` environments): one admin role per resource family the stacks create, and
  the powerful ones fenced in: Project IAM Admin only with an IAM condition that limits the
  roles it may grant to the instances' two project roles ("Set limits on granting roles",
  `iam.googleapis.com/modifiedGrantsByRole`), Secret Manager Admin only on the fleet's secrets
  and Storage Admin only on the weights mirror bucket (bindings on those resources, which must
  exist before bootstrap is applied, as the API-keys secret already must).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf_cdktf_provider_google.project_iam_member import ProjectIamMember, ProjectIamMemberCondition
from cdktf_cdktf_provider_google.secret_manager_secret_iam_member import SecretManagerSecretIamMember
from cdktf_cdktf_provider_google.storage_bucket_iam_member import StorageBucketIamMember
from constructs import Construct

from infra.catalog import Cloud
from infra.config import Fleet
from infra.constructs.gcp.service_account import PROJECT_ROLES, weights_bucket
from infra.tagging import suppress

# role -> what of the gcp-* stacks it covers
PLAN_ROLES: dict[str, str] = {
    "roles/compute.viewer": "every Compute resource (network, firewall, templates, MIGs, autoscalers, LB)",
    "roles/iam.serviceAccountViewer": "the instances' service account",
    "roles/iam.securityReviewer": "the IAM policies the stacks add members to: project, secrets, weights bucket",
    "roles/certificatemanager.viewer": "the regional certificate and its DNS authorization",
}
DEPLOY_ROLES: dict[str, str] = {
    "roles/compute.instanceAdmin.v1": "instance templates, regional MIGs and their autoscalers",
    "roles/compute.networkAdmin": "VPC, subnets, Cloud Router + NAT, address, health checks, backend service, "
    "URL maps, target proxies, forwarding rules, SSL policy",
    "roles/compute.securityAdmin": "the firewall rule (Network Admin may not write firewall rules)",
    "roles/certificatemanager.owner": "certificate and DNS authorization, deletion included (Editor cannot delete)",
    "roles/iam.serviceAccountAdmin": "create and update the instances' service account",
    "roles/iam.serviceAccountUser": "attach that account to the instance templates (iam.serviceAccounts.actAs)",
}
PROJECT_IAM_ADMIN = "roles/resourcemanager.projectIamAdmin"
SECRET_ADMIN = "roles/secretmanager.admin"  # noqa: S105 - a role name
BUCKET_ADMIN = "roles/storage.admin"
# checkov ids these CI grants trip, and why each is needed (suppressed beside the binding).
SERVICE_ACCOUNT_ROLE_REASONS: dict[str, dict[str, str]] = {
    "roles/iam.serviceAccountAdmin": {
        "CKV_GCP_49": "the gcp-* stacks create the instances' service account; the deploy account is usable "
        "only from the gcp-* GitHub environments (reviewers, main only)",
    },
    "roles/iam.serviceAccountUser": {
        "CKV_GCP_41": "instance templates that name a service account need iam.serviceAccounts.actAs on it; the "
        "account is created by the same apply, so the grant cannot name it beforehand",
        "CKV_GCP_49": "see CKV_GCP_41: actAs for the instances' own service account",
    },
}


def grantable_roles_condition(roles: tuple[str, ...]) -> str:
    """CEL: the caller may only add or remove bindings of these roles."""
    return f"api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly({json.dumps(list(roles))})"


def fleet_secrets(fleet: Fleet) -> list[str]:
    """Secret Manager secrets the instances read (the deploy account manages their IAM)."""
    return [fleet.service.api_keys_secret, *fleet.service.optional_secrets.values()]


@dataclass(frozen=True)
class GcpCiRoles:
    plan: list[ProjectIamMember]
    deploy: list[ProjectIamMember]
    secrets: list[SecretManagerSecretIamMember]
    bucket: StorageBucketIamMember | None


def grant_ci_roles(scope: Construct, *, fleet: Fleet, project: str, plan_member: str, deploy_member: str) -> GcpCiRoles:
    def member(rid: str, role: str, who: str, condition: ProjectIamMemberCondition | None = None) -> ProjectIamMember:
        binding = ProjectIamMember(scope, rid, project=project, role=role, member=who, condition=condition)
        if role in SERVICE_ACCOUNT_ROLE_REASONS:
            suppress(binding, SERVICE_ACCOUNT_ROLE_REASONS[role])
        return binding

    def rid(kind: str, role: str) -> str:
        return f"github_{kind}_{role.removeprefix('roles/').replace('.', '_')}"

    plan = [member(rid("plan", role), role, plan_member) for role in PLAN_ROLES]
    deploy = [member(rid("deploy", role), role, deploy_member) for role in DEPLOY_ROLES]
    deploy.append(
        member(
            rid("deploy", PROJECT_IAM_ADMIN),
            PROJECT_IAM_ADMIN,
            deploy_member,
            ProjectIamMemberCondition(
                title="instance roles only",
                description="May grant or revoke only the instances' project roles",
                expression=grantable_roles_condition(PROJECT_ROLES),
            ),
        )
    )
    secrets = [
        SecretManagerSecretIamMember(
            scope,
            f"github_deploy_secret_admin_{i}",
            project=project,
            secret_id=name,
            role=SECRET_ADMIN,
            member=deploy_member,
        )
        for i, name in enumerate(fleet_secrets(fleet))
    ]
    bucket_name = weights_bucket(fleet.model.mirror(Cloud.GCP))
    bucket = (
        StorageBucketIamMember(
            scope, "github_deploy_weights_bucket_admin", bucket=bucket_name, role=BUCKET_ADMIN, member=deploy_member
        )
        if bucket_name is not None
        else None
    )
    return GcpCiRoles(plan, deploy, secrets, bucket)
