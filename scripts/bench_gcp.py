"""GCP bench: synthesizing one `gcp-<region>` stack against its floor, the Google bindings import.

Both are measured in fresh interpreters in the same run (median of N), so the ratio says how
much a GCP synth costs beyond loading the provider bindings it cannot avoid.

    .venv/bin/python -m scripts.bench_gcp [--runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench-results" / "gcp.json"
STACK = "gcp-asia-southeast1"
GOAL_RATIO = 1.5
# The submodules the GCP stack imports (the floor of any GCP synth).
FLOOR_IMPORTS = (
    "import cdktf, cdktf_cdktf_provider_google.provider, cdktf_cdktf_provider_google.compute_instance_template,"
    " cdktf_cdktf_provider_google.compute_region_instance_group_manager"
)


def _timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_gcp")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median; default 3)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        print("--runs: must be at least 1", file=sys.stderr)
        return 2
    py = sys.executable
    floor, synth = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            floor.append(_timed([py, "-c", FLOOR_IMPORTS]))
            synth.append(_timed([py, "-m", "infra", "synth", "--stack", STACK, "--backend", "local", "--out", tmp]))
    floor_s, synth_s = statistics.median(floor), statistics.median(synth)
    ratio = synth_s / floor_s
    figures = [
        {
            "name": "google bindings import (floor)",
            "value": round(floor_s, 2),
            "unit": "s",
            "baseline": None,
            "ratio": None,
            "goal": None,
            "met": None,
        },
        {
            "name": f"synth {STACK}",
            "value": round(synth_s, 2),
            "unit": "s",
            "baseline": round(floor_s, 2),
            "ratio": round(ratio, 2),
            "goal": f"<= {GOAL_RATIO}x the bindings import",
            "met": ratio <= GOAL_RATIO,
        },
    ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"area": "gcp", "figures": figures}, indent=2) + "\n", encoding="utf-8")
    print(f"{'figure':<36} {'value':>8} {'baseline':>9} {'ratio':>6}  goal")
    for f in figures:
        base = "" if f["baseline"] is None else f"{f['baseline']:.2f}"
        ratio_s = "" if f["ratio"] is None else f"{f['ratio']:.2f}"
        print(
            f"{f['name']:<36} {f['value']:>7.2f}{f['unit']} {base:>9} {ratio_s:>6}  {f['goal'] or ''}"
            f"{'' if f['met'] is None else (' (met)' if f['met'] else ' (NOT met)')}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
