"""Synth-and-assert: bootstrap, backends and the global routing stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.config import GlobalMode
from tests.infra.conftest import Synth
from tests.infra.helpers import data, one, resources, suppressions

REPO = Path(__file__).resolve().parents[2]


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


def _trust_subjects(role: dict[str, Any]) -> list[str]:
    statement = json.loads(role["assume_role_policy"])["Statement"][0]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": "${aws_iam_openid_connect_provider.github_oidc_provider.arn}"}
    condition = statement["Condition"]["StringEquals"]
    assert condition["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    return list(condition["token.actions.githubusercontent.com:sub"])


def test_bootstrap_github_oidc_trust(local_synth: Synth) -> None:
    fleet = local_synth.fleet
    doc = local_synth.stacks["bootstrap"]
    repo = fleet.github.repository
    oidc = one(doc, "aws_iam_openid_connect_provider")
    assert oidc["url"] == "https://token.actions.githubusercontent.com"
    assert oidc["client_id_list"] == ["sts.amazonaws.com"]
    roles = resources(doc, "aws_iam_role")
    assert _trust_subjects(roles["github_plan_role"]) == [f"repo:{repo}:pull_request"]
    environments = [n for n in fleet.stack_names() if n != "bootstrap"]
    assert "gcp-asia-southeast1" in environments  # its state is in the fleet's S3 bucket
    for env in environments:
        role = roles[f"github_deploy_role_{env.replace('-', '_')}"]
        assert _trust_subjects(role) == [f"repo:{repo}:environment:{env}"]
        assert "managed_policy_arns" not in role  # deprecated in hashicorp/aws 5.x
    # No managed policies (ReadOnlyAccess / AdministratorAccess): one scoped inline policy per role.
    assert resources(doc, "aws_iam_role_policy_attachment") == {}
    policies = {p["role"] for p in resources(doc, "aws_iam_role_policy").values()}
    assert policies == {f"${{aws_iam_role.{name}.id}}" for name in roles}
    # Outputs named after the GitHub variables they fill (docs/delivery.md).
    outputs = doc["output"]
    assert outputs["aws_plan_role_arn"]["value"] == "${aws_iam_role.github_plan_role.arn}"
    assert outputs["aws_deploy_role_arns"]["value"] == {
        env: f"${{aws_iam_role.github_deploy_role_{env.replace('-', '_')}.arn}}" for env in environments
    }
    # The fleet has a GCP region: the workload identity pool pins the repository.
    assert doc["provider"]["google"][0]["project"] == fleet.gcp.project
    pool_provider = one(doc, "google_iam_workload_identity_pool_provider")
    assert pool_provider["attribute_condition"].startswith(f"assertion.repository == '{repo}' && ")
    members = sorted(m["member"] for m in resources(doc, "google_service_account_iam_member").values())
    # global writes only Route 53: the GCP deploy account is bound to the gcp-* environments.
    assert [m.rsplit(f"repo:{repo}:", 1)[1] for m in members] == [
        "environment:gcp-asia-southeast1",
        "pull_request",
    ]
    assert outputs["gcp_workload_identity_provider"]["value"] == (
        "${google_iam_workload_identity_pool_provider.github_pool_provider.name}"
    )
    assert outputs["gcp_plan_service_account"]["value"] == "${google_service_account.github_plan_account.email}"
    assert outputs["gcp_deploy_service_account"]["value"] == "${google_service_account.github_deploy_account.email}"


def test_bootstrap_enables_the_google_apis_and_never_disables_them_on_destroy(local_synth: Synth) -> None:
    """A fresh project answers SERVICE_DISABLED until an API is enabled (google_project_service
    "requires the Service Usage API"); the bootstrap enables, in one place, what the GCP stacks,
    the instances and the CI login (workload identity federation: STS, IAM credentials) call,
    and leaves them on when it is destroyed (disable_on_destroy false)."""
    doc = local_synth.stacks["bootstrap"]
    services = resources(doc, "google_project_service")
    enabled = {s["service"] for s in services.values()}
    issue = {"compute", "certificatemanager", "secretmanager", "monitoring", "logging", "iam", "iamcredentials", "sts"}
    assert {f"{api}.googleapis.com" for api in issue} <= enabled
    # project IAM bindings go through Resource Manager; the templates turn OS Login on
    assert {"cloudresourcemanager.googleapis.com", "oslogin.googleapis.com"} <= enabled
    for service in services.values():
        assert service["project"] == local_synth.fleet.gcp.project
        assert service["disable_on_destroy"] is False
        assert service["disable_dependent_services"] is False
    # The pool and the CI service accounts wait for IAM / STS / IAM credentials to be on.
    pool = one(doc, "google_iam_workload_identity_pool")
    needed = {f"google_project_service.{n}" for n, s in services.items() if s["service"].startswith(("iam", "sts"))}
    assert len(needed) == 3
    assert needed <= set(pool["depends_on"])
    for account in resources(doc, "google_service_account").values():
        assert needed <= set(account["depends_on"])


def test_gcp_ci_accounts_get_narrow_predefined_roles_for_plan_and_apply(local_synth: Synth) -> None:
    """Without project roles the workload identity login works and every plan / apply of a
    gcp-* stack is refused. Plan: viewers + Security Reviewer; deploy: one admin role per
    resource family, Project IAM Admin fenced by an IAM condition ("Set limits on granting
    roles": modifiedGrantsByRole) to the instances' two roles, Secret Manager Admin only on the
    fleet's secrets; never a basic role."""
    from infra.constructs.gcp.ci_roles import DEPLOY_ROLES, PLAN_ROLES
    from infra.constructs.gcp.service_account import PROJECT_ROLES

    doc = local_synth.stacks["bootstrap"]
    plan_sa = "serviceAccount:${google_service_account.github_plan_account.email}"
    deploy_sa = "serviceAccount:${google_service_account.github_deploy_account.email}"
    bindings = list(resources(doc, "google_project_iam_member").values())
    plan = {b["role"]: b for b in bindings if b["member"] == plan_sa}
    deploy = {b["role"]: b for b in bindings if b["member"] == deploy_sa}
    assert len(plan) + len(deploy) == len(bindings)
    assert set(plan) == set(PLAN_ROLES)
    assert all(r.endswith(("viewer", "Viewer", "securityReviewer")) for r in plan)
    assert set(deploy) == {*DEPLOY_ROLES, "roles/resourcemanager.projectIamAdmin"}
    assert not {"roles/owner", "roles/editor", "roles/viewer", "roles/compute.admin"} & (set(plan) | set(deploy))
    fenced = deploy["roles/resourcemanager.projectIamAdmin"]["condition"]["expression"]
    assert fenced == (
        f"api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly({json.dumps(list(PROJECT_ROLES))})"
    )
    assert all("condition" not in b for r, b in deploy.items() if r != "roles/resourcemanager.projectIamAdmin")
    secrets = list(resources(doc, "google_secret_manager_secret_iam_member").values())
    assert [(s["secret_id"], s["role"], s["member"]) for s in secrets] == [
        (local_synth.fleet.service.api_keys_secret, "roles/secretmanager.admin", deploy_sa)
    ]
    assert resources(doc, "google_storage_bucket_iam_member") == {}  # no gs:// weights mirror
    # checkov: the service-account roles are suppressed beside the binding, with the reason.
    for role in ("roles/iam.serviceAccountUser", "roles/iam.serviceAccountAdmin"):
        assert "CKV_GCP_49" in suppressions(deploy[role])
    # docs/delivery.md lists every role.
    delivery = (REPO / "docs" / "delivery.md").read_text(encoding="utf-8")
    for role in [*plan, *deploy, "roles/secretmanager.admin", "roles/storage.admin"]:
        assert f"`{role}`" in delivery, role


def test_aws_only_bootstrap_has_no_google_provider(variant_synths: dict[str, Synth]) -> None:
    doc = variant_synths["accelerator"].stacks["bootstrap"]
    assert set(doc["provider"]) == {"aws"}
    assert set(doc["terraform"]["required_providers"]) == {"aws"}
    assert not [t for t in doc["resource"] if not t.startswith("aws_")]
    assert not [o for o in doc["output"] if o.startswith("gcp_")]
    assert set(doc["output"]["aws_deploy_role_arns"]["value"]) == {"aws-us-west-2", "aws-eu-central-1", "global"}


def _ci_policy(doc: dict[str, Any], role: str) -> list[dict[str, Any]]:
    (policy,) = [
        p for p in resources(doc, "aws_iam_role_policy").values() if p["role"] == f"${{aws_iam_role.{role}.id}}"
    ]
    statements: list[dict[str, Any]] = json.loads(policy["policy"])["Statement"]
    return statements


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    out: set[str] = set()
    for st in statements:
        out |= {st["Action"]} if isinstance(st["Action"], str) else set(st["Action"])
    return out


def _resources(statement: dict[str, Any]) -> list[str]:
    r = statement["Resource"]
    return [r] if isinstance(r, str) else list(r)


# The AWS service that serves each resource type of a regional stack.
SERVICE_OF_RESOURCE = {
    "aws_acm_": "acm",
    "aws_autoscaling_": "autoscaling",
    "aws_cloudwatch_log_group": "logs",
    "aws_iam_": "iam",
    "aws_kms_": "kms",
    "aws_lb": "elasticloadbalancing",
    "aws_route53_": "route53",
    **dict.fromkeys(
        (
            "aws_vpc",
            "aws_subnet",
            "aws_eip",
            "aws_nat_gateway",
            "aws_internet_gateway",
            "aws_route",
            "aws_default_security_group",
            "aws_security_group",
            "aws_flow_log",
            "aws_launch_template",
        ),
        "ec2",
    ),
}


def test_aws_ci_roles_are_scoped_to_what_their_stacks_touch(local_synth: Synth) -> None:
    """No AdministratorAccess for stacks that only need the state bucket (gcp-*) or Route 53
    (global), and no ReadOnlyAccess that reads every S3 object of the account: each role's
    inline policy names the state objects (Terraform S3 backend docs: the key and, with
    use_lockfile, `<key>.tflock`; KMS Encrypt/Decrypt/GenerateDataKey with kms_key_id) and the
    services, region, names and zone its stacks use."""
    fleet = local_synth.fleet
    doc = local_synth.stacks["bootstrap"]
    text = json.dumps(doc)
    assert "AdministratorAccess" not in text
    assert "ReadOnlyAccess" not in text
    (bucket_id,) = resources(doc, "aws_s3_bucket")
    (key_id,) = resources(doc, "aws_kms_key")
    (zone_id,) = data(doc, "aws_route53_zone")
    bucket, key = f"${{aws_s3_bucket.{bucket_id}.arn}}", f"${{aws_kms_key.{key_id}.arn}}"

    def objects(statements: list[dict[str, Any]]) -> set[str]:
        return {r for st in statements if "s3:GetObject" in _actions([st]) for r in _resources(st)}

    # plan: reads every stack's state and decrypts it; writes nothing, reads no other object.
    plan = _ci_policy(doc, "github_plan_role")
    stacks = [n for n in fleet.stack_names() if n != "bootstrap"]
    assert objects(plan) == {f"{bucket}/{fleet.project}/{s}.tfstate" for s in stacks}
    for action in _actions(plan):
        verb = action.split(":", 1)[1]
        assert verb.startswith(("Describe", "Get", "List")) or verb == "Decrypt", action
    assert next(st for st in plan if st["Sid"] == "UseStateKey")["Resource"] == key

    # gcp-*: its own state object and lock file, nothing else in AWS.
    gcp = _ci_policy(doc, "github_deploy_role_gcp_asia_southeast1")
    own = f"{bucket}/{fleet.project}/gcp-asia-southeast1.tfstate"
    assert {a.split(":")[0] for a in _actions(gcp)} == {"s3", "kms"}
    assert objects(gcp) == {own, f"{own}.tflock"}
    assert set(_actions(gcp)) == {
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey",
    }

    # global: state (its own, and the regions' for remote state), Route 53 in the fleet's zone.
    glob = _ci_policy(doc, "github_deploy_role_global")
    assert {a.split(":")[0] for a in _actions(glob)} == {"s3", "kms", "route53"}
    own = f"{bucket}/{fleet.project}/global.tfstate"
    assert objects(glob) == {own, f"{own}.tflock"} | {
        f"{bucket}/{fleet.project}/{r.stack_name}.tfstate" for r in fleet.regions
    }
    records = next(st for st in glob if "route53:ChangeResourceRecordSets" in _actions([st]))
    assert _resources(records) == [f"arn:aws:route53:::hostedzone/${{data.aws_route53_zone.{zone_id}.zone_id}}"]

    # aws-<region>: regional services only in its region, IAM only on its own names.
    region = local_synth.stacks["aws-us-west-2"]
    deploy = _ci_policy(doc, "github_deploy_role_aws_us_west_2")
    for st in deploy:
        if any(
            a.split(":")[0] in {"ec2", "elasticloadbalancing", "autoscaling", "acm", "logs", "cloudwatch"}
            for a in _actions([st])
        ):
            assert st["Condition"]["StringEquals"]["aws:RequestedRegion"] == "us-west-2", st["Sid"]
        if _actions([st]) & {"kms:*"}:
            assert st["Condition"]["StringEquals"]["aws:ResourceTag/Stack"] == "aws-us-west-2"
    assert "*" not in _actions(deploy)
    assert not {a for a in _actions(deploy) if a in ("iam:*", "s3:*", "route53:*")}
    iam_statements = [st for st in deploy if any(a.startswith("iam:") for a in _actions([st]))]
    for st in iam_statements:
        if st["Sid"] == "ServiceLinkedRoles":
            continue
        for arn in _resources(st):
            assert arn.split("/", 1)[1] == "llm-fleet-us-west-2*", arn
    passes = next(st for st in deploy if st["Sid"] == "PassStackRoles")
    assert passes["Condition"]["StringEquals"]["iam:PassedToService"] == [
        "ec2.amazonaws.com",
        "vpc-flow-logs.amazonaws.com",
    ]
    attach = next(st for st in deploy if st["Sid"] == "AttachOnlySsmCore")
    assert attach["Condition"]["ArnEquals"]["iam:PolicyARN"] == "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    # ... and it covers what the stack creates: every service, its IAM names, its tagged keys.
    allowed = {a.split(":")[0] for a in _actions(deploy)}
    for rtype in region["resource"]:
        service = next((s for prefix, s in SERVICE_OF_RESOURCE.items() if rtype.startswith(prefix)), None)
        assert service in allowed, f"{rtype}: served by {service}"
    for rtype in ("aws_iam_role", "aws_iam_instance_profile"):
        for block in resources(region, rtype).values():
            assert str(block.get("name") or block.get("name_prefix")).startswith("llm-fleet-us-west-2"), block
    for block in resources(region, "aws_kms_key").values():
        assert block["tags"]["Stack"] == "aws-us-west-2"


def test_bootstrap_reuses_an_existing_github_oidc_provider(variant_synths: dict[str, Synth]) -> None:
    """IAM allows one OIDC provider per URL in an account (CreateOpenIDConnectProvider:
    EntityAlreadyExists); `github.oidc_provider: existing` reads the account's provider and the
    roles trust it, so bootstrap applies where another project already created it."""
    synth = variant_synths["accelerator"]
    assert synth.fleet.github.oidc_provider == "existing"
    doc = synth.stacks["bootstrap"]
    assert resources(doc, "aws_iam_openid_connect_provider") == {}
    (provider,) = data(doc, "aws_iam_openid_connect_provider").values()
    assert provider["url"] == "https://token.actions.githubusercontent.com"
    roles = resources(doc, "aws_iam_role")
    for name, role in roles.items():
        if not name.startswith("github_"):
            continue
        principal = json.loads(role["assume_role_policy"])["Statement"][0]["Principal"]
        assert principal == {"Federated": "${data.aws_iam_openid_connect_provider.github_oidc_provider.arn}"}
    assert doc["output"]["github_oidc_provider_arn"]["value"] == (
        "${data.aws_iam_openid_connect_provider.github_oidc_provider.arn}"
    )


def test_fleet_backend_is_s3_with_lockfile(fleet_synth: Synth) -> None:
    fleet = fleet_synth.fleet
    for name in ("aws-eu-central-1", "global"):
        s3 = fleet_synth.stacks[name]["terraform"]["backend"]["s3"]
        assert s3["bucket"] == fleet.state.bucket
        assert s3["key"] == f"{fleet.project}/{name}.tfstate"
        assert s3["region"] == fleet.state.region
        assert s3["encrypt"] is True
        assert s3["use_lockfile"] is True
        # encrypt alone asks S3 for SSE-S3; the state key (by its alias) makes it SSE-KMS
        assert s3["kms_key_id"] == f"alias/{fleet.state.bucket}"
    assert "local" in fleet_synth.stacks["bootstrap"]["terraform"]["backend"]
    remote = data(fleet_synth.stacks["global"], "terraform_remote_state")
    assert {r["backend"] for r in remote.values()} == {"s3"}
    keys = {r["config"]["key"] for r in remote.values()}
    assert f"{fleet.project}/aws-us-west-2.tfstate" in keys
    assert f"{fleet.project}/gcp-asia-southeast1.tfstate" in keys


def test_state_is_encrypted_with_the_bootstrap_key_not_sse_s3(fleet_synth: Synth) -> None:
    """Terraform S3 backend docs: `encrypt` alone is server-side encryption with S3's key;
    `kms_key_id` makes it the customer key. Every backend names the alias bootstrap creates."""
    from infra.naming import state_kms_alias

    fleet = fleet_synth.fleet
    alias = one(fleet_synth.stacks["bootstrap"], "aws_kms_alias")
    assert alias["name"] == state_kms_alias(fleet.state.bucket)
    assert alias["target_key_id"].startswith("${aws_kms_key.")
    for name, stack in fleet_synth.stacks.items():
        if name == "bootstrap":
            continue
        assert stack["terraform"]["backend"]["s3"]["kms_key_id"] == alias["name"], name
    assert state_kms_alias("state.example.org") == "alias/state-example-org"  # KMS alias characters


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
