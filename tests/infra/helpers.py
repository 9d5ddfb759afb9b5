"""Small readers over synthesized cdk.tf.json documents."""

from __future__ import annotations

from typing import Any


def resources(doc: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return dict(doc.get("resource", {}).get(rtype, {}))


def one(doc: dict[str, Any], rtype: str) -> dict[str, Any]:
    found = resources(doc, rtype)
    assert len(found) == 1, f"expected one {rtype}, found {sorted(found)}"
    return next(iter(found.values()))


def data(doc: dict[str, Any], dtype: str) -> dict[str, dict[str, Any]]:
    return dict(doc.get("data", {}).get(dtype, {}))


def suppressions(block: dict[str, Any]) -> dict[str, str]:
    """check id -> reason, from the `checkov:skip=ID:reason` comments beside a resource."""
    out: dict[str, str] = {}
    for value in block.get("//", {}).values():
        if isinstance(value, str) and value.startswith("checkov:skip="):
            check_id, _, reason = value.removeprefix("checkov:skip=").partition(":")
            out[check_id] = reason
    return out
