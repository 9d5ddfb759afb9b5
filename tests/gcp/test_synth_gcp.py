"""Synth-and-assert: every property a `gcp-<region>` stack promises (docs/gcp.md)."""

from __future__ import annotations

import pytest

from infra.boot import render_boot_script
from infra.config import parse_fleet_text
from tests.gcp.conftest import FLEETS, Synthesized
from tests.gcp.helpers import one, pools, ref, resources

DEFAULT = ("default", "gcp-asia-southeast1")
PUBLIC_PATHS = {"/v1/chat/completions", "/v1/completions", "/v1/models"}
HEALTH_CHECK_RANGES = {"35.191.0.0/16", "130.211.0.0/22"}

# (label, stack) -> expected {pool: (autoscaler min, autoscaler max)}, worked out by hand from
# the fleet file's min_replicas / max_replicas / on_demand_base (docs/gcp.md, "Sizing").
EXPECTED_SIZES = {
    # min 2, max 4, base 1: one on-demand, 1..3 spot above it
    ("default", "gcp-asia-southeast1"): {"standard": (1, 1), "spot": (1, 3)},
    # min 3, max 6, base 2 (reserved)
    ("variants", "gcp-us-central1"): {"standard": (2, 2), "spot": (1, 4)},
    # min 0, max 3, no base: spot only
    ("variants", "gcp-europe-west4"): {"spot": (0, 3)},
    # min = max = base = 2: on-demand only
    ("variants", "gcp-asia-northeast1"): {"standard": (2, 2)},
    # base 3 above min 1: the base pool may shrink to 1, spot 0..2
    ("variants", "gcp-us-east4"): {"standard": (1, 3), "spot": (0, 2)},
    ("cpu", "gcp-europe-west1"): {"standard": (1, 1), "spot": (0, 1)},
}
ALL_GCP = sorted(EXPECTED_SIZES)


def test_gcp_synth_never_loads_aws_bindings(synthesized: Synthesized) -> None:
    assert not synthesized.aws_bindings_loaded_by_gcp_synth


def test_every_gcp_stack_is_covered(synthesized: Synthesized) -> None:
    assert sorted(synthesized.gcp_stacks()) == sorted([*ALL_GCP, ("mixed", "gcp-asia-southeast1")])


@pytest.mark.parametrize(("label", "stack"), ALL_GCP)
def test_mig_sizes_follow_min_max_and_base(synthesized: Synthesized, label: str, stack: str) -> None:
    found = pools(synthesized.stack(label, stack))
    sizes = {
        pool: (
            p["autoscaler"]["autoscaling_policy"]["min_replicas"],
            p["autoscaler"]["autoscaling_policy"]["max_replicas"],
        )
        for pool, p in found.items()
    }
    assert sizes == EXPECTED_SIZES[(label, stack)]


@pytest.mark.parametrize(("label", "stack"), ALL_GCP)
def test_autoscalers_target_their_own_group(synthesized: Synthesized, label: str, stack: str) -> None:
    doc = synthesized.stack(label, stack)
    for pool in pools(doc).values():
        assert (
            pool["autoscaler"]["target"] == f"${{google_compute_region_instance_group_manager.{pool['group_id']}.id}}"
        )
        assert pool["group"]["version"][0]["instance_template"] == (
            f"${{google_compute_instance_template.{pool['template_id']}.self_link_unique}}"
        )
        assert "target_size" not in pool["group"], "the autoscaler owns the size"


@pytest.mark.parametrize(("label", "stack"), ALL_GCP)
def test_regional_migs_span_three_zones(synthesized: Synthesized, label: str, stack: str) -> None:
    region = stack.removeprefix("gcp-")
    for pool in pools(synthesized.stack(label, stack)).values():
        zones = pool["group"]["distribution_policy_zones"]
        # Three zones where the region has them: three spot capacity pools instead of two.
        assert len(zones) == 3
        assert all(z.startswith(f"{region}-") for z in zones)
        assert pool["group"]["region"] == region


@pytest.mark.parametrize(("label", "stack"), ALL_GCP)
def test_gpu_templates_turn_secure_boot_off_keep_vtpm_and_integrity(
    synthesized: Synthesized, label: str, stack: str
) -> None:
    """Shielded VM docs: Secure Boot refuses unsigned boot components and kernel modules; the
    Deep Learning VM's DKMS-built NVIDIA modules are unsigned, so `nvidia-smi` fails at boot
    with it on. Every template here carries a GPU, so every one turns it off (and only it)."""
    for pool in pools(synthesized.stack(label, stack)).values():
        template = pool["template"]
        assert template["guest_accelerator"], "a GPU template"
        assert template["shielded_instance_config"] == {
            "enable_secure_boot": False,
            "enable_vtpm": True,
            "enable_integrity_monitoring": True,
        }


@pytest.mark.parametrize(("label", "stack"), ALL_GCP)
def test_autoscaled_regional_migs_use_even_or_balanced_shape(synthesized: Synthesized, label: str, stack: str) -> None:
    """Compute Engine docs ("Set a target distribution shape", limitations): to autoscale a
    regional MIG its target distribution shape must be BALANCED or EVEN (ANY is refused)."""
    found = pools(synthesized.stack(label, stack))
    assert found
    for pool in found.values():
        assert pool["autoscaler"]["autoscaling_policy"]["max_replicas"] >= 1  # autoscaled
        assert pool["group"]["distribution_policy_target_shape"] == "BALANCED"
        # BALANCED requires proactive instance redistribution to be off.
        assert pool["group"]["update_policy"]["instance_redistribution_type"] == "NONE"


def test_standard_and_spot_templates(synthesized: Synthesized) -> None:
    found = pools(synthesized.stack(*DEFAULT))
    standard, spot = found["standard"]["template"], found["spot"]["template"]
    assert standard["scheduling"] == {
        "provisioning_model": "STANDARD",
        "preemptible": False,
        "automatic_restart": True,
        "on_host_maintenance": "TERMINATE",
    }
    assert spot["scheduling"] == {
        "provisioning_model": "SPOT",
        "preemptible": True,
        "automatic_restart": False,
        "on_host_maintenance": "TERMINATE",
        "instance_termination_action": "DELETE",
    }
    assert standard["reservation_affinity"] == {"type": "ANY_RESERVATION"}
    assert spot["reservation_affinity"] == {"type": "NO_RESERVATION"}


def test_named_reservations_are_consumed_by_the_base_only(synthesized: Synthesized) -> None:
    found = pools(synthesized.stack("variants", "gcp-us-central1"))
    assert found["standard"]["template"]["reservation_affinity"] == {
        "type": "SPECIFIC_RESERVATION",
        "specific_reservation": {
            "key": "compute.googleapis.com/reservation-name",
            "values": ["gpu-res-a", "gpu-res-b"],
        },
    }
    assert found["spot"]["template"]["reservation_affinity"] == {"type": "NO_RESERVATION"}


@pytest.mark.parametrize(
    ("label", "stack", "machine", "accelerator"),
    [
        ("default", "gcp-asia-southeast1", "g2-standard-8", "nvidia-l4"),
        ("variants", "gcp-us-central1", "n1-standard-8", "nvidia-tesla-t4"),
        ("variants", "gcp-asia-northeast1", "a2-highgpu-1g", "nvidia-tesla-a100"),
    ],
)
def test_gpu_machine_types_come_from_the_catalogue(
    synthesized: Synthesized, label: str, stack: str, machine: str, accelerator: str
) -> None:
    for pool in pools(synthesized.stack(label, stack)).values():
        assert pool["template"]["machine_type"] == machine
        assert pool["template"]["guest_accelerator"] == [{"type": accelerator, "count": 1}]


@pytest.mark.parametrize(("label", "stack"), ALL_GCP)
def test_templates_are_hardened(synthesized: Synthesized, label: str, stack: str) -> None:
    doc = synthesized.stack(label, stack)
    account = one(doc, "google_service_account")
    email = ref("google_service_account", account, "email", doc)
    for pool in pools(doc).values():
        t = pool["template"]
        # Secure Boot is the GPU-specific exception (test below); the rest of shielded VM stays.
        assert t["shielded_instance_config"]["enable_vtpm"] is True
        assert t["shielded_instance_config"]["enable_integrity_monitoring"] is True
        assert t["metadata"]["enable-oslogin"] == "TRUE"
        assert t["metadata"]["block-project-ssh-keys"] == "TRUE"
        assert t["metadata"]["serial-port-enable"] == "FALSE"
        (nic,) = t["network_interface"]
        assert "access_config" not in nic, "no public IP"
        assert t["can_ip_forward"] is False
        assert t["service_account"] == {"email": email, "scopes": ["cloud-platform"]}
        assert t["lifecycle"] == {"create_before_destroy": True}
        assert len(t["name_prefix"]) <= 37


def test_boot_and_drain_scripts(synthesized: Synthesized) -> None:
    for pool in pools(synthesized.stack(*DEFAULT)).values():
        meta = pool["template"]["metadata"]
        boot = meta["startup-script"]
        fleet = parse_fleet_text(FLEETS[DEFAULT[0]]["fleet"])
        assert boot == render_boot_script(fleet, fleet.region(DEFAULT[1]))
        assert "CLOUD=gcp\n" in boot
        assert "custom.googleapis.com/llm_fleet/requests_in_flight" in boot
        drain = meta["shutdown-script"]
        assert drain.startswith("#!/bin/bash\n")
        # Inside the 90 s GCP gives a shutdown script on deletion (2 s margin).
        assert "timeout 88 systemctl stop llm-fleet.service" in drain


def test_service_account_least_privilege(synthesized: Synthesized) -> None:
    doc = synthesized.stack("variants", "gcp-us-central1")
    account = one(doc, "google_service_account")
    assert len(account["account_id"]) <= 30
    member = f"serviceAccount:{ref('google_service_account', account, 'email', doc)}"
    roles = sorted(r["role"] for r in resources(doc, "google_project_iam_member").values())
    assert roles == ["roles/logging.logWriter", "roles/monitoring.metricWriter"]
    assert all(r["member"] == member for r in resources(doc, "google_project_iam_member").values())
    secrets = resources(doc, "google_secret_manager_secret_iam_member").values()
    # The API keys, and the Hugging Face token this fleet names (gated models, hub rate limits).
    assert sorted((s["secret_id"], s["role"], s["member"]) for s in secrets) == [
        ("llm-fleet-api-keys", "roles/secretmanager.secretAccessor", member),
        ("llm-fleet-hf-token", "roles/secretmanager.secretAccessor", member),
    ]
    # No token secret in the default fleet: only the API keys are readable.
    default = resources(synthesized.stack(*DEFAULT), "google_secret_manager_secret_iam_member").values()
    assert [s["secret_id"] for s in default] == ["llm-fleet-api-keys"]
    bucket = one(doc, "google_storage_bucket_iam_member")
    assert (bucket["bucket"], bucket["role"], bucket["member"]) == (
        "llm-weights-example",
        "roles/storage.objectViewer",
        member,
    )
    # No weights mirror in the default fleet: no bucket grant.
    assert resources(synthesized.stack(*DEFAULT), "google_storage_bucket_iam_member") == {}


def test_network_nat_and_firewall(synthesized: Synthesized) -> None:
    doc = synthesized.stack(*DEFAULT)
    assert one(doc, "google_compute_network")["auto_create_subnetworks"] is False
    subnets = resources(doc, "google_compute_subnetwork")
    instances = next(s for n, s in subnets.items() if n.startswith("network_instances"))
    proxy = next(s for n, s in subnets.items() if n.startswith("network_proxy_only"))
    assert instances["private_ip_google_access"] is True
    assert "log_config" in instances
    assert (proxy["purpose"], proxy["role"]) == ("REGIONAL_MANAGED_PROXY", "ACTIVE")
    nat = one(doc, "google_compute_router_nat")
    assert nat["source_subnetwork_ip_ranges_to_nat"] == "LIST_OF_SUBNETWORKS"
    assert nat["subnetwork"][0]["name"] == ref("google_compute_subnetwork", instances, "id", doc)

    (rule,) = resources(doc, "google_compute_firewall").values()
    assert rule["direction"] == "INGRESS"
    assert set(rule["source_ranges"]) == HEALTH_CHECK_RANGES | {proxy["ip_cidr_range"]}
    assert rule["allow"] == [{"protocol": "tcp", "ports": ["8000"]}]
    account = one(doc, "google_service_account")
    assert rule["target_service_accounts"] == [ref("google_service_account", account, "email", doc)]


def test_health_checks_live_slow_ready_fast(synthesized: Synthesized) -> None:
    doc = synthesized.stack("variants", "gcp-us-east4")
    checks = resources(doc, "google_compute_region_health_check")
    live = next(c for n, c in checks.items() if n.startswith("health_live"))
    ready = next(c for n, c in checks.items() if n.startswith("health_ready"))
    assert live["http_health_check"] == {"port": 8000, "request_path": "/health/live"}
    assert ready["http_health_check"] == {"port": 8000, "request_path": "/health/ready"}
    assert ready["check_interval_sec"] * ready["unhealthy_threshold"] < 30, "out within the spot notice"
    assert live["check_interval_sec"] * live["unhealthy_threshold"] > ready["check_interval_sec"] * 10
    live_id = ref("google_compute_region_health_check", live, "id", doc)
    for pool in pools(doc).values():
        # cold_start_s: 900 in this fleet.
        assert pool["group"]["auto_healing_policies"] == {"health_check": live_id, "initial_delay_sec": 900}
        assert pool["autoscaler"]["autoscaling_policy"]["cooldown_period"] == 900
    backend = one(doc, "google_compute_region_backend_service")
    assert backend["health_checks"] == [ref("google_compute_region_health_check", ready, "id", doc)]


def test_autohealing_delay_is_the_gpus_cold_start_budget_without_an_override(synthesized: Synthesized) -> None:
    """The default fleet sets no service.cold_start_s: the L4's written GCP budget sizes the
    autohealing initial delay and the autoscaler's initialization period."""
    from infra.catalog import COLD_START_BUDGETS, Cloud

    budget = COLD_START_BUDGETS[Cloud.GCP]["l4"].cold_start_s
    for pool in pools(synthesized.stack(*DEFAULT)).values():
        assert pool["group"]["auto_healing_policies"]["initial_delay_sec"] == budget
        assert pool["autoscaler"]["autoscaling_policy"]["cooldown_period"] == budget


@pytest.mark.parametrize(
    ("label", "stack", "signal"),
    [
        (
            "default",
            "gcp-asia-southeast1",
            {"metric": [{"name": "custom.googleapis.com/llm_fleet/requests_in_flight", "target": 8, "type": "GAUGE"}]},
        ),
        (
            "variants",
            "gcp-europe-west4",
            {"metric": [{"name": "custom.googleapis.com/llm_fleet/gpu_utilization", "target": 70, "type": "GAUGE"}]},
        ),
        ("cpu", "gcp-europe-west1", {"cpu_utilization": {"target": 0.6}}),
    ],
)
def test_autoscaling_signal(synthesized: Synthesized, label: str, stack: str, signal: dict[str, object]) -> None:
    for pool in pools(synthesized.stack(label, stack)).values():
        policy = pool["autoscaler"]["autoscaling_policy"]
        assert {k: policy[k] for k in signal} == signal
        assert not ({"metric", "cpu_utilization"} - set(signal)) & set(policy)
        # scale_in_cooldown_s 10 in "variants" is below GCP's 60 s minimum window.
        assert 60 <= policy["scale_in_control"]["time_window_sec"] <= 3600


def test_load_balancer(synthesized: Synthesized) -> None:
    doc = synthesized.stack(*DEFAULT)
    backend = one(doc, "google_compute_region_backend_service")
    assert backend["load_balancing_scheme"] == "EXTERNAL_MANAGED"
    assert backend["timeout_sec"] >= 300
    assert 0 < backend["connection_draining_timeout_sec"] < 30
    groups = {
        f"${{google_compute_region_instance_group_manager.{p['group_id']}.instance_group}}" for p in pools(doc).values()
    }
    assert {b["group"] for b in backend["backend"]} == groups
    assert len(groups) == 2
    for pool in pools(doc).values():
        assert pool["group"]["named_port"] == [{"name": backend["port_name"], "port": 8000}]

    policy = one(doc, "google_compute_region_ssl_policy")
    assert (policy["profile"], policy["min_tls_version"]) == ("MODERN", "TLS_1_2")
    https = one(doc, "google_compute_region_target_https_proxy")
    assert https["ssl_policy"] == ref("google_compute_region_ssl_policy", policy, "id", doc)
    cert = one(doc, "google_certificate_manager_certificate")
    auth = one(doc, "google_certificate_manager_dns_authorization")
    assert https["certificate_manager_certificates"] == [ref("google_certificate_manager_certificate", cert, "id", doc)]
    assert cert["location"] == auth["location"] == "asia-southeast1"
    assert auth["domain"] == "api.example.com"
    # The wildcard covers asia-southeast1.api.example.com; one authorization covers both names.
    assert cert["managed"]["domains"] == ["api.example.com", "*.api.example.com"]
    assert cert["managed"]["dns_authorizations"] == [
        ref("google_certificate_manager_dns_authorization", auth, "id", doc)
    ]

    address = one(doc, "google_compute_address")
    assert address["address_type"] == "EXTERNAL"
    rules = resources(doc, "google_compute_forwarding_rule")
    assert sorted(r["port_range"] for r in rules.values()) == ["443", "80"]
    for r in rules.values():
        assert r["load_balancing_scheme"] == "EXTERNAL_MANAGED"
        assert r["ip_address"] == ref("google_compute_address", address, "id", doc)
        assert any("google_compute_subnetwork.network_proxy_only" in d for d in r["depends_on"])


def test_url_maps_forward_only_the_api_and_redirect_http(synthesized: Synthesized) -> None:
    doc = synthesized.stack(*DEFAULT)
    maps = resources(doc, "google_compute_region_url_map")
    https = next(m for n, m in maps.items() if n.startswith("lb_https_routes"))
    redirect = next(m for n, m in maps.items() if n.startswith("lb_http_redirect"))
    (matcher,) = https["path_matcher"]
    (rule,) = matcher["path_rule"]
    assert set(rule["paths"]) == PUBLIC_PATHS | {"/health/ready"}
    abort = matcher["default_route_action"]["fault_injection_policy"]["abort"]
    assert abort == {"http_status": 404, "percentage": 100}
    assert redirect["default_url_redirect"]["https_redirect"] is True
    assert redirect["default_url_redirect"]["redirect_response_code"] == "MOVED_PERMANENTLY_DEFAULT"
    proxies = {
        "https": one(doc, "google_compute_region_target_https_proxy")["url_map"],
        "http": one(doc, "google_compute_region_target_http_proxy")["url_map"],
    }
    assert proxies == {
        "https": ref("google_compute_region_url_map", https, "id", doc),
        "http": ref("google_compute_region_url_map", redirect, "id", doc),
    }


def test_outputs_the_global_stack_reads(synthesized: Synthesized) -> None:
    doc = synthesized.stack(*DEFAULT)
    address = one(doc, "google_compute_address")
    auth = one(doc, "google_certificate_manager_dns_authorization")
    out = {k: v["value"] for k, v in doc["output"].items()}
    assert out["lb_ip_address"] == ref("google_compute_address", address, "address", doc)
    assert out["endpoint"] == "asia-southeast1.api.example.com"
    record = ref("google_certificate_manager_dns_authorization", auth, "dns_resource_record", doc)[:-1]
    for field in ("name", "type", "data"):
        assert out[f"dns_authorization_record_{field}"] == f"{record}[0].{field}}}"


@pytest.mark.parametrize(("label", "stack"), ALL_GCP)
def test_labels_on_every_labelable_resource(synthesized: Synthesized, label: str, stack: str) -> None:
    doc = synthesized.stack(label, stack)
    labelable = (
        "google_compute_instance_template",
        "google_compute_address",
        "google_compute_forwarding_rule",
        "google_certificate_manager_certificate",
        "google_certificate_manager_dns_authorization",
    )
    for rtype in labelable:
        for body in resources(doc, rtype).values():
            labels = body["labels"]
            assert {k: labels[k] for k in ("project", "stack", "managed-by")} == {
                "project": "llm-fleet",
                "stack": stack,
                "managed-by": "cdktf",
            }
            if label == "variants":
                assert (labels["team"], labels["lives"]) == ("ml-infra", "yes-no")
    # Google resources never get AWS-style tags maps.
    for rtype, entries in doc["resource"].items():
        for body in entries.values():
            assert not isinstance(body.get("tags"), dict), rtype


# The API each Google resource type of a regional stack is served by.
API_OF_RESOURCE = {
    "google_compute_": "compute.googleapis.com",
    "google_certificate_manager_": "certificatemanager.googleapis.com",
    "google_secret_manager_": "secretmanager.googleapis.com",
    "google_service_account": "iam.googleapis.com",
    "google_project_iam_member": "cloudresourcemanager.googleapis.com",
    "google_storage_": "storage.googleapis.com",
}


@pytest.mark.parametrize(("label", "stack"), ALL_GCP)
def test_every_api_a_regional_stack_calls_is_enabled_by_bootstrap(
    synthesized: Synthesized, label: str, stack: str
) -> None:
    """SERVICE_DISABLED on a fresh project: every resource type here must be served by an API
    that the bootstrap stack enables (infra/constructs/gcp/project_services.py)."""
    from infra.config import parse_fleet_text
    from infra.constructs.gcp.project_services import required_services

    fleet = parse_fleet_text(str(FLEETS[label]["fleet"]), label)
    enabled = set(required_services(fleet))
    for rtype in synthesized.stack(label, stack)["resource"]:
        api = next((a for prefix, a in API_OF_RESOURCE.items() if rtype.startswith(prefix)), None)
        assert api is not None, f"{rtype}: which API serves it?"
        assert api in enabled, f"{rtype} needs {api}"


# The deploy role (infra/constructs/gcp/ci_roles.py) that may write each Google resource type of a
# regional stack (GCP IAM roles reference: Compute Instance Admin v1 = templates, MIGs,
# autoscalers; Network Admin = networking except firewall rules; Security Admin = firewall rules;
# Certificate Manager Owner; Service Account Admin; Project IAM Admin; Secret Manager Admin;
# Storage Admin).
DEPLOY_ROLE_OF_RESOURCE = {
    "google_compute_instance_template": "roles/compute.instanceAdmin.v1",
    "google_compute_region_instance_group_manager": "roles/compute.instanceAdmin.v1",
    "google_compute_region_autoscaler": "roles/compute.instanceAdmin.v1",
    "google_compute_firewall": "roles/compute.securityAdmin",
    "google_compute_network": "roles/compute.networkAdmin",
    "google_compute_subnetwork": "roles/compute.networkAdmin",
    "google_compute_router": "roles/compute.networkAdmin",
    "google_compute_router_nat": "roles/compute.networkAdmin",
    "google_compute_address": "roles/compute.networkAdmin",
    "google_compute_region_health_check": "roles/compute.networkAdmin",
    "google_compute_region_backend_service": "roles/compute.networkAdmin",
    "google_compute_region_url_map": "roles/compute.networkAdmin",
    "google_compute_region_target_https_proxy": "roles/compute.networkAdmin",
    "google_compute_region_target_http_proxy": "roles/compute.networkAdmin",
    "google_compute_forwarding_rule": "roles/compute.networkAdmin",
    "google_compute_region_ssl_policy": "roles/compute.networkAdmin",
    "google_certificate_manager_certificate": "roles/certificatemanager.owner",
    "google_certificate_manager_dns_authorization": "roles/certificatemanager.owner",
    "google_service_account": "roles/iam.serviceAccountAdmin",
    "google_project_iam_member": "roles/resourcemanager.projectIamAdmin",
    "google_secret_manager_secret_iam_member": "roles/secretmanager.admin",
    "google_storage_bucket_iam_member": "roles/storage.admin",
}


@pytest.mark.parametrize(("label", "stack"), ALL_GCP)
def test_the_deploy_account_holds_a_role_for_every_resource_type(
    synthesized: Synthesized, label: str, stack: str
) -> None:
    from infra.constructs.gcp.ci_roles import BUCKET_ADMIN, DEPLOY_ROLES, PROJECT_IAM_ADMIN, SECRET_ADMIN

    granted = {*DEPLOY_ROLES, PROJECT_IAM_ADMIN, SECRET_ADMIN, BUCKET_ADMIN}
    for rtype in synthesized.stack(label, stack)["resource"]:
        assert DEPLOY_ROLE_OF_RESOURCE.get(rtype) in granted, f"{rtype}: no deploy role writes it"


def test_provider_and_backend(synthesized: Synthesized) -> None:
    doc = synthesized.stack(*DEFAULT)
    assert doc["provider"]["google"] == [{"project": "llm-fleet-example", "region": "asia-southeast1"}]
    assert "aws" not in doc["provider"]
    assert doc["terraform"]["backend"] == {"local": {"path": "terraform.gcp-asia-southeast1.tfstate"}}
