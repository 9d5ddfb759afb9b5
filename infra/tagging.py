"""What the stacks write on every resource: AWS tags, GCP labels, and checkov suppressions.

Operator scripts discover resources by the convention tags and labels (`PROJECT_TAG`,
`STACK_TAG`, ...), so the stacks apply them in one place, through cdktf Aspects, where no
construct can forget them: AWS resources take a `tags` map (an Auto Scaling group writes its
own `tag` blocks, which need `propagate_at_launch`); Google resources take `labels` under GCP's
rules (keys start with a lowercase letter, keys and values use only [a-z0-9_-], at most 63
characters). GCP resource names are shortened here too (`gcp_name`), to the same limit.

A checkov suppression is written beside the resource it applies to (`suppress`), with its
reason: checkov 3.3's terraform_json runner does not apply inline skips itself (it scans every
block with an empty skip list), so the test tier reads these comments and accepts a failed
check only where the failing resource carries a suppression for that id with a reason.

The tag sets and names need no cdktf: the operator scripts import them without it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cdktf import TerraformResource
    from constructs import Construct, IConstruct

# The discovery keys: AWS tags, then their GCP label spellings.
PROJECT_TAG, STACK_TAG, MANAGED_BY_TAG = "Project", "Stack", "ManagedBy"
PROJECT_LABEL, STACK_LABEL, MANAGED_BY_LABEL = "project", "stack", "managed-by"
MANAGED_BY = "cdktf"

LABEL_MAX = 63
_INVALID = re.compile(r"[^a-z0-9_-]+")


def fleet_tags(project: str, stack: str, extra: Mapping[str, str]) -> dict[str, str]:
    """The AWS tag set for one stack: the convention keys first, then the fleet's own tags."""
    return {PROJECT_TAG: project, STACK_TAG: stack, MANAGED_BY_TAG: MANAGED_BY, **extra}


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
    labels.update({PROJECT_LABEL: label_value(project), STACK_LABEL: label_value(stack), MANAGED_BY_LABEL: MANAGED_BY})
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


# --- the Aspects ------------------------------------------------------------------------------


class _MergeMap:
    """Merge `values` into one map attribute of every resource of one provider (the resource's
    own values win)."""

    def __init__(self, values: Mapping[str, str], *, prefix: str, attribute: str, skip: frozenset[str]) -> None:
        self._values = dict(values)
        self._prefix = prefix
        self._attribute = attribute
        self._skip = skip

    def visit(self, node: IConstruct) -> None:
        from cdktf import TerraformResource

        if not isinstance(node, TerraformResource):
            return
        kind = node.terraform_resource_type
        if not kind.startswith(self._prefix) or kind in self._skip:
            return
        if not hasattr(type(node), f"{self._attribute}_input"):
            return
        current = getattr(node, f"{self._attribute}_input")
        setattr(node, self._attribute, {**self._values, **(dict(current) if isinstance(current, Mapping) else {})})


def _as_aspect(visitor: Any) -> Any:
    """`visitor` declared a cdktf IAspect (once per class; cdktf is imported only here)."""
    import jsii
    from cdktf import IAspect

    cls = type(visitor)
    if IAspect not in getattr(cls, "__jsii_ifaces__", []):
        jsii.implements(IAspect)(cls)
    return visitor


def tag_aws_resources(stack: Construct, tags: Mapping[str, str]) -> None:
    """Every AWS resource of `stack` with a tags map gets `tags`. Google resources are left
    alone (their `tags` are network tags); the Auto Scaling group writes its own `tag` blocks."""
    from cdktf import Aspects

    aspect = _MergeMap(tags, prefix="aws_", attribute="tags", skip=frozenset({"aws_autoscaling_group"}))
    Aspects.of(stack).add(_as_aspect(aspect))


def label_gcp_resources(stack: Construct, labels: Mapping[str, str]) -> None:
    """Every Google resource of `stack` with a labels map gets `labels`."""
    from cdktf import Aspects

    Aspects.of(stack).add(_as_aspect(_MergeMap(labels, prefix="google_", attribute="labels", skip=frozenset())))


# --- checkov suppressions ---------------------------------------------------------------------


def suppress(resource: TerraformResource, reasons: Mapping[str, str]) -> None:
    """Attach `checkov:skip=ID:reason` comments to one resource (reasons are mandatory), one
    key per check id under the resource's `"//"` key (Terraform's JSON comment key, which cdktf
    already uses for its metadata)."""
    for check_id, reason in reasons.items():
        if not reason.strip():
            raise ValueError(f"checkov suppression {check_id} needs a reason")
    for check_id, reason in sorted(reasons.items()):
        resource.add_override(f"//.{check_id}", f"checkov:skip={check_id}:{reason}")
