"""schemathesis against the gateway's public API contract (docs/openapi.yaml): no 5xx, and no
answer outside the contract (a status, content type, body or header the spec does not document).

The gateway serves no /openapi.json, so the contract is a spec file. It is specialised to the
instance under test (its served model name and max_tokens cap) so that valid cases reach the
engine and generate, while schemathesis' negative cases probe the validation in front of it.
Any 5xx from a ready, undisturbed instance is a failure (503 is only expected while draining).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from devkit.localregion import REPO, SERVED
from tests.resilience.conftest import ResilienceRegion

# The bound includes the session fixture (two engines loading at once) when this test runs first.
pytestmark = [pytest.mark.engine, pytest.mark.haproxy, pytest.mark.slow, pytest.mark.timeout(1500)]

SPEC = REPO / "docs" / "openapi.yaml"
MAX_TIME_S = 90
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    )
)


def _specialised_spec(cap: int, tmp_path: Path) -> Path:
    spec: dict[str, Any] = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    schemas = spec["components"]["schemas"]
    for name in ("ChatCompletionRequest", "CompletionRequest"):
        schemas[name]["properties"]["model"]["enum"] = [SERVED]
        schemas[name]["properties"]["max_tokens"]["maximum"] = cap
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def test_schemathesis_finds_no_server_error(resilience_region: ResilienceRegion, tmp_path: Path) -> None:
    region = resilience_region.region
    target = next((i for i in region.instances if i.running()), None)
    if target is None:
        resilience_region.restore()
        target = region.instances[0]
    target.wait_ready()
    assert region.local is not None
    spec = _specialised_spec(region.local.service.max_tokens_cap, tmp_path)
    cassette = tmp_path / "schemathesis.har"
    argv = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        str(spec),
        "--url",
        target.url,
        "--header",
        f"Authorization: Bearer {region.api_key}",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "25",
        "--max-time",
        str(MAX_TIME_S),
        "--seed",
        "20260101",
        # One worker: with two threads, schemathesis' coverage phase trips CPython 3.11's
        # "AST constructor recursion depth mismatch" (concurrent compile()), a runtime error
        # that has nothing to do with the gateway.
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--generation-database",
        "none",
        "--report",
        "har",
        "--report-har-path",
        str(cassette),
        "--no-color",
    ]
    # In tmp_path: schemathesis keeps a crash cache in .schemathesis/ under its working directory.
    result = subprocess.run(argv, capture_output=True, text=True, timeout=MAX_TIME_S + 240, check=False, cwd=tmp_path)
    output = result.stdout[-4000:] + result.stderr[-2000:]
    entries = json.loads(cassette.read_text(encoding="utf-8"))["log"]["entries"] if cassette.exists() else []
    statuses: dict[int, int] = {}
    for entry in entries:
        status = int(entry["response"]["status"])
        statuses[status] = statuses.get(status, 0) + 1
    print(f"schemathesis: {len(entries)} requests, statuses {dict(sorted(statuses.items()))}")
    assert result.returncode == 0, output + f"\n{target.name}: {target.log_tail(10)}"
    assert len(entries) > 50, f"schemathesis sent too few requests to mean anything: {len(entries)}\n{output}"
    assert statuses.get(200, 0) > 0, f"no valid case reached the engine: {statuses}"
    assert not any(status >= 500 for status in statuses), statuses
