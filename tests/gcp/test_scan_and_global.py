"""checkov on the GCP stacks, and a mixed AWS + GCP fleet's global stack.

The global stack validates with the local hashicorp/aws mirror. Its offline deploy (moto) is
the AWS tier's: there, the GCP region's remote state is a state file holding only the outputs
a deployed `gcp-<region>` stack leaves, because the Google provider cannot run offline. The
contract test below keeps those output names and this stack's outputs the same.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.gcp.conftest import Synthesized

# Checks that must run and pass on every GCP stack (they guard the requirements).
REQUIRED_CHECKS = {
    "CKV_GCP_2": "no SSH from the internet",
    "CKV_GCP_26": "subnet flow logs",
    "CKV_GCP_30": "not the default service account",
    "CKV_GCP_31": "not the default service account with full access",
    "CKV_GCP_32": "project SSH keys blocked",
    "CKV_GCP_34": "OS Login",
    "CKV_GCP_35": "serial port off",
    "CKV_GCP_36": "no IP forwarding",
    "CKV_GCP_39": "shielded VM",
    "CKV_GCP_40": "no public IP",
    "CKV_GCP_74": "private Google access",
}
REMOTE_OUTPUT = re.compile(r"data\.terraform_remote_state\.remote_gcp_[a-z0-9_]+\.outputs\.([a-z_]+)")


@pytest.mark.checkov
@pytest.mark.slow
def test_checkov_clean(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in checkov_report["results"]["failed_checks"]]
    assert failed == []
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0


@pytest.mark.checkov
@pytest.mark.slow
def test_checkov_required_checks_ran_and_passed(checkov_report: dict[str, Any], synthesized: Synthesized) -> None:
    results = checkov_report["results"]
    passed: dict[str, set[str]] = {}
    for check in results["passed_checks"]:
        passed.setdefault(check["check_id"], set()).add(check["file_path"].split("/")[-2])
    stacks = {stack for _, stack in synthesized.gcp_stacks()}
    for check_id, what in REQUIRED_CHECKS.items():
        assert passed.get(check_id) == stacks, f"{check_id} ({what}) did not pass on every GCP stack"


@pytest.mark.checkov
@pytest.mark.slow
def test_suppressions_carry_reasons(checkov_report: dict[str, Any]) -> None:
    for check in checkov_report["results"]["skipped_checks"]:
        assert check.get("suppress_comment", "").strip(), f"{check['check_id']} skipped without a reason"


def test_mixed_fleet_global_reads_only_what_gcp_stacks_output(synthesized: Synthesized) -> None:
    text = (synthesized.dir("mixed", "global") / "cdk.tf.json").read_text(encoding="utf-8")
    read = set(REMOTE_OUTPUT.findall(text))
    assert "lb_ip_address" in read
    published = set(synthesized.stack("mixed", "gcp-asia-southeast1")["output"])
    assert read <= published


def test_mixed_fleet_global_routes_to_the_gcp_region(synthesized: Synthesized) -> None:
    doc = synthesized.stack("mixed", "global")
    records = doc["resource"]["aws_route53_record"].values()
    latency = {r["latency_routing_policy"]["region"] for r in records if "latency_routing_policy" in r}
    # asia-southeast1 maps to the nearest AWS latency region.
    assert latency == {"us-west-2", "ap-southeast-1"}
    checks = doc["resource"]["aws_route53_health_check"].values()
    assert all(c["resource_path"] == "/health/ready" and c["type"] == "HTTPS" for c in checks)
    assert len(list(checks)) == 2
    state = doc["data"]["terraform_remote_state"]
    assert state["remote_gcp_asia_southeast1"]["config"]["path"] == (
        "../gcp-asia-southeast1/terraform.gcp-asia-southeast1.tfstate"
    )


def test_one_certificate_authorization_record_for_all_gcp_regions(synthesized: Synthesized) -> None:
    """Four GCP regions, one project: their PER_PROJECT_RECORD authorizations share one
    CNAME, so the global stack writes it once (two records of one name collide in Route 53)."""
    doc = synthesized.stack("variants", "global")
    records = doc["resource"]["aws_route53_record"]
    cnames = {k: r for k, r in records.items() if "dns_authorization_record_name" in str(r.get("name", ""))}
    assert list(cnames) == ["gcp_certificate_authorization"]
    (record,) = cnames.values()
    first = "remote_gcp_us_central1"  # the first GCP region of the fleet file
    assert record["name"] == f"${{data.terraform_remote_state.{first}.outputs.dns_authorization_record_name}}"
    assert record["records"] == [f"${{data.terraform_remote_state.{first}.outputs.dns_authorization_record_data}}"]


@pytest.mark.terraform
@pytest.mark.slow
def test_mixed_fleet_global_validates(synthesized: Synthesized, tmp_path_factory: pytest.TempPathFactory) -> None:
    from devkit import localcloud

    try:
        runner = localcloud.make_runner(tmp_path_factory.mktemp("gcp-terraform"))
    except localcloud.HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    stack_dir: Path = synthesized.dir("mixed", "global")
    runner.init(stack_dir)
    result = runner.validate(stack_dir)
    assert result["valid"] is True, result["diagnostics"]
