"""The offline deploy's fleet handling, without terraform or moto (they are the infra tier's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devkit.localcloud import HarnessError, aws_only, deploy_fleet
from infra.catalog import Cloud
from infra.config import load_fleet


def test_aws_only_keeps_everything_but_the_gcp_regions() -> None:
    fleet = load_fleet()
    projection = aws_only(fleet)
    assert [r.stack_name for r in projection.regions] == [r.stack_name for r in fleet.regions_of(Cloud.AWS)]
    assert projection.regions_of(Cloud.GCP) == ()
    assert (projection.project, projection.state, projection.global_) == (fleet.project, fleet.state, fleet.global_)


def test_a_bootstrap_with_the_google_provider_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """`make demo` once deployed the full bootstrap: terraform init then failed on
    hashicorp/google (no offline mirror), and the destroy's error hid that one."""
    stacks = tmp_path / "stacks"
    (stacks / "bootstrap").mkdir(parents=True)
    doc = {"terraform": {"required_providers": {"aws": {}, "google": {"source": "hashicorp/google"}}}}
    (stacks / "bootstrap" / "cdk.tf.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(HarnessError, match="aws_only"), deploy_fleet(load_fleet(), stacks, tmp_path / "work"):
        pass
    assert not (tmp_path / "work").exists()  # refused before anything started


def test_a_replacement_must_name_its_stack(tmp_path: Path) -> None:
    fleet = aws_only(load_fleet())
    with (
        pytest.raises(HarnessError, match="replace: bootstrap: expected a directory named bootstrap"),
        deploy_fleet(fleet, tmp_path, tmp_path / "work", replace={"bootstrap": tmp_path / "elsewhere"}),
    ):
        pass
    assert not (tmp_path / "work").exists()  # refused before anything started
