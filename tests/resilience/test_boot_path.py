"""The instance path, run for real: image, boot script, agents, lifecycle (docs/instance.md).

The session's local region booted i1 from the AWS user data of the canary AWS region and i2
from the GCP user data of the GCP region (`devkit.localregion`); each pulled the image built
from `service/Dockerfile` from a registry with credentials. These tests read back what the
boot and the agents did: the container's settings against the instance contract, the
runtime user's access to what the boot mounted, the in-flight datapoints in moto CloudWatch
under the metric and dimension the target-tracking policy reads, the GCP time series, the
termination lifecycle hook completed after the drain, and the rebalance recommendation that
drains nothing.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from contract.facts import (
    AWS_IN_FLIGHT_METRIC,
    AWS_METRIC_DIMENSION,
    AWS_METRICS_NAMESPACE,
    CONTAINER_UID,
    GCP_IN_FLIGHT_METRIC_TYPE,
    KEYS_FILE_IN_CONTAINER,
    MODEL_CACHE_IN_CONTAINER,
    Cloud,
)
from devkit.images import DOCKERFILE
from devkit.proc import wait_until
from infra.boot import container_env, render_boot_script
from tests.resilience.conftest import ResilienceRegion

pytestmark = [pytest.mark.engine, pytest.mark.haproxy, pytest.mark.moto, pytest.mark.slow, pytest.mark.timeout(1500)]

AGENT_PERIOD_BOUND_S = 90  # a few METRICS_PERIOD_S on a loaded machine


def _exec(region: ResilienceRegion, name: str, *argv: str) -> subprocess.CompletedProcess[str]:
    instance = region.region.instance(name)
    rt = region.region.cloud.rt  # type: ignore[union-attr]
    assert rt is not None
    proc = rt.run(["exec", instance.m.contract.boot.container_name, *argv], timeout_s=120, check=False)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def test_each_cloud_booted_from_its_user_data(region: ResilienceRegion) -> None:
    clouds = {instance.name: instance.kind for instance in region.region.instances}
    assert clouds == {"i1": Cloud.AWS, "i2": Cloud.GCP}
    for instance in region.region.instances:
        log = instance.m.boot_log.read_text()
        assert "boot: done" in log, log[-2000:]
        assert "Login Succeeded" in log, "the boot logged in to the registry it pulls from"
        assert "weights:" in log, "the weights came from the object-store mirror"
        assert instance.m.user_data_path.read_text().startswith("#!/bin/bash\n")
        for unit in ("llm-fleet.service", "llm-fleet-agent.service"):
            assert instance.m.unit_state(unit)["ActiveState"] == "active", unit
    assert region.region.instance("i1").m.unit_state("llm-fleet-lifecycle.service")["ActiveState"] == "active"


def test_the_local_user_data_is_the_clouds_but_for_the_host_facts(region: ResilienceRegion) -> None:
    """What a local instance runs is the fleet's rendering, with only the per-host facts
    (ports, container name, a CPU engine, scaled windows) different."""
    allowed = {
        "SERVICE_PORT", "METRICS_PORT", "CONTAINER_NAME", "DEVICE", "LOG_DRIVER",
        "LLM_SERVICE_PORT", "LLM_SERVICE_METRICS_PORT", "LLM_SERVICE_DEVICE", "LLM_SERVICE_ENGINE_ARGS",
        "LLM_SERVICE_ENGINE_ENV", "LLM_SERVICE_DRAIN_SERVE_S", "LLM_SERVICE_DRAIN_FINISH_S",
        "LLM_SERVICE_GCP_DRAIN_SERVE_S", "LLM_SERVICE_GCP_DRAIN_FINISH_S", "LLM_SERVICE_ENGINE_STOP_TIMEOUT_S",
        "LLM_SERVICE_PROBE_INTERVAL_S", "LLM_SERVICE_PROBE_TIMEOUT_S", "LLM_SERVICE_RESTART_BACKOFF_S",
        "LLM_SERVICE_ENGINE_START_TIMEOUT_S", "LLM_SERVICE_AWS_POLL_INTERVAL_S", "LLM_SERVICE_LOG_LEVEL",
    }  # fmt: skip
    local = region.region.local
    assert local is not None
    for instance in region.region.instances:
        fleet_rendering = set(render_boot_script(local, instance.region).splitlines())
        ran = set(instance.m.user_data_path.read_text().splitlines())
        differing = {line.split("=", 1)[0] for line in (fleet_rendering ^ ran)}
        assert differing <= allowed, differing - allowed
        assert {"SERVICE_PORT", "CONTAINER_NAME", "DEVICE"} <= differing  # the host facts did differ


def test_the_aws_boot_log_reaches_cloudwatch_logs(region: ResilienceRegion) -> None:
    """Boot failures are visible without SSH: the boot log is in the region's instance log group
    (the stack's), in a stream named for the instance."""
    i1 = region.region.instance("i1")
    assert i1.identity is not None
    group = i1.m.contract.boot.log_group
    assert group is not None
    logs = region.moto.client("logs", i1.region.region)
    events = logs.get_log_events(logGroupName=group, logStreamName=f"{i1.identity.instance_id}/boot")["events"]
    messages = [event["message"] for event in events]
    assert any("boot: done" in message for message in messages), messages[-5:]
    assert any("Login Succeeded" in message for message in messages)


def test_the_image_is_the_dockerfiles_and_carries_no_iac(region: ResilienceRegion) -> None:
    cloud = region.region.cloud
    assert cloud is not None
    assert cloud.rt is not None
    name = region.region.instance("i1").m.contract.boot.container_name
    image = cloud.rt.inspect(name, "{{.ImageName}}")
    assert image == cloud.image
    user = cloud.rt.inspect(name, "{{.Config.User}}")
    assert user == f"{CONTAINER_UID}:{CONTAINER_UID}"
    probe = _exec(
        region, "i1", "python3", "-c", "import importlib.util as u; print(u.find_spec('infra'), u.find_spec('devkit'))"
    )
    assert probe.stdout.split() == ["None", "None"], probe
    assert f"ARG CONTAINER_UID={CONTAINER_UID}" in DOCKERFILE.read_text()


def test_the_container_runs_with_the_contracts_settings(region: ResilienceRegion) -> None:
    """Inside the running container, the service's settings are the rendered contract's."""
    for instance in region.region.instances:
        printed = _exec(region, instance.name, "python3", "-m", "service", "--print-settings")
        assert printed.returncode == 0, printed.stderr
        running: dict[str, Any] = json.loads(printed.stdout)
        env = container_env(instance.m.contract)
        assert running["served_model_name"] == env["LLM_SERVICE_SERVED_MODEL_NAME"]
        assert running["model"] == env["LLM_SERVICE_MODEL"] == "/models"
        assert running["max_model_len"] == int(env["LLM_SERVICE_MAX_MODEL_LEN"])
        assert running["max_tokens_cap"] == int(env["LLM_SERVICE_MAX_TOKENS_CAP"])
        assert running["metrics_host"] == "127.0.0.1"
        features = running["features"]
        rate = instance.m.contract.service.features.rate_limit
        assert features["rate_limit"]["requests_per_minute"] == rate.requests_per_minute
        assert features["cache"]["ttl_s"] == instance.m.contract.service.features.cache.ttl_s
        assert running["watch_aws"] == (instance.kind == Cloud.AWS)
        assert running["watch_gcp"] == (instance.kind == Cloud.GCP)
        assert running["aws_metadata_url" if instance.kind == Cloud.AWS else "gcp_metadata_url"].endswith(
            instance.stand_in.host  # type: ignore[union-attr]
        )


def test_the_runtime_user_reads_the_keys_and_writes_the_cache(region: ResilienceRegion) -> None:
    keys = _exec(region, "i2", "python3", "-c", f"print(open('{KEYS_FILE_IN_CONTAINER}').read().count('sk-local-'))")
    assert keys.stdout.strip() == "1", keys
    cache = _exec(region, "i2", "sh", "-c", f"touch {MODEL_CACHE_IN_CONTAINER}/probe && echo ok")
    assert cache.stdout.strip() == "ok", cache


def _in_flight_datapoints(region: ResilienceRegion) -> list[dict[str, Any]]:
    i1 = region.region.instance("i1")
    cloudwatch = region.moto.client("cloudwatch", i1.region.region)
    now = datetime.now(UTC)
    stats = cloudwatch.get_metric_statistics(
        Namespace=AWS_METRICS_NAMESPACE,
        MetricName=AWS_IN_FLIGHT_METRIC,
        Dimensions=[{"Name": AWS_METRIC_DIMENSION, "Value": i1.m.contract.boot.asg_name}],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
        Period=60,
        Statistics=["Maximum", "SampleCount"],
    )
    points: list[dict[str, Any]] = stats["Datapoints"]
    return points


def test_agents_publish_the_in_flight_signal_under_load(region: ResilienceRegion) -> None:
    """Through HAProxy, the AWS agent's datapoints reach moto CloudWatch under the metric and
    dimension the stack's target tracking reads, and they are not 0; the GCP agent's time
    series reach Cloud Monitoring (its stand-in) the same way."""
    gcp = region.region.instance("i2")
    with region.load(clients=6) as load:
        load.wait_for(6, 120)

        def busy_datapoint() -> bool:
            return any(point["Maximum"] > 0 for point in _in_flight_datapoints(region))

        def busy_series() -> bool:
            series = gcp.stand_in.stats()["time_series"]  # type: ignore[union-attr]
            return any(s["type"] == GCP_IN_FLIGHT_METRIC_TYPE and s["value"] > 0 for s in series)

        wait_until(busy_datapoint, AGENT_PERIOD_BOUND_S, "a non-zero in-flight datapoint in moto CloudWatch", 2)
        wait_until(busy_series, AGENT_PERIOD_BOUND_S, "a non-zero in-flight time series on the GCP stand-in", 2)
        load.stop()
    assert gcp.stand_in is not None
    assert gcp.identity is not None
    series = gcp.stand_in.stats()["time_series"]
    assert {s["project"] for s in series} == {gcp.identity.gcp_project}
    assert {s["labels"]["instance_id"] for s in series} == {gcp.identity.gcp_instance_id}
    assert {s["labels"]["zone"] for s in series} == {gcp.identity.gcp_zone}


def test_the_lifecycle_hook_is_completed_after_the_drain(region: ResilienceRegion) -> None:
    """Scale-in: the instance's target lifecycle state turns Terminated; the lifecycle agent
    stops the service (a clean drain, exit 0), then completes the hook; Auto Scaling (moto,
    with the action devkit.motoext adds) takes the instance out of the group and terminates it."""
    i1 = region.region.instance("i1")
    assert i1.identity is not None
    instance_id = i1.identity.instance_id
    group = i1.m.contract.boot.asg_name
    autoscaling = region.moto.client("autoscaling", i1.region.region)
    ec2 = region.moto.client("ec2", i1.region.region)
    i1.trigger("terminate")
    code = i1.wait_exit(120)
    assert code == 0, i1.log_tail(20)

    def completed() -> bool:
        actions = httpx.get(f"{region.moto.endpoint}/__llm_fleet__/lifecycle-actions", timeout=10).json()
        return any(a["InstanceId"] == instance_id for a in actions)

    wait_until(completed, 60, "CompleteLifecycleAction from the lifecycle agent", 1)
    members = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
    assert instance_id not in {i["InstanceId"] for i in members["Instances"]}
    state = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state == "terminated"
    agent_log = (i1.m.root / "var/log/units/llm-fleet-lifecycle.service.log").read_text()
    assert "lifecycle action completed" in agent_log


def test_a_rebalance_recommendation_drains_nothing(region: ResilienceRegion) -> None:
    i1 = region.region.instance("i1")
    i1.trigger("rebalance")

    def counted() -> bool:
        return "llm_gateway_rebalance_recommendations_total 1.0" in i1.metrics()

    wait_until(counted, 30, "the rebalance recommendation counted", 0.5)
    time.sleep(2)
    assert i1.health()["ready"] is True
    assert i1.running()


def test_the_aws_user_data_in_the_launch_template_is_the_rendered_boot_script(region: ResilienceRegion) -> None:
    """The deployed launch template (moto) carries the fleet's boot script, gzip-compressed."""
    import base64

    fleet = region.moto.fleet
    aws = fleet.canary if fleet.canary.cloud == Cloud.AWS else fleet.regions_of(Cloud.AWS)[0]
    ec2 = region.moto.client("ec2", aws.region)
    templates = ec2.describe_launch_templates()["LaunchTemplates"]
    (template,) = [t for t in templates if t["LaunchTemplateName"].startswith(f"{fleet.project}-{aws.region}-")]
    version = ec2.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"], Versions=["$Latest"])
    data = version["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"]
    assert gzip.decompress(base64.b64decode(data)).decode() == render_boot_script(fleet, aws)
