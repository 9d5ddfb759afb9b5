"""The boot scripts as rendered: valid bash, shellcheck-clean, within each cloud's user-data
limit, carrying the instance contract, installing nothing over plain HTTP.

The scripts are executed for real by the local region (tests/instance); these tests hold
every rendering (every region of the default fleet and of a fleet that sets every field)."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from contract.facts import GCP, TIMING, Cloud, stop_timeout_s
from infra.boot import (
    USER_DATA_LIMIT_BYTES,
    aws_user_data,
    boot_settings,
    container_env,
    instance_contract,
    render_boot_script,
    render_shutdown_script,
    user_data_bytes,
)
from infra.config import Fleet, RegionSpec, load_fleet, parse_fleet
from tests.unit.test_instance_contract import FULL_FLEET

FLEETS = {"default": load_fleet(), "full": parse_fleet(FULL_FLEET, "full")}
RENDERINGS = [(f"{label}-{r.stack_name}", fleet, r) for label, fleet in FLEETS.items() for r in fleet.regions]
IDS = [name for name, _, _ in RENDERINGS]


def _shellcheck() -> str:
    binary = shutil.which("shellcheck")
    if binary is None:
        pytest.fail("shellcheck is not installed (Debian package shellcheck; `make setup` installs it)")
    return binary


@pytest.mark.parametrize(("name", "fleet", "region"), RENDERINGS, ids=IDS)
def test_every_boot_script_is_valid_and_shellcheck_clean(
    name: str, fleet: Fleet, region: RegionSpec, tmp_path: Path
) -> None:
    script = tmp_path / "user-data.sh"
    script.write_text(render_boot_script(fleet, region), encoding="utf-8")
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30, check=False)
    assert syntax.returncode == 0, syntax.stderr
    lint = subprocess.run(
        [_shellcheck(), "--shell=bash", "--severity=style", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout


def test_the_gcp_shutdown_script_is_shellcheck_clean(tmp_path: Path) -> None:
    fleet = FLEETS["default"]
    script = tmp_path / "shutdown.sh"
    script.write_text(render_shutdown_script(instance_contract(fleet, fleet.regions_of(Cloud.GCP)[0])))
    lint = subprocess.run([_shellcheck(), str(script)], capture_output=True, text=True, timeout=60, check=False)
    assert lint.returncode == 0, lint.stdout
    budget = GCP.shutdown_budget_s - GCP.margin_s
    assert f"timeout {budget} systemctl stop llm-fleet.service" in script.read_text()


@pytest.mark.parametrize(("name", "fleet", "region"), RENDERINGS, ids=IDS)
def test_user_data_fits_the_clouds_limit(name: str, fleet: Fleet, region: RegionSpec) -> None:
    script = render_boot_script(fleet, region)
    cloud = region.cloud
    data = user_data_bytes(cloud, script)
    assert len(data) <= USER_DATA_LIMIT_BYTES[cloud]
    if cloud == Cloud.AWS:
        assert gzip.decompress(data).decode() == script  # what cloud-init runs


def test_aws_user_data_is_base64_gzip() -> None:
    import base64

    fleet = FLEETS["default"]
    script = render_boot_script(fleet, fleet.regions[0])
    assert gzip.decompress(base64.b64decode(aws_user_data(script))).decode() == script


def test_oversized_user_data_fails_at_synth() -> None:
    with pytest.raises(ValueError, match="user-data limit of aws"):
        user_data_bytes(Cloud.AWS, "#" + "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(20000)))


@pytest.mark.parametrize(("name", "fleet", "region"), RENDERINGS, ids=IDS)
def test_the_script_carries_the_contract_verbatim(name: str, fleet: Fleet, region: RegionSpec) -> None:
    contract = instance_contract(fleet, region)
    script = render_boot_script(fleet, region)
    env_block = script.split("<<'LLM_FLEET_ENV'\n", 1)[1].split("\nLLM_FLEET_ENV\n", 1)[0]
    assert env_block.splitlines() == [f"{k}={v}" for k, v in container_env(contract).items()]
    settings_block = script.split("<<'LLM_FLEET_SETTINGS'\n", 1)[1].split("\nLLM_FLEET_SETTINGS\n", 1)[0]
    assert len(settings_block.splitlines()) == len(boot_settings(contract))
    assert f"STOP_TIMEOUT_S={stop_timeout_s(contract.boot.cloud)}\n" in settings_block + "\n"
    assert stop_timeout_s(contract.boot.cloud) > TIMING[contract.boot.cloud].drain.total_s


@pytest.mark.parametrize(("name", "fleet", "region"), RENDERINGS, ids=IDS)
def test_nothing_is_installed_or_fetched_over_plain_http(name: str, fleet: Fleet, region: RegionSpec) -> None:
    """The instances may reach 443 only: every URL is HTTPS, but the link-local metadata
    services (plain HTTP by design) and the gateway's loopback ports; no package installs.
    (The container's environment is the service's settings, not something the boot fetches.)"""
    script = render_boot_script(fleet, region)
    head, _, rest = script.partition("<<'LLM_FLEET_ENV'\n")
    script = head + rest.partition("\nLLM_FLEET_ENV\n")[2]
    plain = set(re.findall(r"http://[^\s\"'$/}]+", script))
    assert plain <= {"http://169.254.169.254", "http://127.0.0.1:", "http://"}, plain
    assert not re.search(r"\b(apt-get|apt|yum|dnf|pip) install\b", script)
