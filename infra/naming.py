"""Names that more than one part of the fleet needs, defined once: stacks, their state,
regional resources, endpoints.

No cdktf and no cloud SDK: the fleet model, the stacks, the boot code, the operator tools and
the local cloud all import it.

- Stacks: `bootstrap`, one `<cloud>-<region>` per region (`region_stack_name`), `global`.
- State: the S3 object of a stack (`state_key`), the local file of a stack (`local_state_file`)
  for the `local` backend, and the KMS alias of the state key (`state_kms_alias`): the bootstrap
  stack creates it; every S3 backend names it as `kms_key_id`, so state objects are encrypted
  with the customer key rather than SSE-S3.
- A region's resources start with `<project>-<region>` (`resource_prefix`); the IAM policies of
  the CI roles are scoped by that prefix. The Auto Scaling group (`aws_group_name`) is addressed
  by the instance's agents too (metrics dimension, lifecycle hook, liveness); the instance log
  group (`instance_log_group`) is created by the regional stack and written by the boot script.
- Endpoints: `<region>.<global.domain>` per region (`endpoint_name`), beside the global name.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from infra.catalog import Cloud
    from infra.config import Fleet, RegionSpec

BOOTSTRAP_STACK = "bootstrap"
GLOBAL_STACK = "global"

# Where a stack keeps its state: "fleet" as the fleet file says (`state.backend`), "local" a
# file beside the synthesized JSON (tests and the local cloud run on a copy of the tree).
Backend = Literal["fleet", "local"]


def region_stack_name(cloud: Cloud, region: str) -> str:
    """`aws-us-west-2`, `gcp-asia-southeast1`: the stack (and GitHub environment) of a region."""
    return f"{cloud.value}-{region}"


def state_key(project: str, stack: str) -> str:
    """The stack's state object in the state bucket."""
    return f"{project}/{stack}.tfstate"


def local_state_file(stack: str) -> str:
    """The stack's state file with the local backend, beside its synthesized JSON."""
    return f"terraform.{stack}.tfstate"


def state_kms_alias(bucket: str) -> str:
    """`alias/<bucket>`, dots made dashes: KMS alias names allow only [a-zA-Z0-9/_-] (and the
    Terraform S3 backend's `kms_key_id` accepts `alias/[a-zA-Z0-9/_-]+`), bucket names may hold
    dots."""
    return "alias/" + re.sub(r"[^a-zA-Z0-9/_-]", "-", bucket)


def resource_prefix(fleet: Fleet, region: RegionSpec) -> str:
    """`<project>-<region>`: the start of the names of a region's resources."""
    return f"{fleet.project}-{region.region}"


def aws_group_name(fleet: Fleet, region: RegionSpec) -> str:
    return f"{resource_prefix(fleet, region)}-gpu"


def instance_log_group(fleet: Fleet, region: RegionSpec) -> str:
    """`/<project>-<region>/instances`, beside the region's `/<project>-<region>/vpc-flow-logs`."""
    return f"/{resource_prefix(fleet, region)}/instances"


def endpoint_name(fleet: Fleet, region: RegionSpec) -> str:
    """The region's own DNS name, e.g. us-west-2.api.example.com."""
    return f"{region.region}.{fleet.global_.domain}"
