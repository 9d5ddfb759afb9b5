"""google-cloud-compute clients for the operator tools, created in one place.

Production: Application Default Credentials (workload identity federation in CI).
Tests: `GcpClients.create(api_endpoint="http://127.0.0.1:PORT", credentials=AnonymousCredentials())`
aims the real REST clients at a local server replaying recorded Compute API responses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GcpClients:
    regions: Any
    accelerator_types: Any
    region_instance_group_managers: Any
    region_backend_services: Any
    instance_templates: Any
    region_instance_templates: Any

    @classmethod
    def create(cls, *, api_endpoint: str | None = None, credentials: Any = None) -> GcpClients:
        from google.api_core.client_options import ClientOptions
        from google.cloud import compute_v1

        options = ClientOptions(api_endpoint=api_endpoint) if api_endpoint else None
        kwargs: dict[str, Any] = {"transport": "rest", "client_options": options, "credentials": credentials}
        return cls(
            regions=compute_v1.RegionsClient(**kwargs),
            accelerator_types=compute_v1.AcceleratorTypesClient(**kwargs),
            region_instance_group_managers=compute_v1.RegionInstanceGroupManagersClient(**kwargs),
            region_backend_services=compute_v1.RegionBackendServicesClient(**kwargs),
            instance_templates=compute_v1.InstanceTemplatesClient(**kwargs),
            region_instance_templates=compute_v1.RegionInstanceTemplatesClient(**kwargs),
        )


def gpu_quota_metric(accelerator: str, *, preemptible: bool) -> str:
    """Compute Engine quota metric of an accelerator type: nvidia-l4 -> NVIDIA_L4_GPUS."""
    core = accelerator.removeprefix("nvidia-").removeprefix("tesla-").removesuffix("-80gb").upper()
    metric = f"NVIDIA_{core}_GPUS"
    return f"PREEMPTIBLE_{metric}" if preemptible else metric


_TEMPLATE = re.compile(
    r"projects/(?P<project>[^/]+)/(?:regions/(?P<region>[^/]+)|global)/instanceTemplates/(?P<name>[^/]+)$"
)


def template_labels(clients: GcpClients, template_url: str) -> dict[str, str]:
    """The labels of a MIG's instance template (regional or global), by its URL."""
    match = _TEMPLATE.search(template_url)
    if not match:
        return {}
    if match["region"]:
        tpl = clients.region_instance_templates.get(
            project=match["project"], region=match["region"], instance_template=match["name"]
        )
    else:
        tpl = clients.instance_templates.get(project=match["project"], instance_template=match["name"])
    return dict(tpl.properties.labels)


def last_segment(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]
