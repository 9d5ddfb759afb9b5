"""The OIDC trust constructs, synthesized: subjects pinned to fleet.github.repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.config import Fleet
from infra.constructs.aws.github_oidc import aws_github_oidc
from infra.constructs.gcp.github_oidc import gcp_github_oidc
from infra.constructs.github_oidc import deploy_environments

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synthesized(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from cdktf import App, TerraformStack
    from cdktf_cdktf_provider_aws.provider import AwsProvider
    from cdktf_cdktf_provider_google.provider import GoogleProvider

    out = tmp_path_factory.mktemp("oidc")
    app = App(outdir=str(out))
    stack = TerraformStack(app, "oidc")
    AwsProvider(stack, "aws", region="us-east-1")
    GoogleProvider(stack, "google", project=fleet.gcp.project)
    aws_github_oidc(
        stack,
        fleet=fleet,
        state_bucket_arn="arn:aws:s3:::llm-fleet-tfstate-example",
        state_key_arn="arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        zone_id="Z0123456789ABCDEFGHIJ",
    )
    gcp_github_oidc(stack, fleet=fleet)
    app.synth()
    doc: dict[str, Any] = json.loads((Path(out) / "stacks" / "oidc" / "cdk.tf.json").read_text(encoding="utf-8"))
    return doc["resource"]


def test_aws_roles_pin_repository_subjects(fleet: Fleet, synthesized: dict[str, Any]) -> None:
    repo = fleet.github.repository
    provider = next(iter(synthesized["aws_iam_openid_connect_provider"].values()))
    assert provider["url"] == "https://token.actions.githubusercontent.com"
    assert provider["client_id_list"] == ["sts.amazonaws.com"]
    roles = synthesized["aws_iam_role"]
    subjects = {}
    for role in roles.values():
        cond = json.loads(role["assume_role_policy"])["Statement"][0]["Condition"]["StringEquals"]
        assert cond["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
        subjects[role["name"]] = cond["token.actions.githubusercontent.com:sub"]
    assert subjects[f"{fleet.project}-github-plan"] == [f"repo:{repo}:pull_request"]
    for env in deploy_environments(fleet):
        assert subjects[f"{fleet.project}-github-deploy-{env}"] == [f"repo:{repo}:environment:{env}"]
    assert "bootstrap" not in deploy_environments(fleet)


def test_gcp_pool_condition_pins_repository(fleet: Fleet, synthesized: dict[str, Any]) -> None:
    provider = next(iter(synthesized["google_iam_workload_identity_pool_provider"].values()))
    repo = fleet.github.repository
    assert provider["attribute_condition"] == (
        f"assertion.repository == '{repo}' && (assertion.sub == 'repo:{repo}:pull_request'"
        f" || assertion.sub.startsWith('repo:{repo}:environment:'))"
    )
    assert provider["oidc"]["issuer_uri"] == "https://token.actions.githubusercontent.com"
    members = sorted(b["member"] for b in synthesized["google_service_account_iam_member"].values())
    assert any(m.endswith(f"repo:{fleet.github.repository}:pull_request") for m in members)
    assert any(m.endswith(":environment:gcp-asia-southeast1") for m in members)
    assert not any("environment:aws-" in m for m in members)
    assert not any(m.endswith(":environment:global") for m in members)  # global writes only Route 53
