"""The CLI's pure pieces, in process: overrides, plan summaries, terraform errors, local endpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetcli import fleetfile, lifecycle, local_endpoints
from fleetcli.errors import FleetFileError, UsageError
from fleetcli.terraform import PlanSummary, error_detail
from infra.config import load_fleet

REPO = Path(__file__).resolve().parents[2]
REGIONS = REPO / "regions.yaml"


def test_overrides_apply_through_the_fleet_validation() -> None:
    fleet = fleetfile.load(REGIONS, model="Qwen/Qwen2.5-3B-Instruct", quantization="none")
    assert fleet.model.id == "Qwen/Qwen2.5-3B-Instruct"
    assert fleet.model.quantization.value == "none"
    assert fleet.model.engine_checkpoint == "Qwen/Qwen2.5-3B-Instruct"
    assert fleet.model.served_name == "qwen2.5-3b-instruct"  # the file's was the model's own name
    assert fleet.regions == load_fleet(REGIONS).regions
    with pytest.raises(FleetFileError) as info:
        fleetfile.load(REGIONS, quantization="fp8")
    assert info.value.source == f"{REGIONS} with --quantization fp8"
    assert any(p.startswith("regions[1].gpu_type: 't4' cannot run fp8") for p in info.value.problems)


def test_an_explicit_served_name_stays(tmp_path: Path) -> None:
    text = REGIONS.read_text(encoding="utf-8").replace("served_name: qwen2.5-7b-instruct", "served_name: chat")
    path = tmp_path / "fleet.yaml"
    path.write_text(text, encoding="utf-8")
    assert fleetfile.load(path, model="meta-llama/Llama-3.1-8B-Instruct").model.served_name == "chat"


def test_select_keeps_deploy_order_and_refuses_unknown_stacks() -> None:
    fleet = load_fleet(REGIONS)
    assert lifecycle.select(fleet, ["global", "aws-eu-central-1", "aws-us-west-2"]) == [
        "aws-us-west-2",
        "aws-eu-central-1",
        "global",
    ]
    assert lifecycle.select(fleet, [], default=["global", "bootstrap"]) == ["bootstrap", "global"]
    with pytest.raises(UsageError, match="unknown stack 'gcp-us-west1'"):
        lifecycle.select(fleet, ["gcp-us-west1"])


def test_plan_summary_from_show_json() -> None:
    doc = {
        "resource_changes": [
            {"address": "a.create", "change": {"actions": ["create"]}},
            {"address": "b.update", "change": {"actions": ["update"]}},
            {"address": "c.replace", "change": {"actions": ["create", "delete"]}},
            {"address": "d.replace", "change": {"actions": ["delete", "create"]}},
            {"address": "e.delete", "change": {"actions": ["delete"]}},
            {"address": "f.noop", "change": {"actions": ["no-op"]}},
            {"address": "data.g", "change": {"actions": ["read"]}},
        ],
        "output_changes": {"x": {"actions": ["no-op"]}},
    }
    summary = PlanSummary.from_show_json(doc)
    assert summary.counts() == "1 to create, 1 to update, 2 to replace, 1 to destroy"
    assert summary.short() == "+1 ~1 ±2 -1"
    assert summary.lines()[0] == ("-", "e.delete")
    assert not PlanSummary.from_show_json({"output_changes": {"x": {"actions": ["no-op"]}}}).has_changes
    assert PlanSummary.from_show_json({"output_changes": {"x": {"actions": ["update"]}}}).has_changes


def test_error_detail_is_terraforms_error_in_one_line() -> None:
    output = """
aws_vpc.network: Creating...
╷
│ Error: creating EC2 VPC: operation error EC2: CreateVpc, StatusCode: 403, UnauthorizedOperation
│
│   with aws_vpc.network_vpc_4E8F0223,
│   on cdk.tf.json line 411, in resource.aws_vpc.network_vpc_4E8F0223:
│  411:       }
│
│ You are not authorized to perform this operation.
╵
"""
    assert error_detail(output) == (
        "Error: creating EC2 VPC: operation error EC2: CreateVpc, StatusCode: 403, UnauthorizedOperation: "
        "You are not authorized to perform this operation."
    )
    assert error_detail("Error: Backend initialization required\n") == "Error: Backend initialization required"
    assert error_detail("something odd\nlast words\n") == "last words"


def test_local_endpoint_override_covers_every_aws_provider(tmp_path: Path) -> None:
    stack = tmp_path / "global"
    stack.mkdir()
    (stack / "cdk.tf.json").write_text(
        json.dumps({"provider": {"aws": [{"region": "us-east-1"}, {"region": "us-west-2", "alias": "w2"}]}}),
        encoding="utf-8",
    )
    assert local_endpoints.apply_to(stack, "http://127.0.0.1:5000")
    doc = json.loads((stack / local_endpoints.OVERRIDE_FILE).read_text(encoding="utf-8"))
    blocks = doc["provider"]["aws"]
    assert [b.get("alias") for b in blocks] == [None, "w2"]
    assert all(b["endpoints"][0]["route53"] == "http://127.0.0.1:5000" for b in blocks)
    assert all(b["s3_use_path_style"] is True for b in blocks)
    assert "cdk.tf.json" in {p.name for p in stack.iterdir()}  # the synthesized file is left alone
    # without AWS_ENDPOINT_URL a stale override is removed: a real deploy never talks to a local cloud
    assert not local_endpoints.apply_to(stack, None)
    assert not (stack / local_endpoints.OVERRIDE_FILE).exists()


def test_no_override_for_a_stack_without_the_aws_provider(tmp_path: Path) -> None:
    (tmp_path / "cdk.tf.json").write_text(json.dumps({"provider": {"google": [{}]}}), encoding="utf-8")
    assert not local_endpoints.apply_to(tmp_path, "http://127.0.0.1:5000")


def test_endpoint_of_each_kind_of_stack() -> None:
    assert lifecycle.endpoint_of("global", {"global_endpoint": "api.example.com"}) == "https://api.example.com"
    assert lifecycle.endpoint_of("aws-us-west-2", {"endpoint_name": "us-west-2.api.example.com"}) == (
        "https://us-west-2.api.example.com"
    )
    assert lifecycle.endpoint_of("bootstrap", {"state_bucket_name": "b"}) == "s3://b"
    assert lifecycle.endpoint_of("x", {}) == ""
