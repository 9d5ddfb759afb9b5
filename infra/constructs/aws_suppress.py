"""checkov suppressions written beside the resource they apply to.

Each suppression is a `checkov:skip=<ID>:<reason>` string under the resource's `"//"` key
(Terraform's JSON comment key, which cdktf already uses for its metadata), one key per
check id. checkov 3.3's terraform_json runner does not apply inline skips itself (it scans
every block with an empty skip list), so the test tier reads these comments and accepts a
failed check only where the failing resource carries a suppression for that id with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping

from cdktf import TerraformResource


def suppress(resource: TerraformResource, reasons: Mapping[str, str]) -> None:
    """Attach `checkov:skip=ID:reason` comments to one resource (reasons are mandatory)."""
    for check_id, reason in reasons.items():
        if not reason.strip():
            raise ValueError(f"checkov suppression {check_id} needs a reason")
    for check_id, reason in sorted(reasons.items()):
        resource.add_override(f"//.{check_id}", f"checkov:skip={check_id}:{reason}")
