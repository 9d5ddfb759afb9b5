"""`python -m scripts.ops.matrix STACKS_JSON [--only STACK]`: the deploy workflow's matrix.

Reads the output of `python -m infra stacks --json` (the fleet file is the only place the
regions are listed) and prints GitHub step outputs, one `name=value` line each:

  stacks   every stack (the pull-request plan matrix), JSON list of {stack, cloud, region, canary}
  canary   the canary region stack (applied first), JSON list of 0 or 1 entry
  regions  the other region stacks (applied after the canary), JSON list
  global   "true" when the global stack is to be applied

`--only` (workflow_dispatch) narrows the apply outputs to one region stack or `global`;
an unknown name is a one-line error listing the allowed ones. The bootstrap stack is
planned on pull requests but never applied by the workflow (it holds the OIDC trust).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from infra.cliutil import ArgParser
from infra.naming import BOOTSTRAP_STACK, GLOBAL_STACK
from scripts.ops._common import OpsError, run_main

Entry = dict[str, Any]


def build_outputs(doc: dict[str, Any], only: str | None = None) -> dict[str, str]:
    try:
        entries: list[Entry] = list(doc["include"])
        names = [str(e["stack"]) for e in entries]
    except (KeyError, TypeError):
        raise OpsError("input is not the output of `python -m infra stacks --json`") from None
    regional = [e for e in entries if e["stack"] not in (BOOTSTRAP_STACK, GLOBAL_STACK)]
    applicable = [e["stack"] for e in regional] + [GLOBAL_STACK]
    if only:
        if only not in applicable:
            raise OpsError(f"--only: unknown stack '{only}'; allowed: {', '.join(applicable)}")
        regional = [e for e in regional if e["stack"] == only]
    canary = [e for e in regional if e["canary"]]
    others = [e for e in regional if not e["canary"]]
    apply_global = GLOBAL_STACK in names and (not only or only == GLOBAL_STACK)
    return {
        "stacks": json.dumps(entries, separators=(",", ":")),
        "canary": json.dumps(canary, separators=(",", ":")),
        "regions": json.dumps(others, separators=(",", ":")),
        "global": "true" if apply_global else "false",
    }


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    parser = ArgParser(
        prog="python -m scripts.ops.matrix", description="deploy matrix from `python -m infra stacks --json`"
    )
    parser.add_argument("stacks_json", help="file with the output of `python -m infra stacks --json` ('-': stdin)")
    parser.add_argument("--only", default="", help="apply just this stack (workflow_dispatch); empty: all")
    args = parser.parse_args(argv)
    stream = out or sys.stdout

    def body() -> int:
        try:
            text = sys.stdin.read() if args.stacks_json == "-" else Path(args.stacks_json).read_text(encoding="utf-8")
            doc = json.loads(text)
        except OSError as exc:
            raise OpsError(f"{args.stacks_json}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise OpsError(f"{args.stacks_json}: not JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise OpsError("input is not the output of `python -m infra stacks --json`")
        for key, value in build_outputs(doc, args.only.strip() or None).items():
            print(f"{key}={value}", file=stream)
        return 0

    return run_main("matrix", body)


if __name__ == "__main__":
    sys.exit(main())
