"""A customer-managed KMS key: rotated yearly, 30 days before deletion, administered by the
account (the key policy's first statement), used by whom the other statements name."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from cdktf_cdktf_provider_aws.kms_key import KmsKey
from constructs import Construct


def customer_key(
    scope: Construct, id_: str, *, description: str, account_root: str, statements: Sequence[Mapping[str, Any]] = ()
) -> KmsKey:
    """`account_root`: `arn:<partition>:iam::<account>:root`, whose IAM policies govern the key."""
    administers = {
        "Sid": "AccountAdministersKey",
        "Effect": "Allow",
        "Principal": {"AWS": account_root},
        "Action": "kms:*",
        "Resource": "*",
    }
    return KmsKey(
        scope,
        id_,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=json.dumps({"Version": "2012-10-17", "Statement": [administers, *statements]}),
    )
