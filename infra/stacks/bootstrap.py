"""`bootstrap`: the Terraform state bucket every other stack stores its state in, the OIDC
trust the deploy workflow uses to reach the clouds (infra/constructs/github_oidc.py), and the
one record every region shares: the ACM validation CNAME of the global name.

It keeps its own state locally (it creates the bucket the others need), so it is applied
once per account by an administrator before any regional stack; CI only plans it.

The Google provider (the project's APIs, workload identity pool, plan / deploy service
accounts) is added only when the fleet has GCP regions, so an AWS-only fleet's bootstrap imports no Google bindings
and validates and deploys with the AWS provider alone.

Outputs are named after the GitHub variables they fill (docs/delivery.md): `aws_plan_role_arn`
-> AWS_PLAN_ROLE_ARN, `aws_deploy_role_arns[<environment>]` -> AWS_DEPLOY_ROLE_ARN of that
environment, `gcp_workload_identity_provider`, `gcp_plan_service_account`,
`gcp_deploy_service_account` -> the GCP_* variables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cdktf import TerraformOutput
from cdktf_cdktf_provider_aws.provider import AwsProvider
from constructs import Construct

from infra.catalog import Cloud
from infra.config import Fleet
from infra.constructs.aws.github_oidc import AwsGithubOidc, aws_github_oidc
from infra.constructs.aws.global_name_validation import AwsGlobalNameValidation
from infra.constructs.aws.state_bucket import AwsStateBucket
from infra.naming import Backend
from infra.stacks.common import FleetStack

if TYPE_CHECKING:
    from infra.constructs.gcp.github_oidc import GcpGithubOidc


class BootstrapStack(FleetStack):
    def __init__(self, scope: Construct, id_: str, *, fleet: Fleet, backend: Backend) -> None:
        super().__init__(scope, id_, fleet=fleet, backend=backend, force_local=True)

        AwsProvider(self, "aws", region=fleet.state.region)
        self.bucket = AwsStateBucket(self, "state", bucket_name=fleet.state.bucket)
        TerraformOutput(self, "state_bucket_name", value=self.bucket.bucket.bucket)
        TerraformOutput(self, "state_bucket_arn", value=self.bucket.bucket.arn)
        TerraformOutput(self, "state_kms_key_arn", value=self.bucket.key.arn)

        # The global name's ACM validation record: shared by every region's certificate, so it
        # belongs to the stack that outlives them all.
        self.global_name_validation = AwsGlobalNameValidation(
            self, "global_name_validation", hosted_zone=fleet.global_.hosted_zone, domain=fleet.global_.domain
        )

        self.aws_oidc: AwsGithubOidc = aws_github_oidc(
            self,
            fleet=fleet,
            state_bucket_arn=self.bucket.bucket.arn,
            state_key_arn=self.bucket.key.arn,
            zone_id=self.global_name_validation.zone.zone_id,
        )
        TerraformOutput(self, "github_oidc_provider_arn", value=self.aws_oidc.provider.arn)
        TerraformOutput(self, "aws_plan_role_arn", value=self.aws_oidc.plan_role.arn)
        TerraformOutput(
            self,
            "aws_deploy_role_arns",
            value={env: role.arn for env, role in self.aws_oidc.deploy_roles.items()},
            description="AWS_DEPLOY_ROLE_ARN of each GitHub environment (one per stack)",
        )

        self.gcp_oidc: GcpGithubOidc | None = None
        if fleet.regions_of(Cloud.GCP):
            self.gcp_oidc = self._gcp_trust(fleet)

    def _gcp_trust(self, fleet: Fleet) -> GcpGithubOidc:
        # Deferred: only fleets with GCP regions pay for (and need a mirror of) the Google provider.
        from cdktf_cdktf_provider_google.provider import GoogleProvider

        from infra.constructs.gcp.ci_roles import grant_ci_roles
        from infra.constructs.gcp.github_oidc import gcp_github_oidc
        from infra.constructs.gcp.project_services import GcpProjectServices
        from infra.tagging import fleet_labels, label_gcp_resources

        if fleet.gcp.project is None:
            raise ValueError("gcp.project: required for a fleet with gcp regions")
        GoogleProvider(self, "google", project=fleet.gcp.project)
        label_gcp_resources(self, fleet_labels(fleet.project, self.stack_name, fleet.tags))
        # Every API the GCP stacks, the instances and the CI login use, in one place.
        self.gcp_services = GcpProjectServices(self, "gcp_services", fleet=fleet, project=fleet.gcp.project)
        trust = gcp_github_oidc(
            self,
            fleet=fleet,
            depends_on=self.gcp_services.of(
                "iam.googleapis.com", "iamcredentials.googleapis.com", "sts.googleapis.com"
            ),
        )
        # Without project roles the CI login works but every plan / apply is refused.
        self.gcp_ci_roles = grant_ci_roles(
            self,
            fleet=fleet,
            project=fleet.gcp.project,
            plan_member=f"serviceAccount:{trust.plan_account.email}",
            deploy_member=f"serviceAccount:{trust.deploy_account.email}",
        )
        TerraformOutput(self, "gcp_workload_identity_provider", value=trust.provider.name)
        TerraformOutput(self, "gcp_plan_service_account", value=trust.plan_account.email)
        TerraformOutput(self, "gcp_deploy_service_account", value=trust.deploy_account.email)
        return trust
