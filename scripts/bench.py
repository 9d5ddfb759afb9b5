"""`make bench`: run every area's bench module, collect their figures into one report.

    python -m scripts.bench [--only gateway,synth] [--timeout 1500] [--skip-run]

Each `scripts/bench_<area>.py` runs in its own subprocess (`python -m scripts.bench_<area>`)
and writes `bench-results/<area>.json` ({"area", "figures": [...]}). A module that fails or
times out is reported as failed; the others' figures are kept. Writes:

- `bench-results/results.json`: every figure with its area, plus each module's status;
- `bench-results/results.md`: the same as a markdown table;
- `bench-results/latency.png`: latency distributions, direct to vLLM vs through the gateway
  (raw samples from `bench-results/gateway_latencies.json`), and time to ready.

Exit status 0 when every module succeeded, 1 otherwise (the report is written either way).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench-results"
LATENCIES = RESULTS_DIR / "gateway_latencies.json"
# The modules the issues name run first, in this order; any other bench_*.py after them.
PREFERRED = ("synth", "gateway", "features")
FIGURE_KEYS = ("name", "value", "unit", "baseline", "ratio", "goal", "met")


@dataclass
class ModuleRun:
    module: str
    status: str  # ok | failed | timeout
    seconds: float
    areas: list[str] = field(default_factory=list)
    error: str | None = None


def discover() -> list[str]:
    """The bench module names (`bench_gateway`, ...) under scripts/, preferred ones first."""
    found = sorted(path.stem for path in (REPO / "scripts").glob("bench_*.py"))
    order = {f"bench_{name}": index for index, name in enumerate(PREFERRED)}
    return sorted(found, key=lambda name: (order.get(name, len(order)), name))


def _area_files() -> dict[Path, float]:
    if not RESULTS_DIR.is_dir():
        return {}
    return {path: path.stat().st_mtime for path in RESULTS_DIR.glob("*.json")}


def _read_area(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and isinstance(data.get("area"), str) and isinstance(data.get("figures"), list):
        return data
    return None


def run_module(module: str, timeout_s: float, log_dir: Path) -> tuple[ModuleRun, list[dict[str, Any]]]:
    """Run one bench module; (its run record, the area files it wrote during the run)."""
    before = _area_files()
    log = log_dir / f"{module}.log"
    started = time.monotonic()
    print(f"==> {module} (log: {log.relative_to(REPO)})", flush=True)
    status, error = "ok", None
    with log.open("wb") as out:
        try:
            # A new session: a timeout kills the module and everything it started.
            process = subprocess.Popen(
                [sys.executable, "-m", f"scripts.{module}"],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            code = process.wait(timeout_s)
            if code != 0:
                status, error = "failed", f"exit status {code}"
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(30)
            status, error = "timeout", f"no result within {timeout_s:g} s"
    seconds = time.monotonic() - started
    written = [
        data
        for path, mtime in _area_files().items()
        if before.get(path) != mtime and (data := _read_area(path)) is not None
    ]
    if status == "ok" and not written:
        status, error = "failed", "wrote no bench-results/<area>.json"
    if error is not None:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
        error = f"{error}: {tail[0][:200]}" if tail else error
    run = ModuleRun(module, status, round(seconds, 1), sorted(str(d["area"]) for d in written), error)
    return run, written


def collect(areas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    figures = []
    for area in areas:
        for figure in area["figures"]:
            figures.append({"area": area["area"], **{key: figure.get(key) for key in FIGURE_KEYS}})
    return figures


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("|", "\\|")


def markdown(figures: list[dict[str, Any]], runs: list[ModuleRun], machine: dict[str, Any]) -> str:
    lines = [
        "# Bench results",
        "",
        f"{machine['when']} on {machine['cpus']} CPUs ({machine['platform']}); "
        "every ratio compares with a baseline measured in the same run.",
        "",
        "| area | figure | value | unit | baseline | ratio | goal | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        cells = [f["area"], f["name"], f["value"], f["unit"], f["baseline"], f["ratio"], f["goal"], f["met"]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if runs:
        lines += ["", "| bench module | status | seconds | note |", "|---|---|---|---|"]
    for run in runs:
        lines.append(f"| {run.module} | {run.status} | {run.seconds:g} | {_cell(run.error)} |")
    return "\n".join(lines) + "\n"


def table(figures: list[dict[str, Any]], runs: list[ModuleRun]) -> str:
    keys = ("area", "name", "value", "unit", "baseline", "ratio", "goal", "met")
    rows: list[list[str]] = [["area", "figure", *keys[2:]]]
    rows += [[_cell(f[key]).replace("**", "") for key in keys] for f in figures]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    text.append("")
    text += [
        f"{run.module}: {run.status} in {run.seconds:g} s" + (f" ({run.error})" if run.error else "") for run in runs
    ]
    return "\n".join(text)


def plot(figures: list[dict[str, Any]], out: Path) -> Path | None:
    """Latency distributions direct vs gateway (and time to ready); None without raw samples."""
    try:
        samples = json.loads(LATENCIES.read_text(encoding="utf-8"))
        direct = [s * 1000 for s in samples["direct_s"]]
        gateway = [s * 1000 for s in samples["gateway_s"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ready = next((f for f in figures if f["area"] == "gateway" and f["name"] == "time_to_ready"), None)
    fig, axes = plt.subplots(1, 2 if ready else 1, figsize=(11 if ready else 7, 4.2), squeeze=False)
    ax = axes[0][0]
    for label, data in (("direct to vLLM", direct), ("through the gateway", gateway)):
        ordered = sorted(data)
        ax.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=f"{label} (n={len(data)})")
    ax.set_xscale("log")
    ax.set_xlabel("latency of a 1-token completion (ms, log scale)")
    ax.set_ylabel("fraction of requests (CDF)")
    ax.set_title("Latency: direct vs through the gateway")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    if ready is not None and ready["baseline"] is not None:
        bar = axes[0][1]
        values = [float(ready["baseline"]), float(ready["value"])]
        bar.bar(["vLLM alone\n(/health 200)", "gateway\n(/health/ready 200)"], values, color=["#888", "#1f77b4"])
        for index, value in enumerate(values):
            bar.text(index, value, f"{value:.1f} s", ha="center", va="bottom")
        bar.set_ylabel("seconds from process start")
        bar.set_title("Time to ready")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated areas (gateway,synth,...); default: all")
    parser.add_argument("--timeout", type=float, default=1500.0, help="seconds per bench module")
    parser.add_argument("--skip-run", action="store_true", help="only aggregate the area files already there")
    args = parser.parse_args(argv)
    modules = discover()
    if args.only:
        wanted = {f"bench_{name.strip()}" for name in args.only.split(",") if name.strip()}
        unknown = wanted - set(modules)
        if unknown:
            print(f"--only: unknown bench module(s) {', '.join(sorted(unknown))}; have {', '.join(modules)}")
            return 2
        modules = [module for module in modules if module in wanted]
    RESULTS_DIR.mkdir(exist_ok=True)
    log_dir = RESULTS_DIR / "logs"
    log_dir.mkdir(exist_ok=True)
    runs: list[ModuleRun] = []
    areas: list[dict[str, Any]] = []
    if args.skip_run:
        areas = [data for path in sorted(RESULTS_DIR.glob("*.json")) if (data := _read_area(path)) is not None]
    else:
        for module in modules:
            run, written = run_module(module, args.timeout, log_dir)
            runs.append(run)
            areas += written
    figures = collect(sorted(areas, key=lambda area: str(area["area"])))
    machine = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "platform": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
    }
    png = plot(figures, RESULTS_DIR / "latency.png")
    report: dict[str, Any] = {"machine": machine, "modules": [asdict(run) for run in runs], "figures": figures}
    report["plot"] = str(png.relative_to(REPO)) if png else None
    (RESULTS_DIR / "results.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    (RESULTS_DIR / "results.md").write_text(markdown(figures, runs, machine), encoding="utf-8")
    print(table(figures, runs))
    print("wrote bench-results/results.json, bench-results/results.md" + (", bench-results/latency.png" if png else ""))
    if png is None:
        print("no latency plot: bench-results/gateway_latencies.json missing (run the gateway bench)")
    return 0 if all(run.status == "ok" for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
