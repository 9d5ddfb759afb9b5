"""Catalogues of clouds, regions and GPU types, kept in code so synth never calls a cloud.

Sources (checked 2026-11):
- AWS accelerated instance families: https://aws.amazon.com/ec2/instance-types/#Accelerated_Computing
  (g4dn = NVIDIA T4, g5 = A10G, g6 = L4, g6e = L40S, p3 = V100, p4d = A100, p5 = H100).
- AWS regions: https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-regions.html
- GCP GPU machine types: https://cloud.google.com/compute/docs/gpus (N1 + T4/V100 attached,
  G2 = L4 built in, A2 = A100, A3 = H100) and GPU zones:
  https://cloud.google.com/compute/docs/gpus/gpu-regions-zones
- int8 / fp8 support: vLLM quantization hardware table
  https://docs.vllm.ai/en/latest/features/quantization/supported_hardware.html
  (INT8 W8A8 needs compute capability >= 7.5: Turing, Ampere, Ada, Hopper; FP8 W8A8 needs
  Ada or Hopper, >= 8.9). A V100 (7.0) can run neither.

The `preflight` operator script checks the live offerings; these tables only have to be
right enough to reject impossible fleet files before anything is planned.
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.facts import Cloud

__all__ = [
    "AWS_GPU_OFFERINGS",
    "AWS_REGIONS",
    "GCP_GPU_OFFERINGS",
    "GCP_REGIONS",
    "GPUS",
    "GPU_OFFERINGS",
    "REGIONS",
    "Cloud",
    "GpuOffering",
    "GpuSpec",
    "InstanceType",
    "RegionInfo",
]


@dataclass(frozen=True)
class GpuSpec:
    """One GPU model, independent of cloud."""

    name: str
    memory_gib: int
    compute_capability: float
    int8: bool  # vLLM INT8 W8A8 kernels run on it
    fp8: bool  # vLLM FP8 W8A8 kernels run on it

    @property
    def recommended_quantization(self) -> str:
        """Newer GPUs (Ada, Hopper) run fp8 faster than int8; older ones use int8."""
        if self.fp8 and self.compute_capability >= 9.0:
            return "fp8"
        return "int8" if self.int8 else "none"


GPUS: dict[str, GpuSpec] = {
    "t4": GpuSpec("t4", 16, 7.5, int8=True, fp8=False),
    "v100": GpuSpec("v100", 16, 7.0, int8=False, fp8=False),
    "a10g": GpuSpec("a10g", 24, 8.6, int8=True, fp8=False),
    "l4": GpuSpec("l4", 24, 8.9, int8=True, fp8=True),
    "l40s": GpuSpec("l40s", 48, 8.9, int8=True, fp8=True),
    "a100": GpuSpec("a100", 40, 8.0, int8=True, fp8=False),
    "h100": GpuSpec("h100", 80, 9.0, int8=True, fp8=True),
}


@dataclass(frozen=True)
class InstanceType:
    name: str
    gpus: int
    vcpus: int
    memory_gib: int
    # Instance-store NVMe SSD, GB (0: EBS / persistent disk only). AWS: EC2 DescribeInstanceTypes,
    # InstanceStorageInfo.TotalSizeInGB (g4dn, g5, g6, g6e, p4d, p4de, p5 have it; p3 does not).
    # GCP templates attach no local SSD, so GCP entries are 0.
    local_nvme_gb: int = 0


@dataclass(frozen=True)
class GpuOffering:
    """How one cloud sells one GPU model.

    `instance_types` is ordered by preference: the first is the default / GCP template
    machine type; AWS mixed-instances policies use all of them.
    `accelerator` is the GCP accelerator type name (None on AWS).
    """

    gpu: str
    instance_types: tuple[InstanceType, ...]
    accelerator: str | None = None

    @property
    def local_nvme(self) -> bool:
        """Every instance type of the offering has instance-store NVMe (for the image and weights)."""
        return all(t.local_nvme_gb > 0 for t in self.instance_types)


def _it(name: str, gpus: int, vcpus: int, mem: int, nvme_gb: int = 0) -> InstanceType:
    return InstanceType(name, gpus, vcpus, mem, nvme_gb)


AWS_GPU_OFFERINGS: dict[str, GpuOffering] = {
    "t4": GpuOffering(
        "t4",
        (
            _it("g4dn.xlarge", 1, 4, 16, 125),
            _it("g4dn.2xlarge", 1, 8, 32, 225),
            _it("g4dn.4xlarge", 1, 16, 64, 225),
            _it("g4dn.8xlarge", 1, 32, 128, 900),
        ),
    ),
    "a10g": GpuOffering(
        "a10g",
        (
            _it("g5.xlarge", 1, 4, 16, 250),
            _it("g5.2xlarge", 1, 8, 32, 450),
            _it("g5.4xlarge", 1, 16, 64, 600),
            _it("g5.8xlarge", 1, 32, 128, 900),
        ),
    ),
    "l4": GpuOffering(
        "l4",
        (
            _it("g6.xlarge", 1, 4, 16, 250),
            _it("g6.2xlarge", 1, 8, 32, 450),
            _it("g6.4xlarge", 1, 16, 64, 600),
            _it("g6.8xlarge", 1, 32, 128, 900),
        ),
    ),
    "l40s": GpuOffering(
        "l40s",
        (
            _it("g6e.xlarge", 1, 4, 32, 250),
            _it("g6e.2xlarge", 1, 8, 64, 450),
            _it("g6e.4xlarge", 1, 16, 128, 600),
        ),
    ),
    "v100": GpuOffering("v100", (_it("p3.2xlarge", 1, 8, 61), _it("p3.8xlarge", 4, 32, 244))),
    "a100": GpuOffering("a100", (_it("p4d.24xlarge", 8, 96, 1152, 8000), _it("p4de.24xlarge", 8, 96, 1152, 8000))),
    "h100": GpuOffering("h100", (_it("p5.4xlarge", 1, 16, 256, 3800), _it("p5.48xlarge", 8, 192, 2048, 30400))),
}

GCP_GPU_OFFERINGS: dict[str, GpuOffering] = {
    "t4": GpuOffering(
        "t4",
        (_it("n1-standard-8", 1, 8, 30), _it("n1-standard-4", 1, 4, 15), _it("n1-standard-16", 1, 16, 60)),
        accelerator="nvidia-tesla-t4",
    ),
    "v100": GpuOffering("v100", (_it("n1-standard-8", 1, 8, 30),), accelerator="nvidia-tesla-v100"),
    "l4": GpuOffering(
        "l4",
        (_it("g2-standard-8", 1, 8, 32), _it("g2-standard-4", 1, 4, 16), _it("g2-standard-12", 1, 12, 48)),
        accelerator="nvidia-l4",
    ),
    "a100": GpuOffering("a100", (_it("a2-highgpu-1g", 1, 12, 85),), accelerator="nvidia-tesla-a100"),
    "h100": GpuOffering("h100", (_it("a3-highgpu-1g", 1, 26, 234),), accelerator="nvidia-h100-80gb"),
}

GPU_OFFERINGS: dict[Cloud, dict[str, GpuOffering]] = {
    Cloud.AWS: AWS_GPU_OFFERINGS,
    Cloud.GCP: GCP_GPU_OFFERINGS,
}


@dataclass(frozen=True)
class ColdStartBudget:
    """Seconds from instance launch to `/health/ready`, step by step (docs/aws.md, "Cold-start
    budget", gives the throughputs each step assumes). `cold_start_s` sizes the ASG health-check
    grace period and instance warm-up, and the MIG autohealing initial delay and autoscaler
    initialization period, unless the fleet file sets `service.cold_start_s`.
    """

    boot_s: int  # launch to the boot script: firmware, kernel, cloud-init / guest agent
    image_s: int  # service image (~20 GB unpacked, ~10 GB compressed) pulled and unpacked
    weights_s: int  # ~8.5 GB of int8 weights from the hub or the mirror
    load_s: int  # weights into GPU memory, torch.compile and CUDA graph capture
    warmup_s: int  # the gateway's warm-up requests until readiness turns 200

    MARGIN = 1.25  # a slow registry or hub day must not cost a healthy instance
    STEP_S = 30

    @property
    def total_s(self) -> int:
        return self.boot_s + self.image_s + self.weights_s + self.load_s + self.warmup_s

    @property
    def cold_start_s(self) -> int:
        """The total with the margin, rounded up to a multiple of 30 s."""
        with_margin = int(self.total_s * self.MARGIN + 0.999)
        return -(-with_margin // self.STEP_S) * self.STEP_S


def _cs(boot: int, image: int, weights: int, load: int, warmup: int) -> ColdStartBudget:
    return ColdStartBudget(boot, image, weights, load, warmup)


# Per cloud and GPU, for the offering's first instance type. AWS types with local NVMe unpack
# the image and write the weights there (network- and CPU-bound, ~100 MB/s compressed download,
# 4 vCPUs unpacking); p3 (V100) has none and writes to the root gp3 volume, provisioned at
# 1,000 MiB/s but held to the instance's EBS bandwidth (p3.2xlarge: 1,750 Mbps). GCP writes to
# the pd-balanced boot disk. V100 runs unquantized (~15 GB of fp16 weights).
COLD_START_BUDGETS: dict[Cloud, dict[str, ColdStartBudget]] = {
    Cloud.AWS: {
        "t4": _cs(90, 240, 90, 150, 30),
        "a10g": _cs(90, 240, 90, 120, 30),
        "l4": _cs(90, 240, 90, 120, 30),
        "l40s": _cs(90, 240, 90, 100, 30),
        "v100": _cs(90, 270, 120, 150, 30),
        "a100": _cs(120, 150, 90, 90, 30),
        "h100": _cs(120, 180, 90, 90, 30),
    },
    Cloud.GCP: {
        "t4": _cs(60, 300, 90, 150, 30),
        "v100": _cs(60, 300, 120, 150, 30),
        "l4": _cs(60, 300, 90, 120, 30),
        "a100": _cs(60, 270, 90, 90, 30),
        "h100": _cs(60, 240, 90, 90, 30),
    },
}


@dataclass(frozen=True)
class RegionInfo:
    name: str
    location: str
    # GCP: the zones of the regional MIGs. AWS: the allowlist of zone names the VPC may use
    # (the first `az_count` available ones), so a zone AWS adds later never appears silently.
    zones: tuple[str, ...] = ()
    # GCP only: the AWS latency region nearest to it (Route 53 latency records name AWS regions).
    nearest_aws_region: str | None = None
    # AWS: how many of `zones` the VPC spans (3 where the region has them); 0 = all of them.
    az_count: int = 0

    @property
    def azs(self) -> int:
        return self.az_count or len(self.zones)


def _aws(name: str, location: str, letters: str = "abc", az_count: int = 0) -> RegionInfo:
    return RegionInfo(name, location, tuple(f"{name}{z}" for z in letters), az_count=az_count)


# Zone names per region (EC2 DescribeAvailabilityZones): three where the region offers them,
# which is every region here but us-west-1, where an account sees two of its three names (which
# two depends on the account). ca-central-1 has no "c" and ap-northeast-1 no "b" zone.
AWS_REGIONS: dict[str, RegionInfo] = {
    r.name: r
    for r in (
        _aws("us-east-1", "N. Virginia"),
        _aws("us-east-2", "Ohio"),
        _aws("us-west-1", "N. California", az_count=2),
        _aws("us-west-2", "Oregon"),
        _aws("ca-central-1", "Montreal", "abd"),
        _aws("sa-east-1", "Sao Paulo"),
        _aws("eu-west-1", "Ireland"),
        _aws("eu-west-2", "London"),
        _aws("eu-west-3", "Paris"),
        _aws("eu-central-1", "Frankfurt"),
        _aws("eu-north-1", "Stockholm"),
        _aws("ap-south-1", "Mumbai"),
        _aws("ap-northeast-1", "Tokyo", "acd"),
        _aws("ap-northeast-2", "Seoul"),
        _aws("ap-southeast-1", "Singapore"),
        _aws("ap-southeast-2", "Sydney"),
    )
}

GCP_REGIONS: dict[str, RegionInfo] = {
    r.name: r
    for r in (
        RegionInfo("us-central1", "Iowa", ("us-central1-a", "us-central1-b", "us-central1-c"), "us-east-2"),
        RegionInfo("us-east1", "South Carolina", ("us-east1-b", "us-east1-c", "us-east1-d"), "us-east-1"),
        RegionInfo("us-east4", "N. Virginia", ("us-east4-a", "us-east4-b", "us-east4-c"), "us-east-1"),
        RegionInfo("us-west1", "Oregon", ("us-west1-a", "us-west1-b", "us-west1-c"), "us-west-2"),
        RegionInfo("us-west4", "Las Vegas", ("us-west4-a", "us-west4-b", "us-west4-c"), "us-west-1"),
        RegionInfo("europe-west1", "Belgium", ("europe-west1-b", "europe-west1-c", "europe-west1-d"), "eu-west-1"),
        RegionInfo("europe-west2", "London", ("europe-west2-a", "europe-west2-b", "europe-west2-c"), "eu-west-2"),
        RegionInfo("europe-west3", "Frankfurt", ("europe-west3-a", "europe-west3-b", "europe-west3-c"), "eu-central-1"),
        RegionInfo(
            "europe-west4", "Netherlands", ("europe-west4-a", "europe-west4-b", "europe-west4-c"), "eu-central-1"
        ),
        RegionInfo("asia-east1", "Taiwan", ("asia-east1-a", "asia-east1-b", "asia-east1-c"), "ap-northeast-1"),
        RegionInfo(
            "asia-northeast1",
            "Tokyo",
            ("asia-northeast1-a", "asia-northeast1-b", "asia-northeast1-c"),
            "ap-northeast-1",
        ),
        RegionInfo("asia-south1", "Mumbai", ("asia-south1-a", "asia-south1-b", "asia-south1-c"), "ap-south-1"),
        RegionInfo(
            "asia-southeast1",
            "Singapore",
            ("asia-southeast1-a", "asia-southeast1-b", "asia-southeast1-c"),
            "ap-southeast-1",
        ),
        RegionInfo(
            "australia-southeast1",
            "Sydney",
            ("australia-southeast1-a", "australia-southeast1-b", "australia-southeast1-c"),
            "ap-southeast-2",
        ),
        RegionInfo(
            "southamerica-east1",
            "Sao Paulo",
            ("southamerica-east1-a", "southamerica-east1-b", "southamerica-east1-c"),
            "sa-east-1",
        ),
    )
}

REGIONS: dict[Cloud, dict[str, RegionInfo]] = {Cloud.AWS: AWS_REGIONS, Cloud.GCP: GCP_REGIONS}
