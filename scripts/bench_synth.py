"""Synth time next to its floor: `python scripts/bench_synth.py [--repeats N]`.

The floor is what any synth of the same stacks must pay: starting Python and importing
cdktf plus exactly the provider-binding modules the synth loads (recorded from a real synth
in a fresh process). Each figure is the median wall time of fresh subprocesses, measured in
the same run, so the ratio is comparable across machines. Goal: synth <= 1.2x the floor.

Writes bench-results/synth.json and prints a table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as `python scripts/bench_synth.py` as well as imported by `make bench`
    sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench-results" / "synth.json"
GOAL_RATIO = 1.2
BINDING_PREFIXES = ("cdktf_cdktf_provider_aws", "cdktf_cdktf_provider_google")

_RECORD_MODULES = """
import json, sys
from pathlib import Path
from infra.app import synth
from infra.config import load_fleet
synth(load_fleet(), json.loads(sys.argv[1]), outdir=Path(sys.argv[2]), backend="local")
mods = sorted(m for m in sys.modules if m.startswith(("cdktf", "constructs")))
print(json.dumps(mods))
"""


def _run(argv: list[str], timeout_s: float = 900) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout_s, check=False)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... exited {proc.returncode}: {proc.stderr[-1500:]}")
    return took, proc.stdout


def default_stacks() -> list[str]:
    from infra.config import load_fleet

    fleet = load_fleet()
    have_gcp = importlib.util.find_spec("infra.stacks.gcp_region") is not None
    return [n for n in fleet.stack_names() if have_gcp or not n.startswith("gcp-")]


def used_modules(stacks: list[str], out: Path) -> list[str]:
    _, stdout = _run([sys.executable, "-c", _RECORD_MODULES, json.dumps(stacks), str(out)])
    mods: list[str] = json.loads(stdout.strip().splitlines()[-1])
    return mods


def floor_seconds(modules: list[str]) -> float:
    # Top-level packages suffice: each binding's __init__ imports all of its submodules.
    tops = sorted({m.split(".")[0] for m in modules})
    code = "import importlib\nfor m in %r:\n    importlib.import_module(m)\n" % (tops,)  # noqa: UP031
    took, _ = _run([sys.executable, "-c", code])
    return took


def synth_seconds(stacks: list[str], out: Path) -> float:
    argv = [sys.executable, "-m", "infra", "synth", "--backend", "local", "--out", str(out)]
    for s in stacks:
        argv += ["--stack", s]
    took, _ = _run(argv)
    return took


def figure(name: str, value: float, unit: str, baseline: float | None, goal: str | None) -> dict[str, object]:
    ratio = value / baseline if baseline else None
    met = (ratio <= GOAL_RATIO) if (ratio is not None and goal) else None
    return {
        "name": name,
        "value": round(value, 2),
        "unit": unit,
        "baseline": round(baseline, 2) if baseline else None,
        "ratio": round(ratio, 3) if ratio is not None else None,
        "goal": goal,
        "met": met,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per measurement (median)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        print("--repeats: must be at least 1", file=sys.stderr)
        return 2
    cases = {"default fleet": default_stacks(), "one region (aws-us-west-2)": ["aws-us-west-2"]}
    figures: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        for label, stacks in cases.items():
            modules = used_modules(stacks, Path(tmp) / "record")
            floors, synths = [], []
            for i in range(args.repeats):  # interleaved, so load drifts hit both alike
                floors.append(floor_seconds(modules))
                synths.append(synth_seconds(stacks, Path(tmp) / f"out-{i}"))
            floor, took = statistics.median(floors), statistics.median(synths)
            bindings = sum(m.count(".") == 1 and m.startswith(BINDING_PREFIXES) for m in modules)
            figures.append(figure(f"import floor: {label}", floor, "s", None, None))
            figures.append(figure(f"synth: {label}", took, "s", floor, f"<= {GOAL_RATIO}x the import floor"))
            figures.append(figure(f"binding submodules loaded: {label}", bindings, "modules", None, None))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"area": "synth", "figures": figures}, indent=2) + "\n", encoding="utf-8")
    rows = [["figure", "value", "baseline", "ratio", "goal", "met"]]
    for f in figures:
        rows.append(
            [
                str(f["name"]),
                f"{f['value']} {f['unit']}",
                str(f["baseline"] or "-"),
                str(f["ratio"] or "-"),
                str(f["goal"] or "-"),
                str(f["met"] if f["met"] is not None else "-"),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(f"written: {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
