"""The terraform + moto harness now lives in `devkit.localcloud` (shared with `make demo`).

This module keeps the tests' import path (`from tests.infra import tfharness as tfh`).
"""

from __future__ import annotations

from devkit.localcloud import (
    AWS_PROVIDER,
    AWS_PROVIDER_VERSION,
    AWS_SERVICES,
    DEFAULT_TIMEOUT_S,
    OVERRIDE_FILE,
    HarnessError,
    MotoServer,
    TerraformRunner,
    changed_attributes,
    copy_stacks,
    deploy_to_moto,
    destroy_stacks,
    endpoint_override,
    free_port,
    make_runner,
    provider_mirror,
    uses_aws_provider,
    write_cli_config,
)

__all__ = [
    "AWS_PROVIDER",
    "AWS_PROVIDER_VERSION",
    "AWS_SERVICES",
    "DEFAULT_TIMEOUT_S",
    "OVERRIDE_FILE",
    "HarnessError",
    "MotoServer",
    "TerraformRunner",
    "changed_attributes",
    "copy_stacks",
    "deploy_to_moto",
    "destroy_stacks",
    "endpoint_override",
    "free_port",
    "make_runner",
    "provider_mirror",
    "uses_aws_provider",
    "write_cli_config",
]
