"""GCP labels through a cdktf Aspect, and GCP resource names that always fit.

Labels mirror the AWS tags (Project / Stack / ManagedBy + fleet.tags) under GCP's rules:
keys start with a lowercase letter, keys and values use only [a-z0-9_-] and are at most 63
characters. Operator scripts find GCP resources by the `project`, `stack` and `managed-by`
labels, so the Aspect applies them to every labelable Google resource in the stack.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

import jsii
from cdktf import IAspect
from constructs import IConstruct

LABEL_MAX = 63
_INVALID = re.compile(r"[^a-z0-9_-]+")


def label_value(text: str) -> str:
    """A label value: lowercase, other characters replaced by '-', at most 63 characters."""
    return _INVALID.sub("-", text.lower())[:LABEL_MAX]


def label_key(text: str) -> str:
    """A label key: like a value, and it must start with a lowercase letter."""
    key = label_value(text).lstrip("-_0123456789")
    return key or "tag"


def fleet_labels(project: str, stack: str, extra: Mapping[str, str]) -> dict[str, str]:
    """The label set for one GCP stack: the convention keys win over same-named fleet tags."""
    labels = {label_key(k): label_value(v) for k, v in extra.items()}
    labels.update({"project": label_value(project), "stack": label_value(stack), "managed-by": "cdktf"})
    return labels


def gcp_name(*parts: str, max_len: int = LABEL_MAX) -> str:
    """A GCP resource name ([a-z]([-a-z0-9]*[a-z0-9])?) from parts, shortened with a stable hash.

    Names longer than `max_len` keep their start and end with a 6-character digest of the
    full name, so two long names that differ only in the middle stay distinct.
    """
    full = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", "-".join(parts).lower())).strip("-")
    if not full:
        full = "x"
    elif not full[0].isalpha():
        full = f"x-{full}"
    if len(full) <= max_len:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:6]
    return f"{full[: max_len - 7].rstrip('-')}-{digest}"


@jsii.implements(IAspect)
class GcpLabels:
    """Merge `labels` into every Google resource that takes a labels map (resource values win)."""

    def __init__(self, labels: Mapping[str, str]) -> None:
        self._labels = dict(labels)

    def visit(self, node: IConstruct) -> None:
        from cdktf import TerraformResource

        if not isinstance(node, TerraformResource):
            return
        if not node.terraform_resource_type.startswith("google_"):
            return
        if not hasattr(type(node), "labels_input"):
            return
        current = node.labels_input  # type: ignore[attr-defined]
        node.labels = {**self._labels, **(dict(current) if isinstance(current, Mapping) else {})}  # type: ignore[attr-defined]
