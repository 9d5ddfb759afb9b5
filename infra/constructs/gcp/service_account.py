"""The instances' own service account with least-privilege IAM.

Instances get the `cloud-platform` OAuth scope (Google's recommendation: access is then decided
by IAM alone) and only these roles: write logs, write metrics (the autoscaling metric),
read the API-keys secret (and the Hugging Face token secret when the fleet names one), and read
the weights mirror bucket when the fleet has one.
Never the Compute Engine default service account.
"""

from __future__ import annotations

from collections.abc import Mapping

from cdktf_cdktf_provider_google.project_iam_member import ProjectIamMember
from cdktf_cdktf_provider_google.secret_manager_secret_iam_member import SecretManagerSecretIamMember
from cdktf_cdktf_provider_google.service_account import ServiceAccount
from cdktf_cdktf_provider_google.storage_bucket_iam_member import StorageBucketIamMember
from constructs import Construct

from infra.tagging import gcp_name

PROJECT_ROLES = ("roles/logging.logWriter", "roles/monitoring.metricWriter")
SECRET_ROLE = "roles/secretmanager.secretAccessor"  # noqa: S105 - a role name
BUCKET_ROLE = "roles/storage.objectViewer"
SCOPES = ("cloud-platform",)
# service account ids: 6 to 30 characters.
ACCOUNT_ID_MAX = 30


def _rid(role: str) -> str:
    """roles/logging.logWriter -> logging_logWriter (a construct id)."""
    return role.removeprefix("roles/").replace(".", "_")


def weights_bucket(mirror: str | None) -> str | None:
    """The bucket of a gs:// weights mirror (None for s3:// or no mirror)."""
    if mirror is None or not mirror.startswith("gs://"):
        return None
    return mirror.removeprefix("gs://").split("/", 1)[0]


def _snake(camel: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(camel))


class GcpServiceAccount(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name: str,
        project: str,
        api_keys_secret: str,
        weights_mirror: str | None,
        optional_secrets: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.account = ServiceAccount(
            self,
            "account",
            account_id=gcp_name(name, max_len=ACCOUNT_ID_MAX),
            display_name=f"llm-fleet instances ({name})",
            description="Identity of the inference instances; least privilege",
            project=project,
        )
        self.member = f"serviceAccount:{self.account.email}"
        self.scopes = list(SCOPES)
        self.project_roles = [
            ProjectIamMember(self, f"role_{_rid(role)}", project=project, role=role, member=self.member)
            for role in PROJECT_ROLES
        ]
        self.secret_access = SecretManagerSecretIamMember(
            self,
            "api_keys_reader",
            project=project,
            secret_id=api_keys_secret,
            role=SECRET_ROLE,
            member=self.member,
        )
        # The Hugging Face token, the registry credentials: readable only when the fleet names them.
        self.optional_secret_access = {
            purpose: SecretManagerSecretIamMember(
                self,
                f"{_snake(purpose)}_reader",
                project=project,
                secret_id=secret,
                role=SECRET_ROLE,
                member=self.member,
            )
            for purpose, secret in (optional_secrets or {}).items()
        }
        bucket = weights_bucket(weights_mirror)
        self.weights_reader = (
            StorageBucketIamMember(self, "weights_reader", bucket=bucket, role=BUCKET_ROLE, member=self.member)
            if bucket is not None
            else None
        )
