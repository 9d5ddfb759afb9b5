"""The timing facts hold together: each relation asserted from the one definition of each number
(`contract.facts`), and the layers that use them read those definitions."""

from __future__ import annotations

import pytest

from contract import facts
from contract.facts import AWS, GATEWAY_KEEPALIVE_S, GCP, TIMING, Cloud, CloudTiming, stop_timeout_s
from service.config.settings import ServiceSettings


@pytest.mark.parametrize("timing", TIMING.values(), ids=lambda t: t.cloud.value)
def test_the_gateway_keepalive_outlasts_the_load_balancer(timing: CloudTiming) -> None:
    # A backend that closes an idle connection first races the load balancer's next request on
    # it (ALB: "configure the idle timeout of your application to be larger than the idle
    # timeout configured for the load balancer"; GCP: backend keepalive fixed at 600 s).
    assert timing.lb_idle_timeout_s < GATEWAY_KEEPALIVE_S


@pytest.mark.parametrize("timing", TIMING.values(), ids=lambda t: t.cloud.value)
def test_the_drains_fit_inside_the_notices(timing: CloudTiming) -> None:
    assert timing.drain.total_s + timing.margin_s <= timing.shutdown_budget_s
    assert timing.preemption_drain.total_s + timing.margin_s <= timing.preemption_notice_s


@pytest.mark.parametrize("timing", TIMING.values(), ids=lambda t: t.cloud.value)
def test_the_serve_window_outlasts_the_load_balancers_detection(timing: CloudTiming) -> None:
    # Readiness turns 503 at the start of the drain; the load balancer needs `detect_down_s` to
    # take the instance out, and the gateway keeps serving until then.
    assert timing.drain.serve_s >= timing.ready_check.detect_down_s
    assert timing.preemption_drain.serve_s >= timing.ready_check.detect_down_s


def test_docker_stop_waits_for_the_whole_drain() -> None:
    for cloud, timing in TIMING.items():
        assert stop_timeout_s(cloud) > timing.drain.total_s
    # GCP deletes a VM after its shutdown script's budget: the stop must fit inside it.
    assert stop_timeout_s(Cloud.GCP) <= GCP.shutdown_budget_s - GCP.margin_s


def test_the_lifecycle_hook_outlasts_the_container_stop() -> None:
    """Auto Scaling keeps a scaled-in instance until its container has stopped (drained)."""
    assert facts.lifecycle_heartbeat_s() > stop_timeout_s(Cloud.AWS)


def test_aws_spot_notice_is_the_sigterm_drain() -> None:
    """On AWS the spot notice drains with the default windows, which fit its 120 s."""
    assert AWS.preemption_drain == AWS.drain
    assert AWS.preemption_notice_s == 120


def test_the_services_defaults_are_these_facts() -> None:
    s = ServiceSettings.model_fields
    assert s["keepalive_s"].default == GATEWAY_KEEPALIVE_S
    assert s["drain_serve_s"].default == AWS.drain.serve_s
    assert s["drain_finish_s"].default == AWS.drain.finish_s
    assert s["engine_stop_timeout_s"].default == AWS.drain.engine_stop_s
    assert s["gcp_drain_serve_s"].default == GCP.preemption_drain.serve_s
    assert s["gcp_drain_finish_s"].default == GCP.preemption_drain.finish_s
    assert s["port"].default == facts.SERVICE_PORT
    assert s["metrics_host"].default == facts.METRICS_HOST == "127.0.0.1"
