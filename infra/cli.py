"""`python -m infra check|stacks|synth|user-data`: the stable operator and CI interface.

Every user mistake ends as one line per problem on stderr and exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from infra.cliutil import EXIT_USAGE, ArgParser, add_fleet_argument, fleet_problems, table
from infra.config import DEFAULT_FLEET_FILE, Fleet, FleetConfigError, load_fleet
from infra.naming import BOOTSTRAP_STACK, GLOBAL_STACK


def _load(path: str | None) -> Fleet:
    try:
        return load_fleet(path)
    except FleetConfigError as exc:
        print("\n".join(fleet_problems(exc)), file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def summary(fleet: Fleet, source: str) -> str:
    m = fleet.model
    header = [
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
    ]
    rows = []
    for r in fleet.regions:
        types = ",".join(t.name for t in r.offering.instance_types[: 3 if r.cloud.value == "aws" else 1])
        rows.append(
            [
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
            ]
        )
    head = [
        f"fleet file: {source} (valid)",
        f"model:      {m.id} ({m.quantization.value}; loads {m.engine_checkpoint}; "
        f"max_model_len {m.max_model_len or 'the model' + chr(39) + 's own'})",
        f"endpoint:   https://{fleet.global_.domain} ({fleet.global_.mode.value}, zone {fleet.global_.hosted_zone})",
        f"autoscale:  {fleet.autoscale.metric} target {fleet.autoscale.target:g}",
        f"replicas:   {sum(r.min_replicas for r in fleet.regions)} to {sum(r.max_replicas for r in fleet.regions)} "
        f"across {len(fleet.regions)} regions",
        "",
    ]
    return "\n".join(head) + table(header, rows, numbers_right=False)


def cmd_check(args: argparse.Namespace) -> int:
    fleet = _load(args.file)
    print(summary(fleet, args.file or str(DEFAULT_FLEET_FILE.name)))
    return 0


def cmd_stacks(args: argparse.Namespace) -> int:
    fleet = _load(args.file)
    if args.json:
        entries = []
        for name in fleet.stack_names():
            entry: dict[str, object] = {"stack": name, "cloud": "aws", "region": fleet.state.region, "canary": False}
            if name not in (BOOTSTRAP_STACK, GLOBAL_STACK):
                r = fleet.region(name)
                entry = {"stack": name, "cloud": r.cloud.value, "region": r.region, "canary": r is fleet.canary}
            entries.append(entry)
        print(json.dumps({"stacks": [e["stack"] for e in entries], "include": entries}))
    else:
        for name in fleet.stack_names():
            print(name)
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    fleet = _load(args.file)
    known = fleet.stack_names()
    selected = args.stack or known
    unknown = [s for s in selected if s not in known]
    if unknown:
        print(f"--stack: unknown stack '{unknown[0]}'; allowed: {', '.join(known)}", file=sys.stderr)
        return EXIT_USAGE
    from infra.app import synth  # deferred: imports cdktf and only the needed provider bindings

    started = time.perf_counter()
    out = synth(fleet, selected, outdir=Path(args.out), backend=args.backend)
    took = time.perf_counter() - started
    for name in selected:
        print(f"synthesized {name}: {out / 'stacks' / name / 'cdk.tf.json'}")
    print(f"{len(selected)} stack(s) in {took:.1f}s")
    return 0


def cmd_user_data(args: argparse.Namespace) -> int:
    """The boot script each region's instances run (and GCP's shutdown script)."""
    from infra.boot import instance_contract, render_shutdown_script, render_user_data

    fleet = _load(args.file)
    regional = [r.stack_name for r in fleet.regions]
    selected = args.stack or regional
    unknown = [s for s in selected if s not in regional]
    if unknown:
        print(f"--stack: '{unknown[0]}' has no instances; allowed: {', '.join(regional)}", file=sys.stderr)
        return EXIT_USAGE
    if args.out is None and len(selected) != 1:
        print("--out: required for more than one stack (or name one with --stack)", file=sys.stderr)
        return EXIT_USAGE
    for name in selected:
        region = fleet.region(name)
        contract = instance_contract(fleet, region)
        script = render_user_data(contract)
        if args.out is None:
            sys.stdout.write(script)
            return 0
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.sh").write_text(script, encoding="utf-8")
        print(f"{name}: {out / f'{name}.sh'} ({len(script.encode())} bytes)")
        if region.cloud.value == "gcp":
            (out / f"{name}.shutdown.sh").write_text(render_shutdown_script(contract), encoding="utf-8")
            print(f"{name}: {out / f'{name}.shutdown.sh'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = ArgParser(prog="python -m infra", description="Fleet-as-code: validate, list and synthesize stacks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgParser)

    check = sub.add_parser("check", help="validate a fleet file and print a summary")
    check.add_argument("file", nargs="?", help="fleet file (default: regions.yaml)")
    check.set_defaults(func=cmd_check)

    stacks = sub.add_parser("stacks", help="list the stack names (deploy order)")
    add_fleet_argument(stacks)
    stacks.add_argument("--json", action="store_true", help="JSON for a CI matrix")
    stacks.set_defaults(func=cmd_stacks)

    synth = sub.add_parser("synth", help="write cdktf.out/stacks/<name>/cdk.tf.json")
    add_fleet_argument(synth)
    synth.add_argument(
        "--stack", action="append", metavar="NAME", help="stack to synthesize (repeatable; default: all)"
    )
    synth.add_argument("--out", default="cdktf.out", help="output directory (default: cdktf.out)")
    synth.add_argument(
        "--backend",
        choices=["fleet", "local"],
        default="fleet",
        help="state backend: as the fleet file says (S3), or local files for tests",
    )
    synth.set_defaults(func=cmd_synth)

    user_data = sub.add_parser("user-data", help="render the boot script of a region's instances")
    add_fleet_argument(user_data)
    user_data.add_argument("--stack", action="append", metavar="NAME", help="regional stack (repeatable; default: all)")
    user_data.add_argument("--out", help="write <stack>.sh files here (default: one stack's script to stdout)")
    user_data.set_defaults(func=cmd_user_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
