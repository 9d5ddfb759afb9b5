"""Offline deploy: every AWS stack and global applied to moto_server, checked with boto3,
re-planned (no changes) and destroyed. moto gaps are listed in docs/aws.md."""

from __future__ import annotations

import pytest

from contract.facts import AWS_LIFECYCLE_HOOK
from devkit import localcloud
from devkit.localcloud import GCP_STAND_IN_IP
from tests.infra.conftest import MotoDeployment

pytestmark = [pytest.mark.moto, pytest.mark.terraform, pytest.mark.slow]


def test_outputs_per_region(moto_deployment: MotoDeployment) -> None:
    out = moto_deployment.outputs["aws-us-west-2"]
    assert out["endpoint_name"] == "us-west-2.api.example.com"
    assert out["alb_dns_name"].endswith(".elb.amazonaws.com")
    assert out["asg_name"] == "llm-fleet-us-west-2-gpu"
    assert moto_deployment.outputs["global"]["global_endpoint"] == "api.example.com"


@pytest.mark.parametrize(
    ("stack", "region", "gpu_types"),
    [("aws-us-west-2", "us-west-2", "g5."), ("aws-eu-central-1", "eu-central-1", "g4dn.")],
)
def test_asg_mixed_policy(moto_deployment: MotoDeployment, stack: str, region: str, gpu_types: str) -> None:
    asg_name = moto_deployment.outputs[stack]["asg_name"]
    asg = moto_deployment.client("autoscaling", region).describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])[
        "AutoScalingGroups"
    ][0]
    mip = asg["MixedInstancesPolicy"]
    dist = mip["InstancesDistribution"]
    assert dist["OnDemandBaseCapacity"] == 1
    assert dist["OnDemandPercentageAboveBaseCapacity"] == 0
    assert dist["SpotAllocationStrategy"] == "price-capacity-optimized"
    types = [o["InstanceType"] for o in mip["LaunchTemplate"]["Overrides"]]
    assert len(types) >= 2
    assert all(t.startswith(gpu_types) for t in types)
    assert asg["HealthCheckType"] == "EC2"  # replacement on liveness (SetInstanceHealth), not readiness
    assert asg["HealthCheckGracePeriod"] >= 600
    assert asg["CapacityRebalance"] is True
    assert len(asg["TargetGroupARNs"]) == 1
    tags = {t["Key"]: t["Value"] for t in asg["Tags"]}
    assert tags["Project"] == "llm-fleet"
    assert tags["Stack"] == stack
    hooks = moto_deployment.client("autoscaling", region).describe_lifecycle_hooks(AutoScalingGroupName=asg_name)
    assert [h["LifecycleHookName"] for h in hooks["LifecycleHooks"]] == [AWS_LIFECYCLE_HOOK]
    # The AMI was resolved at plan time (the harness's stand-in for the public parameter).
    lt = asg["MixedInstancesPolicy"]["LaunchTemplate"]["LaunchTemplateSpecification"]
    versions = moto_deployment.client("ec2", region).describe_launch_template_versions(
        LaunchTemplateId=lt["LaunchTemplateId"], Versions=[lt["Version"]]
    )["LaunchTemplateVersions"]
    assert versions[0]["LaunchTemplateData"]["ImageId"].startswith("ami-")
    policies = moto_deployment.client("autoscaling", region).describe_policies(AutoScalingGroupName=asg_name)
    assert [p["PolicyType"] for p in policies["ScalingPolicies"]] == ["TargetTrackingScaling"]


def test_target_group_and_listeners(moto_deployment: MotoDeployment) -> None:
    elbv2 = moto_deployment.client("elbv2", "us-west-2")
    (lb,) = [
        lb
        for lb in elbv2.describe_load_balancers()["LoadBalancers"]
        if lb["DNSName"] == moto_deployment.outputs["aws-us-west-2"]["alb_dns_name"]
    ]
    (tg,) = elbv2.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]
    assert tg["HealthCheckPath"] == "/health/ready"
    assert (
        tg["HealthCheckIntervalSeconds"],
        tg["HealthCheckTimeoutSeconds"],
        tg["HealthyThresholdCount"],
        tg["UnhealthyThresholdCount"],
    ) == (10, 5, 2, 3)
    assert tg["Port"] == 8000
    listeners = {li["Port"]: li for li in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]}
    assert set(listeners) == {80, 443}
    assert listeners[443]["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert listeners[80]["DefaultActions"][0]["RedirectConfig"]["StatusCode"] == "HTTP_301"
    assert listeners[443]["DefaultActions"][0]["FixedResponseConfig"]["StatusCode"] == "404"
    rules = [r for r in elbv2.describe_rules(ListenerArn=listeners[443]["ListenerArn"])["Rules"] if not r["IsDefault"]]
    (rule,) = rules
    assert sorted(rule["Conditions"][0]["PathPatternConfig"]["Values"]) == sorted(
        ["/v1/chat/completions", "/v1/completions", "/v1/models", "/health/ready"]
    )
    attrs = {
        a["Key"]: a["Value"]
        for a in elbv2.describe_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]
    }
    assert attrs["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attrs["idle_timeout.timeout_seconds"] == "300"


def test_route53_records(moto_deployment: MotoDeployment) -> None:
    r53 = moto_deployment.client("route53")
    records = r53.list_resource_record_sets(HostedZoneId=moto_deployment.zone_id)["ResourceRecordSets"]
    latency = [r for r in records if r["Name"] == "api.example.com." and "Region" in r]
    assert sorted(r["Region"] for r in latency) == ["ap-southeast-1", "eu-central-1", "us-west-2"]
    assert all(r.get("HealthCheckId") for r in latency)
    names = {r["Name"] for r in records}
    assert {"us-west-2.api.example.com.", "eu-central-1.api.example.com.", "asia-southeast1.api.example.com."} <= names
    gcp = next(r for r in latency if r["Region"] == "ap-southeast-1")
    assert gcp["ResourceRecords"] == [{"Value": GCP_STAND_IN_IP}]
    west = next(r for r in latency if r["Region"] == "us-west-2")
    assert west["AliasTarget"]["DNSName"].rstrip(".") == moto_deployment.outputs["aws-us-west-2"]["alb_dns_name"]
    checks = r53.list_health_checks()["HealthChecks"]
    configs = [c["HealthCheckConfig"] for c in checks]
    assert len(configs) == 3
    assert all(c["Type"] == "HTTPS" and c["ResourcePath"] == "/health/ready" for c in configs)
    assert all(c["RequestInterval"] == 10 and c["FailureThreshold"] == 3 for c in configs)
    # ACM DNS validation records for both regional certificates
    assert sum(r["Type"] == "CNAME" and r["Name"].startswith("_") for r in records) >= 2


# moto fidelity gaps that show up as in-place updates on a re-plan (moto 5.2.5); each entry is
# (resource type, attribute) -> what moto does. Anything else, and any replacement, fails.
MOTO_REPLAN_GAPS: dict[tuple[str, str], str] = {
    ("aws_launch_template", "tag_specifications"): "echoes the template's own tags as a launch-template spec",
    ("aws_launch_template", "default_version"): "follows from the tag_specifications echo",
    ("aws_launch_template", "latest_version"): "follows from the tag_specifications echo",
    ("aws_autoscaling_group", "default_instance_warmup"): "does not store DefaultInstanceWarmup",
    ("aws_autoscaling_group", "mixed_instances_policy"): "launch template version, from the echo above",
    ("aws_autoscaling_group", "capacity_reservation_specification"): "describes an empty block when none is set",
    ("aws_autoscaling_lifecycle_hook", "notification_target_arn"): "describes a fixed sample SQS ARN",
    ("aws_autoscaling_lifecycle_hook", "role_arn"): "describes a fixed sample role ARN",
    ("aws_autoscaling_policy", "enabled"): "does not return Enabled",
    ("aws_autoscaling_policy", "predictive_scaling_configuration"): "returns an empty predictive block",
    ("aws_vpc_security_group_ingress_rule", "referenced_security_group_id"): "returns <account>/<sg-id>",
    ("aws_vpc_security_group_ingress_rule", "description"): "drops the rule description",
    ("aws_vpc_security_group_egress_rule", "referenced_security_group_id"): "returns <account>/<sg-id>",
    ("aws_vpc_security_group_egress_rule", "description"): "drops the rule description",
}


def test_replan_has_no_changes(moto_deployment: MotoDeployment, tf: localcloud.TerraformRunner) -> None:
    unexpected: dict[str, list[str]] = {}
    for name, path in moto_deployment.dirs.items():
        code, _ = tf.plan_exit_code(path)
        if code == 0:
            continue
        for rc in tf.plan_changes(path):
            actions = rc["change"]["actions"]
            changed = localcloud.changed_attributes(rc["change"])
            gaps = {attr for attr in changed if (rc["type"], attr) in MOTO_REPLAN_GAPS}
            if actions != ["update"] or changed - gaps:
                unexpected.setdefault(name, []).append(f"{rc['address']} {actions} {sorted(changed - gaps)}")
    assert unexpected == {}


def test_stacks_without_moto_gaps_replan_clean(moto_deployment: MotoDeployment, tf: localcloud.TerraformRunner) -> None:
    """bootstrap, global and the GCP stand-in touch no gap: -detailed-exitcode must be 0."""
    for name in ("bootstrap", "global", "gcp-asia-southeast1"):
        code, out = tf.plan_exit_code(moto_deployment.dirs[name])
        assert code == 0, f"{name}: {out[-2000:]}"


def test_bootstrap_oidc_trust(moto_deployment: MotoDeployment) -> None:
    """The AWS-only bootstrap (tests/plugins/moto_fleet.py: no offline Google provider)."""
    out = moto_deployment.outputs["bootstrap"]
    iam = moto_deployment.client("iam")
    (provider,) = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    assert provider["Arn"] == out["github_oidc_provider_arn"]
    described = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=provider["Arn"])
    assert described["ClientIDList"] == ["sts.amazonaws.com"]
    assert described["Url"].removeprefix("https://") == "token.actions.githubusercontent.com"
    repo = moto_deployment.fleet.github.repository
    plan = iam.get_role(RoleName=out["aws_plan_role_arn"].rsplit("/", 1)[1])["Role"]
    plan_trust = plan["AssumeRolePolicyDocument"]["Statement"][0]
    assert plan_trust["Principal"] == {"Federated": provider["Arn"]}
    assert plan_trust["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == [
        f"repo:{repo}:pull_request"
    ]
    # one scoped inline policy (no ReadOnlyAccess: it reads every S3 object of the account)
    assert iam.list_attached_role_policies(RoleName=plan["RoleName"])["AttachedPolicies"] == []
    assert len(iam.list_role_policies(RoleName=plan["RoleName"])["PolicyNames"]) == 1
    assert set(out["aws_deploy_role_arns"]) == {"aws-us-west-2", "aws-eu-central-1", "global"}
    for env, arn in out["aws_deploy_role_arns"].items():
        role = iam.get_role(RoleName=arn.rsplit("/", 1)[1])["Role"]
        condition = role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]["StringEquals"]
        assert condition["token.actions.githubusercontent.com:sub"] == [f"repo:{repo}:environment:{env}"]
        assert iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"] == []  # no admin
        tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role["RoleName"])["Tags"]}
        assert tags["Project"] == "llm-fleet"
        assert tags["Stack"] == "bootstrap"


@pytest.mark.destroys_moto_deployment
def test_destroy_cleanly(moto_deployment: MotoDeployment, tf: localcloud.TerraformRunner) -> None:
    errors = localcloud.destroy_stacks(tf, moto_deployment.dirs)
    moto_deployment.destroyed = True
    assert errors == []
    elbv2 = moto_deployment.client("elbv2", "us-west-2")
    assert elbv2.describe_load_balancers()["LoadBalancers"] == []
    asgs = moto_deployment.client("autoscaling", "us-west-2").describe_auto_scaling_groups()["AutoScalingGroups"]
    assert asgs == []
