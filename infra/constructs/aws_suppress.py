"""checkov suppressions written beside the resource they apply to.

checkov's terraform_json parser reads skip comments from the resource's own lines; cdktf
writes a `"//"` key (Terraform's JSON comment key) into the resource. A list keeps one
`checkov:skip=<ID>:<reason>` per line, which is how checkov collects several of them.
"""

from __future__ import annotations

from collections.abc import Mapping

from cdktf import TerraformResource


def suppress(resource: TerraformResource, reasons: Mapping[str, str]) -> None:
    """Attach `checkov:skip=ID:reason` comments to one resource (reasons are mandatory)."""
    for check_id, reason in reasons.items():
        if not reason.strip():
            raise ValueError(f"checkov suppression {check_id} needs a reason")
    resource.add_override("//", [f"checkov:skip={cid}:{why}" for cid, why in sorted(reasons.items())])
