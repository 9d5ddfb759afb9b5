"""Synthesize fleets in a fresh interpreter, for the GCP test tier (run once per session).

    python -m tests.gcp.synth_worker SPEC.json OUT_DIR

SPEC maps a label to {"fleet": <YAML text>, "stacks": [names] | null (all stacks)}. Each label
is synthesized into OUT_DIR/<label>/stacks/<name>/cdk.tf.json (local backend). Labels whose
stacks are all gcp-* go first, and OUT_DIR/modules.json records whether the AWS bindings had
been imported by then: a GCP-only synth must never load them (the import is the floor of any
synth, `infra/app.py`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from infra.app import synth
from infra.config import parse_fleet_text

AWS_BINDINGS = "cdktf_cdktf_provider_aws"


def main(argv: list[str]) -> int:
    spec: dict[str, dict[str, object]] = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    out = Path(argv[1])
    plans: list[tuple[str, list[str], bool]] = []
    for label, entry in spec.items():
        fleet = parse_fleet_text(str(entry["fleet"]), f"<{label}>")
        raw = entry.get("stacks")
        names = [str(n) for n in raw] if isinstance(raw, list) else fleet.stack_names()
        plans.append((label, names, all(n.startswith("gcp-") for n in names)))
    plans.sort(key=lambda p: not p[2])  # GCP-only first
    aws_loaded_after_gcp_only = False
    for label, names, gcp_only in plans:
        fleet = parse_fleet_text(str(spec[label]["fleet"]), f"<{label}>")
        synth(fleet, names, outdir=out / label, backend="local")
        if gcp_only:
            aws_loaded_after_gcp_only = aws_loaded_after_gcp_only or AWS_BINDINGS in sys.modules
    (out / "modules.json").write_text(json.dumps({"aws_bindings_loaded_by_gcp_synth": aws_loaded_after_gcp_only}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
