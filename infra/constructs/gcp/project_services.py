"""The Google APIs the fleet's GCP side needs, enabled once in the bootstrap stack.

A fresh project has most APIs off, so the first `terraform apply` of a `gcp-<region>` stack (or
the CI login) fails with SERVICE_DISABLED. `required_services(fleet)` is the one list of what the
stacks, the instances and the CI login call; `GcpProjectServices` enables each with
`google_project_service`, and never disables one on destroy: other stacks, the instances and
other tenants of the project keep using them after a `terraform destroy` of bootstrap.
"""

from __future__ import annotations

from cdktf_cdktf_provider_google.project_service import ProjectService
from constructs import Construct

from infra.catalog import Cloud
from infra.config import Fleet

# Every API, with the callers that need it. (Service Usage itself must already be on for
# google_project_service to work; new projects have it, and listing it keeps it on.)
BASE_SERVICES: dict[str, str] = {
    "serviceusage.googleapis.com": "google_project_service itself (terraform)",
    "cloudresourcemanager.googleapis.com": "project IAM policy reads/writes (google_project_iam_member)",
    "compute.googleapis.com": "VPC, NAT, firewall, templates, MIGs, autoscalers, load balancer",
    "certificatemanager.googleapis.com": "regional Google-managed certificate and its DNS authorization",
    "secretmanager.googleapis.com": "API-key (and Hugging Face token) secrets: IAM on them, reads at boot",
    "monitoring.googleapis.com": "per-instance custom metrics the autoscalers track",
    "logging.googleapis.com": "boot and service logs from the instances",
    "iam.googleapis.com": "service accounts, workload identity pool",
    "iamcredentials.googleapis.com": "CI: short-lived tokens of the plan / deploy service accounts",
    "sts.googleapis.com": "CI: exchanging the GitHub OIDC token (workload identity federation)",
    "oslogin.googleapis.com": "OS Login, which every instance template turns on",
}
STORAGE_SERVICE = "storage.googleapis.com"  # only with a gs:// weights mirror


def required_services(fleet: Fleet) -> list[str]:
    """The APIs to enable for this fleet, sorted (a gs:// weights mirror adds Cloud Storage)."""
    services = set(BASE_SERVICES)
    if fleet.model.mirror(Cloud.GCP):
        services.add(STORAGE_SERVICE)
    return sorted(services)


class GcpProjectServices(Construct):
    def __init__(self, scope: Construct, id_: str, *, fleet: Fleet, project: str) -> None:
        super().__init__(scope, id_)
        self.services: dict[str, ProjectService] = {
            service: ProjectService(
                self,
                service.split(".", 1)[0],
                project=project,
                service=service,
                # google_project_service docs: disable_on_destroy "should generally only be true in
                # configurations that manage the project itself"; this one does not.
                disable_on_destroy=False,
                disable_dependent_services=False,
            )
            for service in required_services(fleet)
        }

    def of(self, *services: str) -> list[ProjectService]:
        """The resources enabling these APIs (for depends_on)."""
        return [self.services[s] for s in services]
