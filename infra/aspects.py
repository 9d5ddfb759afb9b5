"""Tagging through a cdktf Aspect: every taggable resource gets the fleet's tags.

Operator scripts discover resources by these tags, so they are applied in one place and
cannot be forgotten by a construct. AWS resources take a `tags` map; an Auto Scaling group
takes `tag` blocks (propagated to its instances); GCP resources take lowercase `labels`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import jsii
from cdktf import IAspect, TerraformResource
from constructs import IConstruct


def fleet_tags(project: str, stack: str, extra: Mapping[str, str]) -> dict[str, str]:
    """The AWS tag set for one stack: the convention keys first, then the fleet's own tags."""
    return {"Project": project, "Stack": stack, "ManagedBy": "cdktf", **extra}


def gcp_labels(project: str, stack: str, extra: Mapping[str, str]) -> dict[str, str]:
    """GCP labels: lowercase keys/values of [a-z0-9_-], at most 63 characters."""

    def clean(text: str) -> str:
        return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]

    labels = {"project": clean(project), "stack": clean(stack), "managed-by": "cdktf"}
    labels.update({clean(k): clean(v) for k, v in extra.items()})
    return labels


@jsii.implements(IAspect)
class AwsTags:
    """Merge `tags` into every AWS resource that has a tags map (resource values win)."""

    def __init__(self, tags: Mapping[str, str]) -> None:
        self._tags = dict(tags)

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, TerraformResource):
            return
        if not node.terraform_resource_type.startswith("aws_"):
            # Google resources take labels (GcpLabels), and their `tags` are network tags.
            return
        if node.terraform_resource_type == "aws_autoscaling_group":
            # `tag` blocks are written by the ASG construct itself (it needs propagate_at_launch).
            return
        if not hasattr(type(node), "tags_input"):
            return
        current = node.tags_input  # type: ignore[attr-defined]
        merged = {**self._tags, **(dict(current) if isinstance(current, Mapping) else {})}
        node.tags = merged  # type: ignore[attr-defined]
