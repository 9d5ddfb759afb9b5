"""Synth-and-assert: bootstrap, backends and the global routing stack."""

from __future__ import annotations

import json
from typing import Any

from infra.config import GlobalMode
from tests.infra.conftest import Synth
from tests.infra.helpers import data, one, resources


def test_bootstrap_state_bucket(local_synth: Synth) -> None:
    doc = local_synth.stacks["bootstrap"]
    assert "local" in doc["terraform"]["backend"]  # it creates the bucket the others use
    bucket = one(doc, "aws_s3_bucket")
    assert bucket["bucket"] == local_synth.fleet.state.bucket
    assert one(doc, "aws_s3_bucket_versioning")["versioning_configuration"]["status"] == "Enabled"
    sse = one(doc, "aws_s3_bucket_server_side_encryption_configuration")["rule"][0]
    assert sse["apply_server_side_encryption_by_default"]["sse_algorithm"] == "aws:kms"
    pab = one(doc, "aws_s3_bucket_public_access_block")
    assert all(
        pab[k] is True
        for k in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
    )
    policy = json.loads(one(doc, "aws_s3_bucket_policy")["policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert one(doc, "aws_kms_key")["enable_key_rotation"] is True


def test_fleet_backend_is_s3_with_lockfile(fleet_synth: Synth) -> None:
    fleet = fleet_synth.fleet
    for name in ("aws-eu-central-1", "global"):
        s3 = fleet_synth.stacks[name]["terraform"]["backend"]["s3"]
        assert s3["bucket"] == fleet.state.bucket
        assert s3["key"] == f"{fleet.project}/{name}.tfstate"
        assert s3["region"] == fleet.state.region
        assert s3["encrypt"] is True
        assert s3["use_lockfile"] is True
    assert "local" in fleet_synth.stacks["bootstrap"]["terraform"]["backend"]
    remote = data(fleet_synth.stacks["global"], "terraform_remote_state")
    assert {r["backend"] for r in remote.values()} == {"s3"}
    keys = {r["config"]["key"] for r in remote.values()}
    assert f"{fleet.project}/aws-us-west-2.tfstate" in keys
    assert f"{fleet.project}/gcp-asia-southeast1.tfstate" in keys


def test_local_backend_and_relative_remote_state(local_synth: Synth) -> None:
    doc = local_synth.stacks["global"]
    assert doc["terraform"]["backend"]["local"]["path"] == "terraform.global.tfstate"
    remote = data(doc, "terraform_remote_state")
    paths = sorted(r["config"]["path"] for r in remote.values())
    assert paths == sorted(
        f"../{n}/terraform.{n}.tfstate" for n in ("aws-us-west-2", "aws-eu-central-1", "gcp-asia-southeast1")
    )


def _latency(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in resources(doc, "aws_route53_record").values() if "latency_routing_policy" in r]


def test_global_latency_records_and_health_checks(local_synth: Synth) -> None:
    doc = local_synth.stacks["global"]
    fleet = local_synth.fleet
    assert list(doc["provider"]) == ["aws"]  # no google provider, even for a mixed fleet
    checks = resources(doc, "aws_route53_health_check").values()
    assert len(checks) == len(fleet.regions)
    for hc in checks:
        assert hc["type"] == "HTTPS"
        assert hc["resource_path"] == "/health/ready"
        assert hc["request_interval"] == fleet.global_.health_check_interval_s == 10
        assert hc["failure_threshold"] == fleet.global_.health_check_failure_threshold == 3
        assert hc["enable_sni"] is True
    assert sorted(hc["fqdn"] for hc in checks) == sorted(f"{r.region}.{fleet.global_.domain}" for r in fleet.regions)
    latency = _latency(doc)
    assert sorted(r["latency_routing_policy"]["region"] for r in latency) == [
        "ap-southeast-1",  # gcp asia-southeast1 -> nearest AWS region
        "eu-central-1",
        "us-west-2",
    ]
    for rec in latency:
        assert rec["name"] == fleet.global_.domain
        assert "aws_route53_health_check" in rec["health_check_id"]
    gcp = next(r for r in latency if r["latency_routing_policy"]["region"] == "ap-southeast-1")
    assert "lb_ip_address" in gcp["records"][0]
    assert gcp["ttl"] == 60
    aws = next(r for r in latency if r["latency_routing_policy"]["region"] == "us-west-2")
    assert "alb_dns_name" in aws["alias"]["name"]
    assert aws["alias"]["evaluate_target_health"] is True
    per_region = {r["name"] for r in resources(doc, "aws_route53_record").values() if "set_identifier" not in r}
    assert {f"{r.region}.{fleet.global_.domain}" for r in fleet.regions} <= per_region


def test_shared_latency_region_becomes_a_weighted_set(variant_synths: dict[str, Synth]) -> None:
    doc = variant_synths["shared"].stacks["global"]
    latency = _latency(doc)
    assert len(latency) == 1  # aws us-west-2 and gcp us-west1 share the us-west-2 latency region
    (lat,) = latency
    assert lat["latency_routing_policy"]["region"] == "us-west-2"
    assert lat["alias"]["name"] == "us-west-2.latency.api.example.com"
    assert lat["alias"]["evaluate_target_health"] is True
    weighted = [r for r in resources(doc, "aws_route53_record").values() if "weighted_routing_policy" in r]
    assert len(weighted) == 2
    assert {r["name"] for r in weighted} == {"us-west-2.latency.api.example.com"}
    assert all("aws_route53_health_check" in r["health_check_id"] for r in weighted)


def test_global_accelerator_mode(variant_synths: dict[str, Synth]) -> None:
    synth = variant_synths["accelerator"]
    assert synth.fleet.global_.mode == GlobalMode.GLOBAL_ACCELERATOR
    doc = synth.stacks["global"]
    one(doc, "aws_globalaccelerator_accelerator")
    listener = one(doc, "aws_globalaccelerator_listener")
    assert listener["port_range"] == [{"from_port": 443, "to_port": 443}]
    groups = resources(doc, "aws_globalaccelerator_endpoint_group").values()
    assert sorted(g["endpoint_group_region"] for g in groups) == ["eu-central-1", "us-west-2"]
    assert all("alb_arn" in g["endpoint_configuration"][0]["endpoint_id"] for g in groups)
    assert _latency(doc) == []
    alias = next(r for r in resources(doc, "aws_route53_record").values() if r["name"] == "api.example.com")
    assert "aws_globalaccelerator_accelerator" in alias["alias"]["name"]
    assert len(resources(doc, "aws_route53_health_check")) == 2


def test_synth_is_deterministic(local_synth: Synth, tmp_path_factory: Any) -> None:
    from infra.app import synth

    again = synth(local_synth.fleet, ["global"], outdir=tmp_path_factory.mktemp("again"), backend="local")
    assert json.loads((again / "stacks" / "global" / "cdk.tf.json").read_text()) == local_synth.stacks["global"]
