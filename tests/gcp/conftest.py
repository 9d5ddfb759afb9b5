"""Session fixtures for the GCP tier: one synth subprocess, one checkov run, one terraform init.

The Google provider has no local mirror, so GCP stacks are checked by synth assertions and
checkov on the synthesized JSON; terraform runs only on the (AWS-provider) global stack of a
mixed fleet.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.config import DEFAULT_FLEET_FILE
from tests.plugins.checkov import collect, run_checkov

REPO = Path(__file__).resolve().parents[2]
SYNTH_TIMEOUT_S = 540


def fleet_yaml(regions: str, *, extra: str = "") -> str:
    return (
        "project: llm-fleet\n"
        "global: {domain: api.example.com, hosted_zone: example.com}\n"
        "gcp: {project: llm-fleet-example}\n"
        "state: {bucket: llm-fleet-tfstate-test, region: us-east-1}\n"
        f"{extra}regions:\n{regions}"
    )


FLEETS: dict[str, dict[str, Any]] = {
    # The repository's fleet file, GCP side only.
    "default": {"fleet": DEFAULT_FLEET_FILE.read_text(encoding="utf-8"), "stacks": ["gcp-asia-southeast1"]},
    # Every sizing branch, reservations, a gs:// weights mirror, GPU-utilisation scaling, odd tags.
    "variants": {
        "fleet": fleet_yaml(
            "  - {cloud: gcp, region: us-central1, gpu_type: t4, min_replicas: 3, max_replicas: 6, on_demand_base: 2,"
            " capacity_reservations: [gpu-res-a, gpu-res-b]}\n"
            "  - {cloud: gcp, region: europe-west4, gpu_type: l4, min_replicas: 0, max_replicas: 3}\n"
            "  - {cloud: gcp, region: asia-northeast1, gpu_type: a100, min_replicas: 2, max_replicas: 2,"
            " on_demand_base: 2}\n"
            "  - {cloud: gcp, region: us-east4, gpu_type: l4, min_replicas: 1, max_replicas: 5, on_demand_base: 3}\n",
            extra="autoscale: {metric: gpu_utilization, target: 70, scale_in_cooldown_s: 10}\n"
            "model: {id: Qwen/Qwen2.5-7B-Instruct, weights_mirror: gs://llm-weights-example/qwen2.5-7b}\n"
            "service: {cold_start_s: 900, hf_token_secret: llm-fleet-hf-token}\n"
            'tags: {Team: "ML Infra", "9Lives": "Yes/No"}\n',
        ),
        "stacks": None,
    },
    "cpu": {
        "fleet": fleet_yaml(
            "  - {cloud: gcp, region: europe-west1, gpu_type: t4,"
            " min_replicas: 1, max_replicas: 2, on_demand_base: 1}\n",
            extra="autoscale: {metric: cpu_utilization, target: 60}\n",
        ),
        "stacks": ["gcp-europe-west1"],
    },
    # AWS + GCP in one app: every stack, both provider bindings.
    "mixed": {
        "fleet": fleet_yaml(
            "  - {cloud: aws, region: us-west-2, gpu_type: a10g, min_replicas: 1, max_replicas: 2, on_demand_base: 1}\n"
            "  - {cloud: gcp, region: asia-southeast1, gpu_type: l4, min_replicas: 2, max_replicas: 4,"
            " on_demand_base: 1}\n"
        ),
        "stacks": None,
    },
}


@dataclass(frozen=True)
class Synthesized:
    root: Path
    aws_bindings_loaded_by_gcp_synth: bool

    def dir(self, label: str, stack: str) -> Path:
        return self.root / label / "stacks" / stack

    def stack(self, label: str, stack: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.dir(label, stack) / "cdk.tf.json").read_text(encoding="utf-8"))
        return data

    def gcp_stacks(self) -> Iterator[tuple[str, str]]:
        for label in FLEETS:
            for path in sorted((self.root / label / "stacks").glob("gcp-*")):
                yield label, path.name


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Every fleet above, synthesized once in a fresh interpreter (local backend)."""
    root = tmp_path_factory.mktemp("gcp-synth")
    spec = root / "spec.json"
    spec.write_text(json.dumps(FLEETS), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "tests.gcp.synth_worker", str(spec), str(root)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=SYNTH_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"synth failed ({proc.returncode}):\n{proc.stderr[-4000:]}", pytrace=False)
    modules = json.loads((root / "modules.json").read_text(encoding="utf-8"))
    return Synthesized(root, bool(modules["aws_bindings_loaded_by_gcp_synth"]))


@pytest.fixture(scope="session")
def checkov_report(synthesized: Synthesized, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One offline checkov run over every synthesized GCP stack (JSON only)."""
    files = {
        f"{label}/{stack}": synthesized.dir(label, stack) / "cdk.tf.json" for label, stack in synthesized.gcp_stacks()
    }
    return run_checkov(collect(tmp_path_factory.mktemp("gcp-checkov"), files), timeout_s=300)
