"""Names that more than one layer needs, defined once (no cdktf, no cloud SDK: the boot code and
the stacks both import it).

- `state_kms_alias(bucket)`: the KMS alias of the Terraform state key. The bootstrap stack
  creates it; every S3 backend names it as `kms_key_id`, so state objects are encrypted with
  the customer key rather than SSE-S3.
"""

from __future__ import annotations

import re


def state_kms_alias(bucket: str) -> str:
    """`alias/<bucket>`, dots made dashes: KMS alias names allow only [a-zA-Z0-9/_-] (and the
    Terraform S3 backend's `kms_key_id` accepts `alias/[a-zA-Z0-9/_-]+`), bucket names may hold
    dots."""
    return "alias/" + re.sub(r"[^a-zA-Z0-9/_-]", "-", bucket)
