"""Rich renderings: the fleet summary, plan details, run results and the operator tools' data."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from fleetcli.lifecycle import StackResult
from fleetcli.terraform import PlanSummary
from infra.config import Fleet

ACTION_STYLE = {"+": "green", "~": "yellow", "-/+": "magenta", "-": "red"}
MAX_LISTED = 40


def fleet_summary(fleet: Fleet, source: str) -> RenderableType:
    m = fleet.model
    g = fleet.global_
    context = m.max_model_len or "the model's own"
    head = Text.assemble(
        ("fleet file  ", "dim"),
        (f"{source} (valid)\n", "bold"),
        ("model       ", "dim"),
        f"{m.id} ({m.quantization.value}; loads {m.engine_checkpoint}; served as {m.served_name}; "
        f"max_model_len {context})\n",
        ("endpoint    ", "dim"),
        f"https://{g.domain} ({g.mode.value}, zone {g.hosted_zone})\n",
        ("state       ", "dim"),
        f"{fleet.state.backend}"
        + (f" s3://{fleet.state.bucket} ({fleet.state.region})" if fleet.state.backend == "s3" else "")
        + "\n",
        ("autoscale   ", "dim"),
        f"{fleet.autoscale.metric} target {fleet.autoscale.target:g}\n",
        ("replicas    ", "dim"),
        f"{sum(r.min_replicas for r in fleet.regions)} to {sum(r.max_replicas for r in fleet.regions)} "
        f"across {len(fleet.regions)} regions\n",
        ("deploy order ", "dim"),
        " -> ".join(fleet.stack_names()),
    )
    table = Table(title=None, show_edge=False, pad_edge=False)
    for column in (
        "stack",
        "cloud",
        "region",
        "gpu",
        "instance types",
        "min",
        "max",
        "on-demand",
        "spot max",
        "reservations",
    ):
        table.add_column(
            column, justify="right" if column in ("min", "max", "on-demand", "spot max", "reservations") else "left"
        )
    for r in fleet.regions:
        types = ",".join(t.name for t in r.offering.instance_types[: 3 if r.cloud.value == "aws" else 1])
        table.add_row(
            r.stack_name + (" (canary)" if r is fleet.canary else ""),
            r.cloud.value,
            r.region,
            r.gpu_type,
            types,
            str(r.min_replicas),
            str(r.max_replicas),
            str(r.on_demand_base),
            str(r.spot_max),
            str(len(r.capacity_reservations)),
        )
    return Group(head, Text(""), table)


def plan_details(stack: str, summary: PlanSummary, *, limit: int | None = None) -> RenderableType:
    lines = [Text.assemble((stack, "bold"), f": {summary.counts()}")]
    listed = summary.lines()
    shown = listed if limit is None else listed[:limit]
    for symbol, address in shown:
        lines.append(Text.assemble("  ", (f"{symbol:>3}", ACTION_STYLE[symbol]), f" {address}"))
    if len(shown) < len(listed):
        lines.append(Text(f"  ... and {len(listed) - len(shown)} more (llm-fleet plan {stack} lists them all)", "dim"))
    return Group(*lines)


def results_table(results: Sequence[StackResult], *, title: str) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("stack")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    table.add_column("endpoint")
    for r in results:
        style = "green" if r.ok else ("red" if r.result in ("failed", "declined") else "dim")
        table.add_row(
            r.stack,
            Text(r.result, style),
            "-" if r.seconds is None else f"{r.seconds:.1f}",
            r.endpoint or "-",
        )
    return table


def plan_table(results: Sequence[StackResult]) -> Table:
    table = Table(title="plan", title_justify="left", show_edge=False, pad_edge=False)
    for column in ("stack", "result", "create", "update", "replace", "destroy", "seconds"):
        table.add_column(column, justify="left" if column in ("stack", "result") else "right")
    for r in results:
        s = r.summary
        counts = ["-"] * 4 if s is None else [str(len(x)) for x in (s.create, s.update, s.replace, s.delete)]
        style = "red" if not r.ok else ("yellow" if r.result == "changes" else "green")
        table.add_row(r.stack, Text(r.result, style), *counts, "-" if r.seconds is None else f"{r.seconds:.1f}")
    return table


def simple_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None) -> Table:
    """A table whose numeric-looking cells align right (like the operator tools' text tables)."""
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    numeric = [
        all(_numeric(row[i]) or row[i] in ("", "-") for row in rows) and any(_numeric(row[i]) for row in rows)
        for i in range(len(header))
    ]
    for name, right in zip(header, numeric, strict=True):
        table.add_column(name, justify="right" if right else "left")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    return table


def _numeric(cell: str) -> bool:
    return bool(cell) and cell.replace(".", "", 1).replace(",", "").lstrip("-$").replace("%", "").isdigit()


def print_notes(console: Console, notes: Sequence[str]) -> None:
    if notes:
        console.print("\nnotes:")
        for note in notes:
            console.print(f"  {escape(note)}")


def money(value: float) -> str:
    return f"${value:,.0f}"


def percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def milliseconds(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def short(text: str | None, width: int = 24) -> str:
    if text is None:
        return "-"
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
