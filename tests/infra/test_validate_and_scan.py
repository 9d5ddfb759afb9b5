"""`terraform validate` against hashicorp/aws 5.100.0 (local mirror) and checkov on the JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.infra.helpers import suppressions

pytestmark = pytest.mark.slow


@pytest.mark.terraform
def test_every_stack_validates(validations: dict[str, dict[str, Any]]) -> None:
    assert {"default/bootstrap", "default/aws-us-west-2", "default/aws-eu-central-1", "default/global"} <= set(
        validations
    )
    for key, result in validations.items():
        assert result["valid"] is True, f"{key}: {result['diagnostics']}"
        assert result["error_count"] == 0, key
        assert result["warning_count"] == 0, f"{key}: {result['diagnostics']}"


def _resource_block(root: Path, file_path: str, resource: str) -> dict[str, Any]:
    doc = json.loads((root / file_path.lstrip("/")).read_text())
    rtype, name = resource.rsplit(".", 1)
    if rtype.startswith("resource."):  # python checks report "resource.<name>" for some blocks
        rtype = rtype.removeprefix("resource.")
    if rtype == "resource":
        for blocks in doc["resource"].values():
            if name in blocks:
                return dict(blocks[name])
    if rtype == "data":
        for blocks in doc["data"].values():
            if name in blocks:
                return dict(blocks[name])
    return dict(doc["resource"][rtype][name])


@pytest.mark.checkov
def test_checkov_passes_with_only_documented_suppressions(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100, summary  # checkov can silently run nothing
    root: Path = checkov_report["root"]
    unexplained = []
    for failed in checkov_report["results"]["failed_checks"]:
        block = _resource_block(root, failed["file_path"], failed["resource"])
        reason = suppressions(block).get(failed["check_id"], "")
        if len(reason.strip()) < 10:
            unexplained.append(
                f"{failed['check_id']} {failed['file_path']} {failed['resource']}: {failed['check_name']}"
            )
    assert unexplained == []


@pytest.mark.checkov
def test_required_checks_pass(checkov_report: dict[str, Any]) -> None:
    passed = {c["check_id"] for c in checkov_report["results"]["passed_checks"]}
    required = {
        "CKV_AWS_103",  # ALB listener TLS >= 1.2
        "CKV_AWS_131",  # ALB drops invalid headers
        "CKV_AWS_79",  # IMDSv2 required
        "CKV_AWS_88",  # no public IP on instances
        "CKV_AWS_2",  # ALB listener uses HTTPS (or redirects)
        "CKV_AWS_145",  # state bucket KMS-encrypted
        "CKV_AWS_21",  # state bucket versioned
        "CKV2_AWS_12",  # default security group restricts all traffic
        "CKV2_AWS_11",  # VPC flow logs
        "CKV_AWS_158",  # log group KMS-encrypted
    }
    assert required <= passed, sorted(required - passed)
