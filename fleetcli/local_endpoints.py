"""`AWS_ENDPOINT_URL`: aim the stacks' aws provider at a local cloud (moto, LocalStack).

boto3 and the AWS CLI honour the standard `AWS_ENDPOINT_URL`; the synthesized stacks do not
on their own, so when it is set `llm-fleet` writes a Terraform override file
(`zz_llm_fleet_endpoints_override.tf.json`, merged by terraform into each `aws` provider
block, aliases included) that sends every service the stacks use there, with path-style S3.
When it is not set, a stale override from an earlier local run is removed, so a real deploy
never talks to a local endpoint. The synthesized `cdk.tf.json` itself is never changed.
Credentials stay the normal chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, e.g. `test`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ENDPOINT_ENV = "AWS_ENDPOINT_URL"
OVERRIDE_FILE = "zz_llm_fleet_endpoints_override.tf.json"
# Every AWS service the stacks call (the aws provider's `endpoints` keys).
AWS_SERVICES = (
    "acm",
    "autoscaling",
    "cloudwatch",
    "cloudwatchlogs",
    "ec2",
    "elbv2",
    "globalaccelerator",
    "iam",
    "kms",
    "route53",
    "s3",
    "secretsmanager",
    "ssm",
    "sts",
)


def local_endpoint() -> str | None:
    value = os.environ.get(ENDPOINT_ENV, "").strip()
    return value or None


def aws_provider_aliases(stack_dir: Path) -> list[str | None]:
    """The aws provider blocks of a synthesized stack: None for the default, else the alias."""
    aliases: list[str | None] = []
    for path in sorted(stack_dir.glob("*.tf.json")):
        if path.name.endswith("_override.tf.json"):
            continue
        doc = json.loads(path.read_text(encoding="utf-8"))
        blocks = doc.get("provider", {}).get("aws", [])
        for block in blocks if isinstance(blocks, list) else [blocks]:
            aliases.append(block.get("alias"))
    return aliases


def override(endpoint: str, aliases: list[str | None]) -> dict[str, Any]:
    blocks = []
    for alias in aliases:
        block: dict[str, Any] = {"s3_use_path_style": True, "endpoints": [dict.fromkeys(AWS_SERVICES, endpoint)]}
        if alias is not None:
            block["alias"] = alias
        blocks.append(block)
    return {"provider": {"aws": blocks}}


def apply_to(stack_dir: Path, endpoint: str | None) -> bool:
    """Write (endpoint set, the stack uses aws) or remove the override; whether one is in place."""
    path = stack_dir / OVERRIDE_FILE
    aliases = aws_provider_aliases(stack_dir) if endpoint else []
    if endpoint and aliases:
        path.write_text(json.dumps(override(endpoint, aliases), indent=2) + "\n", encoding="utf-8")
        return True
    path.unlink(missing_ok=True)
    return False
