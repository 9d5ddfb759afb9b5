"""One local region per package run: two instances booted from their rendered user data
(i1 from the AWS canary region's, i2 from the GCP region's), running the image built from
`service/Dockerfile`, behind HAProxy.

The instances boot against the session's moto deployment of the fleet's AWS stacks (their
Auto Scaling group, lifecycle hook and CloudWatch), a local registry with credentials, and a
cloud stand-in each (metadata, GCP APIs). A test that drains, preempts or scales in an
instance leaves it stopped; the `region` fixture boots a replacement before the next test
(a new machine: a notice cannot be taken back), so a test pays for a boot only when the one
before it needed one. The region is torn down when this package's tests are done (its
engines stop competing for the CPU with the tiers after it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from devkit.localregion import SERVED, Instance, LocalRegion
from tests.plugins.moto_fleet import MotoDeployment
from tests.resilience.load import LoadGenerator, LoadReport

_COUNTS = pytest.StashKey[list[tuple[str, str]]]()


@dataclass
class ResilienceRegion:
    region: LocalRegion
    moto: MotoDeployment

    def restore(self) -> None:
        """Boot a replacement for every stopped instance; wait until all are ready and UP."""
        for instance in self.region.instances:
            if not instance.running():
                instance.boot()
        for instance in self.region.instances:
            instance.wait_ready()
        self.region.wait_in_rotation(60)

    def load(self, **kwargs: int) -> LoadGenerator:
        return LoadGenerator(self.region.url, self.region.api_key, model=SERVED, **kwargs)

    def lb_retries(self) -> int:
        """HAProxy's retries + redispatches for the backend so far."""
        backend = self.region.lb.stats()["BACKEND"]
        return backend.retries + backend.redispatches

    def logs(self, instance: Instance) -> str:
        return f"{instance.name}: {instance.log_tail(15)}"


@pytest.fixture(scope="package")
def resilience_region(
    moto_deployment: MotoDeployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ResilienceRegion]:
    workdir = tmp_path_factory.mktemp("local-region")
    with contextlib.ExitStack() as stack:
        region = LocalRegion(workdir, moto_deployment.fleet, moto_deployment.endpoint, size=2)
        stack.callback(region.stop)
        holder = ResilienceRegion(region, moto_deployment)
        try:
            region.start()
        except Exception as exc:
            tails = " || ".join(holder.logs(instance) for instance in region.instances)
            pytest.fail(f"local region did not start: {exc} || {tails}")
        yield holder


@pytest.fixture
def region(resilience_region: ResilienceRegion) -> ResilienceRegion:
    resilience_region.restore()
    return resilience_region


RecordCounts = Callable[[LoadReport, int], None]


@pytest.fixture
def record_counts(request: pytest.FixtureRequest, record_property: Callable[[str, object], None]) -> RecordCounts:
    """Print a test's counts and keep them for the terminal summary and the junit report."""

    def record(report: LoadReport, retried: int) -> None:
        line = f"sent={report.sent} (streams {report.streams}) failed={len(report.failures)} retried={retried}"
        print(f"{request.node.name}: {line}")
        record_property("requests_sent", report.sent)
        record_property("requests_failed", len(report.failures))
        record_property("requests_retried", retried)
        request.config.stash.setdefault(_COUNTS, []).append((request.node.name, line))

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    counts = config.stash.get(_COUNTS, [])
    if counts:
        terminalreporter.section("resilience: requests through the load balancer")
        for name, line in counts:
            terminalreporter.write_line(f"{name:40} {line}")
