"""`gcp-<region>`: one GCP region of the fleet (docs/gcp.md).

Custom VPC (instance subnet, proxy-only subnet, Cloud NAT, firewall open only to Google's
health checkers and the proxy-only subnet) -> two regional MIGs over the catalogue's zones,
standard for the on-demand base and SPOT above it, each with an autoscaler -> a regional
external Application Load Balancer with a Google-managed certificate. The global stack reads
this stack's outputs (remote state): `lb_ip_address` and the certificate's DNS authorization
record `dns_authorization_record_{name,type,data}`.

Only Google bindings are imported here (never the AWS ones); the state backend is the fleet's
(S3), like every other stack, so the global stack finds the outputs in one place.
"""

from __future__ import annotations

from cdktf import TerraformOutput
from constructs import Construct

from contract.facts import GCP
from infra.catalog import Cloud
from infra.config import Fleet, RegionSpec
from infra.naming import Backend, endpoint_name, resource_prefix
from infra.stacks.common import FleetStack

# Connection draining must end before a preempted spot VM is powered off (30 s notice).
DRAIN_MARGIN_S = 5


class GcpRegionStack(FleetStack):
    def __init__(self, scope: Construct, id_: str, *, fleet: Fleet, region: RegionSpec, backend: Backend) -> None:
        super().__init__(scope, id_, fleet=fleet, backend=backend)
        if region.cloud != Cloud.GCP:
            raise ValueError(f"region: {region.stack_name} is not a GCP region")
        if fleet.gcp.project is None:
            raise ValueError(f"gcp.project: required because {region.stack_name} is a gcp region")
        from cdktf_cdktf_provider_google.provider import GoogleProvider

        from infra.boot import instance_contract, render_shutdown_script, render_user_data
        from infra.constructs.gcp.gpu_pool import GcpGpuPool, pool_sizes
        from infra.constructs.gcp.health_checks import GcpHealthChecks
        from infra.constructs.gcp.instance_template import GcpInstanceTemplate
        from infra.constructs.gcp.load_balancer import GcpLoadBalancer
        from infra.constructs.gcp.network import GcpNetwork
        from infra.constructs.gcp.service_account import GcpServiceAccount
        from infra.tagging import fleet_labels, label_gcp_resources

        self.region = region
        project = fleet.gcp.project
        name = resource_prefix(fleet, region)
        port = fleet.service.port
        GoogleProvider(self, "google", project=project, region=region.region)
        label_gcp_resources(self, fleet_labels(fleet.project, id_, fleet.tags))

        self.identity = GcpServiceAccount(
            self,
            "identity",
            name=name,
            project=project,
            api_keys_secret=fleet.service.api_keys_secret,
            weights_mirror=fleet.model.mirror(Cloud.GCP),
            optional_secrets=fleet.service.optional_secrets,
        )
        self.network = GcpNetwork(
            self,
            "network",
            name=name,
            region=region.region,
            service_port=port,
            instance_service_account=self.identity.account.email,
        )
        self.health = GcpHealthChecks(self, "health", name=name, region=region.region, port=port)
        contract = instance_contract(fleet, region)
        boot, drain = render_user_data(contract), render_shutdown_script(contract)
        self.templates: dict[str, GcpInstanceTemplate] = {}
        self.pools: dict[str, GcpGpuPool] = {}
        for pool, size in pool_sizes(region).items():
            if size.max == 0:
                continue
            template = GcpInstanceTemplate(
                self,
                f"{pool.value}_template",
                name=name,
                pool=pool,
                offering=region.offering,
                subnetwork=self.network.subnet.id,
                service_account_email=self.identity.account.email,
                scopes=self.identity.scopes,
                startup_script=boot,
                shutdown_script=drain,
                reservations=region.capacity_reservations,
            )
            self.templates[pool.value] = template
            self.pools[pool.value] = GcpGpuPool(
                self,
                f"{pool.value}_pool",
                name=name,
                pool=pool,
                region=region.region,
                zones=region.info.zones,
                instance_template=template.template.self_link_unique,
                size=size,
                port=port,
                autohealing_check=self.health.live.id,
                cold_start_s=fleet.cold_start_s(region),
                autoscale=fleet.autoscale,
            )
        self.endpoint = endpoint_name(fleet, region)
        self.lb = GcpLoadBalancer(
            self,
            "lb",
            name=name,
            region=region.region,
            domain=fleet.global_.domain,
            network=self.network.network.id,
            proxy_subnet=self.network.proxy_subnet,
            groups=[p.group.instance_group for p in self.pools.values()],
            health_check=self.health.ready.id,
            drain_timeout_s=GCP.preemption_notice_s - DRAIN_MARGIN_S,
        )

        TerraformOutput(self, "lb_ip_address", value=self.lb.address.address)
        TerraformOutput(self, "endpoint", value=self.endpoint)
        for key, value in self.lb.authorization_record.items():
            TerraformOutput(self, f"dns_authorization_record_{key}", value=value)
        TerraformOutput(self, "certificate_id", value=self.lb.certificate.id)
        TerraformOutput(self, "backend_service_id", value=self.lb.backend.id)
        TerraformOutput(self, "instance_group_managers", value={k: p.group.name for k, p in self.pools.items()})
