"""One local region (two instances, each supervising its own vLLM, behind HAProxy) per session.

Instance i1 watches a local AWS IMDSv2 server, i2 a local GCP metadata server (both are
`tests.service.metadata_server` processes). A test that drains or preempts an instance leaves
it stopped; the `region` fixture restores the region before the next test (a fresh metadata
server for a restarted instance, since a notice cannot be taken back), so a test pays for a
restart only when the one before it needed one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from scripts.localregion import SERVED, Instance, LocalRegion
from tests.resilience.load import LoadGenerator, LoadReport
from tests.service.metadata_server import MetadataControl, metadata_server

_COUNTS = pytest.StashKey[list[tuple[str, str]]]()


@dataclass
class ResilienceRegion:
    region: LocalRegion
    stack: contextlib.ExitStack
    metadata: dict[str, MetadataControl] = field(default_factory=dict)
    clouds: dict[str, str] = field(default_factory=lambda: {"i1": "aws", "i2": "gcp"})

    def watch_args(self, name: str) -> list[str]:
        control = self.stack.enter_context(metadata_server())
        self.metadata[name] = control
        if self.clouds[name] == "aws":
            return ["--watch-aws", "--aws-metadata-url", control.url, "--aws-poll-interval-s", "1"]
        return ["--watch-gcp", "--gcp-metadata-url", control.url]

    def restore(self) -> None:
        """Restart every stopped instance; wait until all are ready and UP in HAProxy."""
        for instance in self.region.instances:
            if not instance.running():
                instance.start(self.watch_args(instance.name))
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


@pytest.fixture(scope="session")
def resilience_region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResilienceRegion]:
    workdir = tmp_path_factory.mktemp("local-region")
    with contextlib.ExitStack() as stack:
        region = LocalRegion(workdir, size=2, api_key="sk-resilience")
        stack.callback(region.stop)  # runs before the metadata servers close (LIFO)
        holder = ResilienceRegion(region, stack)
        try:
            region.start([holder.watch_args("i1"), holder.watch_args("i2")])
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
