"""An instance template for one capacity pool (standard or spot) of GPU instances.

The GPU comes from the catalogue: the offering's first machine type with its accelerator
(N1 + attached T4/V100; G2, A2 and A3 carry theirs, and the template names it explicitly).
Every template: `on_host_maintenance = TERMINATE` (GPU VMs cannot live-migrate), shielded VM
with vTPM and integrity monitoring but Secure Boot off (the image's NVIDIA kernel modules are
not signed with a key Secure Boot trusts, see `SECURE_BOOT`), OS Login with project SSH keys
blocked, serial port off, no public IP, the fleet's own service account, the shared boot script as startup-script
and a draining shutdown-script. Spot: provisioning model SPOT, terminated by deletion (the MIG
recreates it when capacity returns), never consuming reservations. Standard: consumes the
named reservations when the fleet file lists them (SPECIFIC_RESERVATION), else any matching.
"""

from __future__ import annotations

from enum import StrEnum

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_google.compute_instance_template import (
    ComputeInstanceTemplate,
    ComputeInstanceTemplateDisk,
    ComputeInstanceTemplateGuestAccelerator,
    ComputeInstanceTemplateNetworkInterface,
    ComputeInstanceTemplateReservationAffinity,
    ComputeInstanceTemplateReservationAffinitySpecificReservation,
    ComputeInstanceTemplateScheduling,
    ComputeInstanceTemplateServiceAccount,
    ComputeInstanceTemplateShieldedInstanceConfig,
)
from constructs import Construct

from infra.catalog import GpuOffering
from infra.tagging import gcp_name

# Deep Learning VM image with the NVIDIA driver preinstalled; the boot script adds the
# container toolkit when it is missing.
BOOT_IMAGE = "projects/deeplearning-platform-release/global/images/family/common-cu128-ubuntu-2204-nvidia-570"
BOOT_DISK_GB = 200
# Shielded VM docs: with Secure Boot "any boot component that isn't properly signed ... isn't
# allowed to run", and the kernel then loads only signed modules; the Deep Learning VM's NVIDIA
# driver modules are built by DKMS on the image and not signed with a key in the VM's Secure
# Boot database, so `nvidia-smi` fails at boot (Compute Engine docs, "Install GPU drivers":
# Secure Boot needs signed drivers). vTPM (measured boot) and integrity monitoring stay on.
SECURE_BOOT = False
RESERVATION_KEY = "compute.googleapis.com/reservation-name"
# Instance template names are generated from a prefix (templates are immutable; each change
# creates a new one before the old is deleted); the provider allows at most 37 characters.
NAME_PREFIX_MAX = 37


class Pool(StrEnum):
    STANDARD = "standard"
    SPOT = "spot"


class GcpInstanceTemplate(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name: str,
        pool: Pool,
        offering: GpuOffering,
        subnetwork: str,
        service_account_email: str,
        scopes: list[str],
        startup_script: str,
        shutdown_script: str,
        reservations: tuple[str, ...] = (),
    ) -> None:
        super().__init__(scope, id_)
        if offering.accelerator is None:
            raise ValueError(f"gpu_type: '{offering.gpu}' has no GCP accelerator in the catalogue")
        machine = offering.instance_types[0]
        self.machine_type = machine.name
        self.accelerator = offering.accelerator
        if pool == Pool.SPOT:
            scheduling = ComputeInstanceTemplateScheduling(
                provisioning_model="SPOT",
                preemptible=True,
                automatic_restart=False,
                on_host_maintenance="TERMINATE",
                instance_termination_action="DELETE",
            )
            affinity = ComputeInstanceTemplateReservationAffinity(type="NO_RESERVATION")
        else:
            scheduling = ComputeInstanceTemplateScheduling(
                provisioning_model="STANDARD",
                preemptible=False,
                automatic_restart=True,
                on_host_maintenance="TERMINATE",
            )
            affinity = (
                ComputeInstanceTemplateReservationAffinity(
                    type="SPECIFIC_RESERVATION",
                    specific_reservation=ComputeInstanceTemplateReservationAffinitySpecificReservation(
                        key=RESERVATION_KEY, values=list(reservations)
                    ),
                )
                if reservations
                else ComputeInstanceTemplateReservationAffinity(type="ANY_RESERVATION")
            )
        self.template = ComputeInstanceTemplate(
            self,
            "template",
            name_prefix=gcp_name(name, pool.value, max_len=NAME_PREFIX_MAX - 1) + "-",
            description=f"llm-fleet {pool.value} GPU instances ({offering.gpu})",
            machine_type=machine.name,
            guest_accelerator=[ComputeInstanceTemplateGuestAccelerator(type=offering.accelerator, count=machine.gpus)],
            scheduling=scheduling,
            reservation_affinity=affinity,
            disk=[
                ComputeInstanceTemplateDisk(
                    boot=True,
                    auto_delete=True,
                    source_image=BOOT_IMAGE,
                    disk_type="pd-balanced",
                    disk_size_gb=BOOT_DISK_GB,
                )
            ],
            network_interface=[ComputeInstanceTemplateNetworkInterface(subnetwork=subnetwork)],
            can_ip_forward=False,
            shielded_instance_config=ComputeInstanceTemplateShieldedInstanceConfig(
                enable_secure_boot=SECURE_BOOT, enable_vtpm=True, enable_integrity_monitoring=True
            ),
            service_account=ComputeInstanceTemplateServiceAccount(email=service_account_email, scopes=scopes),
            metadata={
                "enable-oslogin": "TRUE",
                "block-project-ssh-keys": "TRUE",
                "serial-port-enable": "FALSE",
                "startup-script": startup_script,
                "shutdown-script": shutdown_script,
            },
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
        )
