"""A stand-in `terraform` (or `tofu`) for the orchestration tests: no provider, no cloud, instant.

Installed by `tests/cli/conftest.py` as an executable on a PATH of its own. Behaviour:
- `version -json`: `{"terraform_version": $FAKE_TF_VERSION}` (default 1.11.4);
- `init`: succeeds;
- `plan -out=F [-destroy] -detailed-exitcode`: writes F, exit 2 (changes); fails in the stack
  named by $FAKE_TF_FAIL_PLAN;
- `show -json F`: two creates and, with -destroy plans, the deletes; one replace;
- `apply F`: fails with a terraform-style diagnostic in the stack named by $FAKE_TF_FAIL_APPLY,
  else succeeds and records the stack in $FAKE_TF_RECORD (one line per apply);
- `output -json`: an `endpoint` output named after the stack.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    stack = Path.cwd().name
    if command == "version":
        print(json.dumps({"terraform_version": os.environ.get("FAKE_TF_VERSION", "1.11.4")}))
        return 0
    if command == "init":
        print("Terraform has been successfully initialized!")
        return 0
    if command == "plan":
        if stack == os.environ.get("FAKE_TF_FAIL_PLAN"):
            print("\nError: No valid credential sources found\n\nPlease see the provider's docs.\n", file=sys.stderr)
            return 1
        out = next(a.split("=", 1)[1] for a in argv if a.startswith("-out="))
        Path(out).write_text(json.dumps({"destroy": "-destroy" in argv}), encoding="utf-8")
        print("Plan: 2 to add, 0 to change, 1 to destroy.")
        return 2
    if command == "show":
        plan = json.loads(Path(argv[-1]).read_text(encoding="utf-8"))
        if plan["destroy"]:
            changes = [{"address": f"fake_thing.{n}", "change": {"actions": ["delete"]}} for n in ("a", "b", "c")]
        else:
            changes = [
                {"address": "fake_thing.a", "change": {"actions": ["create"]}},
                {"address": "fake_thing.b", "change": {"actions": ["create"]}},
                {"address": "fake_thing.c", "change": {"actions": ["delete", "create"]}},
                {"address": "data.fake_lookup.d", "change": {"actions": ["read"]}},
            ]
        print(json.dumps({"resource_changes": changes, "output_changes": {}}))
        return 0
    if command == "apply":
        if stack == os.environ.get("FAKE_TF_FAIL_APPLY"):
            print("fake_thing.a: Creating...")
            print(
                "\nError: creating fake thing (a): operation error Fake: CreateThing, StatusCode: 400, "
                "QuotaExceeded\n\n  with fake_thing.a,\n  on cdk.tf.json line 12, in resource.fake_thing.a:\n"
                "  12:       }\n\nThe account's quota for fake things is 0.\n",
                file=sys.stderr,
            )
            return 1
        record = os.environ.get("FAKE_TF_RECORD")
        if record:
            with open(record, "a", encoding="utf-8") as fh:
                fh.write(f"{stack}\n")
        print("Apply complete!")
        return 0
    if command == "output":
        print(json.dumps({"endpoint": {"value": f"{stack}.api.example.com", "type": "string", "sensitive": False}}))
        return 0
    print(f"fake terraform: unknown command {command!r}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
