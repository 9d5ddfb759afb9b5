"""What every operator tool shares beyond `infra.cliutil`: injected cloud clients, progress, and
cloud errors as one line."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from infra.cliutil import EXIT_CLOUD, EXIT_OK, EXIT_USAGE, fleet_problem
from infra.config import Fleet, FleetConfigError, load_fleet

# (service, region) -> a boto3 client. Tests pass one aimed at moto_server.
AwsClientFactory = Callable[[str, str], Any]


class OpsError(Exception):
    """A problem the operator must fix; printed as one line."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def load_fleet_or_raise(path: str | None) -> Fleet:
    try:
        return load_fleet(path)
    except FleetConfigError as exc:
        raise OpsError(fleet_problem(exc)) from None


def boto3_factory(*, endpoint_url: str | None = None, profile: str | None = None) -> AwsClientFactory:
    """Clients from the default credential chain (OIDC in CI, a profile on a laptop).

    boto3 also honours AWS_ENDPOINT_URL, which is how a run is aimed at moto_server.
    """
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    session = boto3.session.Session(profile_name=profile)
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30)

    @functools.cache
    def make(service: str, region: str) -> Any:
        return session.client(service, region_name=region, endpoint_url=endpoint_url, config=config)

    return make


def cloud_error_message(exc: BaseException) -> str | None:
    """One line for the cloud SDK errors an operator can act on; None if not one of them."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - boto3 is in the ops extra
        pass
    else:
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            op = exc.operation_name
            return f"AWS {op}: {err.get('Code', 'error')}: {err.get('Message', '')}".rstrip(": ")
        if isinstance(exc, BotoCoreError):
            return f"AWS: {exc}"
    try:
        from google.api_core.exceptions import GoogleAPIError
        from google.auth.exceptions import GoogleAuthError
    except ImportError:  # pragma: no cover - google-cloud-compute is in the ops extra
        pass
    else:
        if isinstance(exc, GoogleAPIError):
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return f"GCP: {first}"
        if isinstance(exc, GoogleAuthError):
            return f"GCP credentials: {exc}"
    return None


def run_main(prog: str, body: Callable[[], int]) -> int:
    """Run a tool body: user mistakes and cloud errors become one line on stderr."""
    try:
        return body()
    except OpsError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        message = cloud_error_message(exc)
        if message is None:
            raise
        print(f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_CLOUD


@dataclass
class Progress:
    """Step-by-step progress on stderr: rewrites one line on a terminal, one line per step otherwise."""

    total: int
    stream: TextIO = sys.stderr
    enabled: bool = True
    _done: int = 0

    @property
    def _tty(self) -> bool:
        return self.stream.isatty() and os.environ.get("TERM") != "dumb"

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        self._done += 1
        prefix = f"[{self._done}/{self.total}] {label}"
        started = time.perf_counter()
        if self.enabled and self._tty:
            self.stream.write(f"\r\033[K{prefix} ...")
            self.stream.flush()
        try:
            yield
        except BaseException:
            if self.enabled:
                self.stream.write(("\r\033[K" if self._tty else "") + f"{prefix} failed\n")
            raise
        took = time.perf_counter() - started
        if self.enabled:
            end = "\n" if not self._tty or self._done == self.total else ""
            self.stream.write(("\r\033[K" if self._tty else "") + f"{prefix} ({took:.1f}s){end}")
            self.stream.flush()


def emit(
    rows: Sequence[Any],
    *,
    as_json: bool,
    verdict: str,
    judge: Callable[[Any], object],
    text: Callable[[], str],
    stream: TextIO,
) -> None:
    """A tool's result on `stream`: its rows as a JSON list (each with its verdict under the key
    `verdict`), or its text report."""
    if as_json:
        print(json.dumps([asdict(row) | {verdict: judge(row)} for row in rows], indent=2), file=stream)
    else:
        print(text(), file=stream)
