"""Synth-and-assert: every property the AWS regional stack promises (docs/aws.md)."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from contract.facts import AWS, AWS_LIFECYCLE_HOOK
from infra.boot import render_boot_script
from infra.catalog import COLD_START_BUDGETS, GPU_OFFERINGS, Cloud
from infra.config import Fleet
from tests.infra.conftest import Synth
from tests.infra.helpers import data, one, resources

REGION = "aws-us-west-2"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def doc(local_synth: Synth) -> dict[str, Any]:
    return local_synth.stacks[REGION]


@pytest.fixture(scope="module")
def region_fleet(local_synth: Synth) -> Fleet:
    return local_synth.fleet


def test_only_aws_provider_pinned_region(doc: dict[str, Any]) -> None:
    assert list(doc["provider"]) == ["aws"]
    assert doc["provider"]["aws"][0]["region"] == "us-west-2"
    assert doc["terraform"]["required_providers"]["aws"]["version"] == "5.100.0"


def test_vpc_spans_three_azs_with_public_private_and_nat(doc: dict[str, Any]) -> None:
    """Three availability zones where the region has them: one more spot capacity pool per
    instance type than two (Spot: capacity pools are per instance type and AZ)."""
    one(doc, "aws_vpc")
    subnets = resources(doc, "aws_subnet")
    public = [s for s in subnets.values() if s["tags"]["Tier"] == "public"]
    private = [s for s in subnets.values() if s["tags"]["Tier"] == "private"]
    assert len(public) == len(private) == 3
    azs = {s["availability_zone"] for s in public}
    assert len(azs) == 3, azs
    assert {s["availability_zone"] for s in private} == azs
    assert all(s["map_public_ip_on_launch"] is False for s in public)
    assert len(resources(doc, "aws_nat_gateway")) == 3
    routes = resources(doc, "aws_route").values()
    assert sum("nat_gateway_id" in r for r in routes) == 3
    assert sum("gateway_id" in r for r in routes) == 1
    assert len({s["cidr_block"] for s in subnets.values()}) == 6
    assert one(doc, "aws_flow_log")["traffic_type"] == "ALL"
    one(doc, "aws_default_security_group")
    (azs_data,) = data(doc, "aws_availability_zones").values()
    assert azs_data["filter"][0] == {"name": "zone-name", "values": ["us-west-2a", "us-west-2b", "us-west-2c"]}
    assert len(one(doc, "aws_autoscaling_group")["vpc_zone_identifier"]) == 3


def test_zone_allowlists_follow_each_regions_zone_names() -> None:
    """EC2 DescribeAvailabilityZones: ca-central-1 has a, b, d and ap-northeast-1 a, c, d; an
    account sees two of us-west-1's zones. A fixed a..c list would give those regions two."""
    from infra.catalog import AWS_REGIONS

    assert AWS_REGIONS["ca-central-1"].zones == ("ca-central-1a", "ca-central-1b", "ca-central-1d")
    assert AWS_REGIONS["ap-northeast-1"].zones == ("ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d")
    assert AWS_REGIONS["us-west-1"].azs == 2
    assert all(info.azs == 3 for name, info in AWS_REGIONS.items() if name != "us-west-1")
    assert all(z.startswith(info.name) for info in AWS_REGIONS.values() for z in info.zones)


def test_no_ssh_anywhere(doc: dict[str, Any]) -> None:
    for rule in resources(doc, "aws_vpc_security_group_ingress_rule").values():
        assert rule["from_port"] != 22
        assert rule["to_port"] != 22
    lt = one(doc, "aws_launch_template")
    assert "key_name" not in lt


def test_instances_may_leave_only_over_https(doc: dict[str, Any]) -> None:
    """The instances' security group allows egress on tcp/443 only: the boot must fetch
    everything (registry, hub, packages) over HTTPS; plain-HTTP package mirrors are unreachable
    by design (the boot side uses the images' preinstalled tools or HTTPS sources)."""
    groups = resources(doc, "aws_security_group")
    (gpu_id,) = [n for n, g in groups.items() if g["name_prefix"].endswith("-gpu-")]
    egress = [
        r
        for r in resources(doc, "aws_vpc_security_group_egress_rule").values()
        if r["security_group_id"] == f"${{aws_security_group.{gpu_id}.id}}"
    ]
    assert [(r["ip_protocol"], r["from_port"], r["to_port"], r["cidr_ipv4"]) for r in egress] == [
        ("tcp", 443, 443, "0.0.0.0/0")
    ]


def test_alb_tls_redirect_headers_idle_timeout(doc: dict[str, Any]) -> None:
    alb = one(doc, "aws_lb")
    assert alb["load_balancer_type"] == "application"
    assert alb["internal"] is False
    assert alb["drop_invalid_header_fields"] is True
    assert alb["idle_timeout"] >= 300
    listeners = resources(doc, "aws_lb_listener").values()
    https = next(li for li in listeners if li["port"] == 443)
    http = next(li for li in listeners if li["port"] == 80)
    assert https["protocol"] == "HTTPS"
    assert https["ssl_policy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert "aws_acm_certificate_validation" in https["certificate_arn"]
    assert https["default_action"][0]["type"] == "fixed-response"
    assert https["default_action"][0]["fixed_response"]["status_code"] == "404"
    assert json.loads(https["default_action"][0]["fixed_response"]["message_body"])["error"]["code"] == "not_found"
    redirect = http["default_action"][0]
    assert redirect["type"] == "redirect"
    assert redirect["redirect"] == {"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"}


def test_only_api_and_health_paths_are_forwarded(doc: dict[str, Any]) -> None:
    rule = one(doc, "aws_lb_listener_rule")
    assert rule["action"][0]["type"] == "forward"
    paths = rule["condition"][0]["path_pattern"]["values"]
    assert sorted(paths) == sorted(["/v1/chat/completions", "/v1/completions", "/v1/models", "/health/ready"])
    assert not any("*" in p for p in paths)


def test_certificate_is_dns_validated_for_region_and_global_name(doc: dict[str, Any], region_fleet: Fleet) -> None:
    cert = one(doc, "aws_acm_certificate")
    assert cert["validation_method"] == "DNS"
    assert cert["domain_name"] == f"us-west-2.{region_fleet.global_.domain}"
    assert cert["subject_alternative_names"] == [region_fleet.global_.domain]
    # This stack owns only the regional name's record, keyed at synth time (no for_each over
    # unknown keys); the global name's record is the bootstrap stack's (test below).
    (record,) = resources(doc, "aws_route53_record").values()
    assert f'o.domain_name == "{cert["domain_name"]}"' in record["name"]
    assert "data.aws_route53_zone" in record["zone_id"]
    assert "allow_overwrite" not in record
    zone = one({"resource": doc["data"]}, "aws_route53_zone")
    assert zone["name"] == region_fleet.global_.hosted_zone
    validation = one(doc, "aws_acm_certificate_validation")
    regional, shared = validation["validation_record_fqdns"]
    assert regional.startswith("${aws_route53_record.")
    assert regional.endswith(".fqdn}")
    assert f'o.domain_name == "{region_fleet.global_.domain}"' in shared
    assert shared.endswith(".resource_record_name}")


def test_the_global_names_validation_record_has_one_owner(local_synth: Synth) -> None:
    """ACM gives every certificate for one domain in one account the same validation CNAME in
    every region (terraform-provider-aws#13653), and renewals need it in place (ACM "DNS
    validation"). Every regional certificate names the global domain, so its record must
    outlive every region: exactly one stack writes it, bootstrap, and none overwrites."""
    domain = local_synth.fleet.global_.domain
    owners = []
    for name, stack in local_synth.stacks.items():
        for record in resources(stack, "aws_route53_record").values():
            assert "allow_overwrite" not in record, name
            if f'o.domain_name == "{domain}"' in str(record["name"]):
                owners.append(name)
    assert owners == ["bootstrap"]
    bootstrap = local_synth.stacks["bootstrap"]
    cert = one(bootstrap, "aws_acm_certificate")
    assert (cert["domain_name"], cert["validation_method"]) == (domain, "DNS")
    assert cert["lifecycle"] == {"create_before_destroy": True}
    # never attached and never waited for: the certificate only yields the CNAME
    assert resources(bootstrap, "aws_acm_certificate_validation") == {}
    zone = one({"resource": bootstrap["data"]}, "aws_route53_zone")
    assert (zone["name"], zone["private_zone"]) == (local_synth.fleet.global_.hosted_zone, False)


def test_target_group_health_check_and_deregistration(doc: dict[str, Any], region_fleet: Fleet) -> None:
    tg = one(doc, "aws_lb_target_group")
    assert tg["port"] == region_fleet.service.port
    hc = tg["health_check"]
    assert hc["path"] == "/health/ready"
    assert (hc["interval"], hc["timeout"], hc["healthy_threshold"], hc["unhealthy_threshold"]) == (10, 5, 2, 3)
    assert int(tg["deregistration_delay"]) == AWS.preemption_notice_s


def test_launch_template_hardening(doc: dict[str, Any], region_fleet: Fleet) -> None:
    lt = one(doc, "aws_launch_template")
    assert lt["image_id"].startswith("${data.aws_ssm_parameter.")
    assert lt["metadata_options"]["http_tokens"] == "required"
    ebs = lt["block_device_mappings"][0]["ebs"]
    assert ebs["encrypted"] == "true"
    assert ebs["volume_size"] >= 150
    assert lt["network_interfaces"][0]["associate_public_ip_address"] == "false"
    assert "aws_iam_instance_profile" in lt["iam_instance_profile"]["arn"]
    # gzip-compressed user data (cloud-init decompresses it), the boot script the fleet renders
    user_data = gzip.decompress(base64.b64decode(lt["user_data"])).decode()
    assert user_data == render_boot_script(region_fleet, region_fleet.region(REGION))
    assert f"IMAGE={region_fleet.service.image}\n" in user_data
    assert f"ASG={lt_group_name(doc)}\n" in user_data, "the agents address the group the stack creates"


def lt_group_name(doc: dict[str, Any]) -> str:
    name: str = one(doc, "aws_autoscaling_group")["name"]
    return name


def test_cold_start_budget_sizes_the_grace_period_and_nvme_holds_image_and_weights(
    doc: dict[str, Any], region_fleet: Fleet
) -> None:
    """No `service.cold_start_s` in the fleet: the grace period, warm-ups and refresh come from
    the written budget of the region's GPU (catalog.COLD_START_BUDGETS, docs/aws.md). g5 has
    instance-store NVMe (EC2 DescribeInstanceTypes), where the boot script puts the image and
    the weights, so the root volume stays at gp3's baseline."""
    region = region_fleet.region(REGION)
    assert region_fleet.service.cold_start_s is None
    budget = COLD_START_BUDGETS[Cloud.AWS][region.gpu_type]
    expected = region_fleet.cold_start_s(region)
    assert expected == budget.cold_start_s >= budget.total_s * 1.25
    asg = one(doc, "aws_autoscaling_group")
    assert asg["health_check_grace_period"] == asg["default_instance_warmup"] == expected
    assert asg["instance_refresh"]["preferences"]["instance_warmup"] == str(expected)
    assert one(doc, "aws_autoscaling_policy")["estimated_instance_warmup"] == expected
    assert all(t.local_nvme_gb > 0 for t in region.offering.instance_types)
    ebs = one(doc, "aws_launch_template")["block_device_mappings"][0]["ebs"]
    assert "throughput" not in ebs
    assert "iops" not in ebs


def test_root_volume_gets_provisioned_gp3_throughput_without_local_nvme(variant_synths: dict[str, Synth]) -> None:
    """p3 (V100) has no instance store, so the image and weights land on the root volume: gp3
    provisioned at 1,000 MiB/s (the maximum) with the IOPS that ratio needs (0.25 MiB/s per
    IOPS), not the 125 MiB/s baseline (EC2 docs, gp3)."""
    synth = variant_synths["accelerator"]
    region = synth.fleet.region("aws-eu-central-1")
    assert not region.offering.local_nvme
    ebs = one(synth.stacks["aws-eu-central-1"], "aws_launch_template")["block_device_mappings"][0]["ebs"]
    assert (ebs["volume_type"], ebs["throughput"], ebs["iops"]) == ("gp3", 1000, 4000)
    assert ebs["throughput"] <= 0.25 * ebs["iops"]
    asg = one(synth.stacks["aws-eu-central-1"], "aws_autoscaling_group")
    assert asg["health_check_grace_period"] == COLD_START_BUDGETS[Cloud.AWS]["v100"].cold_start_s


def test_every_offering_has_a_written_cold_start_budget() -> None:
    """docs/aws.md carries the budget table, row for row as the catalogue has it."""
    text = (REPO / "docs" / "aws.md").read_text(encoding="utf-8")
    for cloud, offerings in GPU_OFFERINGS.items():
        for gpu, offering in offerings.items():
            b = COLD_START_BUDGETS[cloud][gpu]
            disk = "local NVMe" if offering.local_nvme else ("gp3 1,000 MiB/s" if cloud == Cloud.AWS else "pd-balanced")
            steps = (b.boot_s, b.image_s, b.weights_s, b.load_s, b.warmup_s, b.total_s, b.cold_start_s)
            row = f"| {cloud.value} | {gpu} | {offering.instance_types[0].name} | {disk} | " + " | ".join(
                str(v) for v in steps
            )
            assert row + " |" in text, row


def test_instance_refresh_auto_rollback_has_a_plan_time_ami(doc: dict[str, Any]) -> None:
    """Auto Scaling docs ("Undo changes with a manual or auto rollback"): a rollback cannot
    target a launch template whose AMI comes from Parameter Store, nor $Latest/$Default. The
    AMI is read at plan time (data source), the group pins a numbered version, so a new AMI or
    any template change becomes a new version that the refresh rolls out, with auto rollback."""
    lt = one(doc, "aws_launch_template")
    (param_id, param), *rest = data(doc, "aws_ssm_parameter").items()
    assert rest == []
    assert param["name"] == "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
    assert lt["image_id"] == f"${{data.aws_ssm_parameter.{param_id}.insecure_value}}"
    assert "resolve:ssm" not in json.dumps(doc)
    asg = one(doc, "aws_autoscaling_group")
    version = asg["mixed_instances_policy"]["launch_template"]["launch_template_specification"]["version"]
    assert version.endswith(".latest_version}")  # a number, never "$Latest" / "$Default"
    refresh = asg["instance_refresh"]
    assert refresh["strategy"] == "Rolling"
    assert refresh["preferences"]["auto_rollback"] is True


def test_instance_role_is_least_privilege(doc: dict[str, Any], region_fleet: Fleet) -> None:
    (attach,) = resources(doc, "aws_iam_role_policy_attachment").values()
    assert attach["policy_arn"].endswith(":iam::aws:policy/AmazonSSMManagedInstanceCore")
    policies = [json.loads(p["policy"]) for p in resources(doc, "aws_iam_role_policy").values()]
    instance = next(p for p in policies if any(s.get("Sid") == "ReadApiKeys" for s in p["Statement"]))
    actions = {s["Sid"]: s["Action"] for s in instance["Statement"]}
    assert actions["ReadApiKeys"] == "secretsmanager:GetSecretValue"
    for stmt in instance["Statement"]:
        assert "*" not in str(stmt["Action"]), stmt
        if stmt["Resource"] == "*":
            assert stmt["Action"] in ("cloudwatch:PutMetricData", "autoscaling:DescribeAutoScalingInstances")
    secret_arn = next(s["Resource"] for s in instance["Statement"] if s["Sid"] == "ReadApiKeys")
    assert secret_arn.endswith(f":secret:{region_fleet.service.api_keys_secret}-*")
    # No Hugging Face token secret in the default fleet: no grant for one.
    assert region_fleet.service.hf_token_secret is None
    assert "ReadHfToken" not in actions


def test_hf_token_secret_is_readable_only_when_the_fleet_names_one(variant_synths: dict[str, Synth]) -> None:
    """Gated models and the hub's rate limits need a token; Secrets Manager ARNs end in a random
    six-character suffix (Secrets Manager docs), hence `<name>-*`."""
    doc = variant_synths["shared"].stacks["aws-us-west-2"]
    policies = [json.loads(p["policy"]) for p in resources(doc, "aws_iam_role_policy").values()]
    sids = {s["Sid"]: s for p in policies for s in p["Statement"] if "Sid" in s}
    hf = sids["ReadHfToken"]
    assert hf["Action"] == "secretsmanager:GetSecretValue"
    assert hf["Resource"].startswith("arn:${data.aws_partition.")
    assert hf["Resource"].endswith(
        ":secretsmanager:us-west-2:${data.aws_caller_identity.account.account_id}:secret:llm-fleet-hf-token-*"
    )
    # The registry credentials the boot logs in with (`service.registry_secret`), likewise.
    registry = sids["ReadRegistryCredentials"]
    assert registry["Action"] == "secretsmanager:GetSecretValue"
    assert registry["Resource"].endswith(":secret:llm-fleet-registry-*")
    default = variant_synths["accelerator"].stacks["aws-us-west-2"]
    default_sids = {
        s["Sid"]
        for p in resources(default, "aws_iam_role_policy").values()
        for s in json.loads(p["policy"])["Statement"]
        if "Sid" in s
    }
    assert not default_sids & {"ReadHfToken", "ReadRegistryCredentials"}


def test_instance_logs_go_to_a_kms_encrypted_group_the_instances_may_write(
    doc: dict[str, Any], region_fleet: Fleet
) -> None:
    """Boot failures visible without SSH: the boot log and the service's JSON logs go to a
    CloudWatch Logs group named once (infra/naming.py, imported by the boot code), encrypted with
    the region's log key (CloudWatch Logs may use it only for its own groups: KMS encryption
    context `aws:logs:arn`), kept a year, writable by the instance role and nothing more."""
    from infra.naming import instance_log_group

    name = instance_log_group(region_fleet, region_fleet.region(REGION))
    assert name == "/llm-fleet-us-west-2/instances"
    groups = {g["name"]: g for g in resources(doc, "aws_cloudwatch_log_group").values()}
    group = groups[name]
    assert group["retention_in_days"] >= 365
    (key_id,) = resources(doc, "aws_kms_key")
    assert group["kms_key_id"] == f"${{aws_kms_key.{key_id}.arn}}"
    key_policy = json.loads(one(doc, "aws_kms_key")["policy"])
    logs_use = next(s for s in key_policy["Statement"] if s["Sid"] == "CloudWatchLogsUsesKey")
    contexts = logs_use["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    assert any(c.endswith(f":log-group:{name}") for c in contexts)
    policies = [json.loads(p["policy"]) for p in resources(doc, "aws_iam_role_policy").values()]
    sids = {s["Sid"]: s for p in policies for s in p["Statement"] if "Sid" in s}
    writes = sids["WriteInstanceLogs"]
    assert sorted(writes["Action"]) == ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    group_arn, streams = writes["Resource"]
    assert group_arn.endswith(f":logs:us-west-2:${{data.aws_caller_identity.account.account_id}}:log-group:{name}")
    assert streams == f"{group_arn}:*"
    assert doc["output"]["instance_log_group"]["value"].startswith("${aws_cloudwatch_log_group.")


def test_asg_mixed_instances(doc: dict[str, Any], region_fleet: Fleet) -> None:
    region = region_fleet.region(REGION)
    asg = one(doc, "aws_autoscaling_group")
    assert (asg["min_size"], asg["max_size"]) == (region.min_replicas, region.max_replicas)
    mip = asg["mixed_instances_policy"]
    dist = mip["instances_distribution"]
    assert dist["on_demand_base_capacity"] == region.on_demand_base
    assert dist["on_demand_percentage_above_base_capacity"] == 0
    assert dist["spot_allocation_strategy"] == "price-capacity-optimized"
    types = [o["instance_type"] for o in mip["launch_template"]["override"]]
    assert len(types) >= 2
    assert types == [t.name for t in region.offering.instance_types]
    assert asg["capacity_rebalance"] is True
    assert asg["health_check_grace_period"] == region_fleet.cold_start_s(region)
    assert "capacity_reservation_specification" not in asg
    assert len(asg["vpc_zone_identifier"]) == 3
    assert all("private" in s for s in asg["vpc_zone_identifier"])


def test_replacement_follows_liveness_routing_follows_readiness(doc: dict[str, Any]) -> None:
    """Auto Scaling docs ("Health checks"): with ELB health checks the group terminates an
    instance the target group reports unhealthy, so an engine restart or one slow /health/ready
    probe would cost a cold start. The group uses EC2 checks; the liveness agent on the instance
    calls SetInstanceHealth (allowed on its own group only) when /health/live fails."""
    asg = one(doc, "aws_autoscaling_group")
    assert asg["health_check_type"] == "EC2"
    assert one(doc, "aws_lb_target_group")["health_check"]["path"] == "/health/ready"  # routing
    (target_group,) = asg["target_group_arns"]  # instances still register with the readiness target group
    assert target_group.startswith("${aws_lb_target_group.")
    policies = [json.loads(p["policy"]) for p in resources(doc, "aws_iam_role_policy").values()]
    sids = {s["Sid"]: s for p in policies for s in p["Statement"] if "Sid" in s}
    own_group = sids["CompleteOwnLifecycleHook"]["Resource"]
    assert own_group.endswith(f":autoScalingGroup:*:autoScalingGroupName/{asg['name']}")
    assert sids["ReportOwnLiveness"] == {
        "Sid": "ReportOwnLiveness",
        "Effect": "Allow",
        "Action": "autoscaling:SetInstanceHealth",
        "Resource": own_group,
    }


def test_asg_refresh_hook_and_scaling(doc: dict[str, Any], region_fleet: Fleet) -> None:
    asg = one(doc, "aws_autoscaling_group")
    refresh = asg["instance_refresh"]
    assert refresh["strategy"] == "Rolling"
    assert refresh["preferences"]["min_healthy_percentage"] == 100
    hook = one(doc, "aws_autoscaling_lifecycle_hook")
    assert hook["name"] == AWS_LIFECYCLE_HOOK
    assert hook["lifecycle_transition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    assert hook["heartbeat_timeout"] > AWS.preemption_notice_s
    policy = one(doc, "aws_autoscaling_policy")
    assert policy["policy_type"] == "TargetTrackingScaling"
    ttc = policy["target_tracking_configuration"]
    assert ttc["target_value"] == region_fleet.autoscale.target
    metric = ttc["customized_metric_specification"]
    assert metric["metric_name"] == "RequestsInFlight"
    assert metric["metric_dimension"][0]["name"] == "AutoScalingGroupName"


def test_tags_on_every_taggable_resource(doc: dict[str, Any], region_fleet: Fleet) -> None:
    tagged = 0
    for rtype, blocks in doc["resource"].items():
        for name, block in blocks.items():
            if rtype == "aws_autoscaling_group":
                tags = {t["key"]: t["value"] for t in block["tag"]}
                assert all(t["propagate_at_launch"] for t in block["tag"])
            elif "tags" in block:
                tags = block["tags"]
            else:
                continue
            tagged += 1
            assert tags["Project"] == region_fleet.project, name
            assert tags["Stack"] == REGION, name
            assert tags["ManagedBy"] == "cdktf", name
    assert tagged >= 15
    for must in ("aws_vpc", "aws_lb", "aws_launch_template", "aws_lb_target_group", "aws_iam_role"):
        assert all("tags" in b for b in resources(doc, must).values()), must


def test_outputs(doc: dict[str, Any], region_fleet: Fleet) -> None:
    out = doc["output"]
    assert {"endpoint_name", "alb_dns_name", "alb_zone_id", "asg_name"} <= set(out)
    assert out["endpoint_name"]["value"] == f"us-west-2.{region_fleet.global_.domain}"


def test_capacity_reservations_and_metric_variant(variant_synths: dict[str, Synth]) -> None:
    doc = variant_synths["shared"].stacks["aws-us-west-2"]
    asg = one(doc, "aws_autoscaling_group")
    spec = asg["capacity_reservation_specification"]
    assert spec["capacity_reservation_preference"] == "capacity-reservations-first"
    assert spec["capacity_reservation_target"]["capacity_reservation_ids"] == [
        "cr-0123456789abcdef0",
        "cr-0fedcba9876543210",
    ]
    assert asg["mixed_instances_policy"]["instances_distribution"]["on_demand_base_capacity"] == 2
    metric = one(doc, "aws_autoscaling_policy")["target_tracking_configuration"]["customized_metric_specification"]
    assert metric["metric_name"] == "GPUUtilization"
    policies = [json.loads(p["policy"]) for p in resources(doc, "aws_iam_role_policy").values()]
    sids = {s["Sid"]: s for p in policies for s in p["Statement"] if "Sid" in s}
    assert sids["ReadWeights"]["Resource"].endswith(":s3:::llm-weights/qwen2.5-7b/*")
