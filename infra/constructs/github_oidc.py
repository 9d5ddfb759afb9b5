"""OIDC trust for GitHub Actions: the only way the deploy workflow reaches the clouds.

What both clouds' trusts share: GitHub's token issuer and the GitHub environments the deploy
workflow applies through (one per stack). Each cloud's half, wired into the bootstrap stack:

- `infra.constructs.aws.github_oidc.aws_github_oidc(scope, fleet=...)`: the IAM OIDC provider
  for token.actions.githubusercontent.com (created, or with `github.oidc_provider: existing` the
  account's own, read by a data source), a read-only *plan* role whose trust pins
  `repo:<repository>:pull_request`, and one *deploy* role per GitHub environment (one per
  stack that the workflow applies) whose trust pins `repo:<repository>:environment:<stack>`.
- `infra.constructs.gcp.github_oidc.gcp_github_oidc(scope, fleet=...)`: a workload identity
  pool + OIDC provider whose attribute_condition pins `assertion.repository` and admits only
  the subjects the workflows use (`repo:<repository>:pull_request`,
  `repo:<repository>:environment:*`), a plan and a deploy service account, and
  `roles/iam.workloadIdentityUser` bindings for the matching principals.

What each role may do, scoped to what its stacks touch: `infra/constructs/aws/ci_policies.py`
(AWS: one inline policy per role) and `infra/constructs/gcp/ci_roles.py` (GCP project roles).
"""

from __future__ import annotations

from infra.config import Fleet
from infra.naming import BOOTSTRAP_STACK

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_URL = f"https://{GITHUB_OIDC_HOST}"


def deploy_environments(fleet: Fleet) -> list[str]:
    """GitHub environments the deploy workflow applies through: every region stack and global.

    GCP region stacks are included: their Terraform state lives in the fleet's S3 bucket.
    """
    return [name for name in fleet.stack_names() if name != BOOTSTRAP_STACK]


def resource_suffix(env: str) -> str:
    """A Terraform-id-safe suffix for an environment (stack) name."""
    return env.replace("-", "_")
