"""Build the selected stacks into one cdktf App and synthesize them.

Provider bindings are imported lazily, per stack kind, so synthesizing one AWS region never
pays for the Google bindings: importing them is the floor of any synth's time.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from infra.config import Fleet
from infra.naming import BOOTSTRAP_STACK, GLOBAL_STACK, Backend

if TYPE_CHECKING:
    from constructs import Construct


def synth(fleet: Fleet, stacks: list[str], *, outdir: Path | None = None, backend: Backend = "fleet") -> Path:
    from cdktf import App

    app = App(outdir=str(outdir)) if outdir is not None else App()
    for name in stacks:
        add_stack(app, fleet, name, backend=backend)
    app.synth()
    return Path(app.outdir)


def add_stack(app: Construct, fleet: Fleet, name: str, *, backend: Backend) -> Construct:
    """Instantiate one stack by name (bootstrap, aws-<region>, gcp-<region>, global)."""
    if name == BOOTSTRAP_STACK:
        from infra.stacks.bootstrap import BootstrapStack

        return BootstrapStack(app, name, fleet=fleet, backend=backend)
    if name == GLOBAL_STACK:
        from infra.stacks.global_routing import GlobalStack

        return GlobalStack(app, name, fleet=fleet, backend=backend)
    region = fleet.region(name)
    if region.cloud.value == "aws":
        from infra.stacks.aws_region import AwsRegionStack

        return AwsRegionStack(app, name, fleet=fleet, region=region, backend=backend)
    gcp_region = import_module("infra.stacks.gcp_region")  # the Google bindings, only for GCP stacks
    stack: Construct = gcp_region.GcpRegionStack(app, name, fleet=fleet, region=region, backend=backend)
    return stack
