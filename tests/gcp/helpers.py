"""Reading synthesized cdk.tf.json documents in the GCP tests."""

from __future__ import annotations

from typing import Any


def resources(stack: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = stack.get("resource", {}).get(rtype, {})
    return found


def one(stack: dict[str, Any], rtype: str, contains: str = "") -> dict[str, Any]:
    """The single resource of a type (optionally whose logical id contains `contains`)."""
    matches = [r for name, r in resources(stack, rtype).items() if contains in name]
    assert len(matches) == 1, f"expected one {rtype} matching {contains!r}, found {len(matches)}"
    return matches[0]


def ref(rtype: str, resource: dict[str, Any], attr: str, stack: dict[str, Any]) -> str:
    """The `${type.logical_id.attr}` expression that points at `resource`."""
    for name, body in resources(stack, rtype).items():
        if body is resource:
            return f"${{{rtype}.{name}.{attr}}}"
    raise AssertionError(f"{rtype} not in stack")


def pools(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{"standard"|"spot": {"group": ..., "autoscaler": ..., "template": ...}} by logical id."""
    out: dict[str, dict[str, Any]] = {}
    for pool in ("standard", "spot"):
        groups = {
            n: r
            for n, r in resources(stack, "google_compute_region_instance_group_manager").items()
            if n.startswith(f"{pool}_")
        }
        if not groups:
            continue
        ((gname, group),) = groups.items()
        scalers = [
            r for n, r in resources(stack, "google_compute_region_autoscaler").items() if n.startswith(f"{pool}_")
        ]
        templates = {
            n: r for n, r in resources(stack, "google_compute_instance_template").items() if n.startswith(f"{pool}_")
        }
        ((tname, template),) = templates.items()
        (scaler,) = scalers
        out[pool] = {
            "group": group,
            "group_id": gname,
            "autoscaler": scaler,
            "template": template,
            "template_id": tname,
        }
    return out
