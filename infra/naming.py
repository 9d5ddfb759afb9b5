"""Names that more than one layer needs, defined once (no cdktf, no cloud SDK: the boot code and
the stacks both import it).

- `state_kms_alias(bucket)`: the KMS alias of the Terraform state key. The bootstrap stack
  creates it; every S3 backend names it as `kms_key_id`, so state objects are encrypted with
  the customer key rather than SSE-S3.
- `instance_log_group(fleet, region)`: the CloudWatch Logs group of an AWS region's instances
  (boot log and the service's JSON logs). The regional stack creates it (KMS, retention) and
  lets the instance role write to it; the boot script ships to it.
- `aws_group_name(fleet, region)`: the region's Auto Scaling group; the stack names it so and
  the instance's agents address it (metrics dimension, lifecycle hook, liveness).
"""

from __future__ import annotations

import re

from infra.config import Fleet, RegionSpec


def instance_log_group(fleet: Fleet, region: RegionSpec) -> str:
    """`/<project>-<region>/instances`, beside the region's `/<project>-<region>/vpc-flow-logs`."""
    return f"/{fleet.project}-{region.region}/instances"


def aws_group_name(fleet: Fleet, region: RegionSpec) -> str:
    return f"{fleet.project}-{region.region}-gpu"


def state_kms_alias(bucket: str) -> str:
    """`alias/<bucket>`, dots made dashes: KMS alias names allow only [a-zA-Z0-9/_-] (and the
    Terraform S3 backend's `kms_key_id` accepts `alias/[a-zA-Z0-9/_-]+`), bucket names may hold
    dots."""
    return "alias/" + re.sub(r"[^a-zA-Z0-9/_-]", "-", bucket)
