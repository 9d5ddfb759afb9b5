"""A custom-mode VPC for one GCP region: instance subnet, proxy-only subnet, Cloud NAT, firewall.

Instances have no public IP; they reach the image registry, the model hub and Google APIs
through Cloud NAT (and Private Google Access). Ingress is closed except on the service port,
and only from Google's health-check ranges and the region's proxy-only subnet (where the
regional external Application Load Balancer's Envoy proxies connect from), and only to the
instances' own service account. Nothing opens SSH: operators use OS Login through IAP.
"""

from __future__ import annotations

from cdktf_cdktf_provider_google.compute_firewall import ComputeFirewall, ComputeFirewallAllow, ComputeFirewallLogConfig
from cdktf_cdktf_provider_google.compute_network import ComputeNetwork
from cdktf_cdktf_provider_google.compute_router import ComputeRouter
from cdktf_cdktf_provider_google.compute_router_nat import (
    ComputeRouterNat,
    ComputeRouterNatLogConfig,
    ComputeRouterNatSubnetwork,
)
from cdktf_cdktf_provider_google.compute_subnetwork import ComputeSubnetwork, ComputeSubnetworkLogConfig
from constructs import Construct

from infra.tagging import gcp_name

# Google's load-balancer health-check probers (https://cloud.google.com/load-balancing/docs/health-check-concepts).
HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
INSTANCE_SUBNET_CIDR = "10.20.0.0/20"
# Envoy proxies of the regional external Application Load Balancer (one per region and VPC).
PROXY_SUBNET_CIDR = "10.129.0.0/23"


class GcpNetwork(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name: str,
        region: str,
        service_port: int,
        instance_service_account: str,
        subnet_cidr: str = INSTANCE_SUBNET_CIDR,
        proxy_subnet_cidr: str = PROXY_SUBNET_CIDR,
    ) -> None:
        super().__init__(scope, id_)
        self.network = ComputeNetwork(
            self,
            "vpc",
            name=gcp_name(name),
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
        )
        self.subnet = ComputeSubnetwork(
            self,
            "instances",
            name=gcp_name(name, "instances"),
            network=self.network.id,
            region=region,
            ip_cidr_range=subnet_cidr,
            private_ip_google_access=True,
            log_config=ComputeSubnetworkLogConfig(
                aggregation_interval="INTERVAL_5_SEC", flow_sampling=0.5, metadata="INCLUDE_ALL_METADATA"
            ),
        )
        self.proxy_subnet = ComputeSubnetwork(
            self,
            "proxy_only",
            name=gcp_name(name, "proxy-only"),
            network=self.network.id,
            region=region,
            ip_cidr_range=proxy_subnet_cidr,
            purpose="REGIONAL_MANAGED_PROXY",
            role="ACTIVE",
        )
        self.router = ComputeRouter(
            self, "router", name=gcp_name(name, "router"), network=self.network.id, region=region
        )
        self.nat = ComputeRouterNat(
            self,
            "nat",
            name=gcp_name(name, "nat"),
            router=self.router.name,
            region=region,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS",
            subnetwork=[ComputeRouterNatSubnetwork(name=self.subnet.id, source_ip_ranges_to_nat=["ALL_IP_RANGES"])],
            # Image pulls and weight downloads open many parallel connections.
            enable_dynamic_port_allocation=True,
            min_ports_per_vm=256,
            max_ports_per_vm=8192,
            log_config=ComputeRouterNatLogConfig(enable=True, filter="ERRORS_ONLY"),
        )
        self.allowed_sources = (*HEALTH_CHECK_RANGES, proxy_subnet_cidr)
        self.service_ingress = ComputeFirewall(
            self,
            "allow_service",
            name=gcp_name(name, "allow-lb-to-service"),
            network=self.network.id,
            description="Service port from Google health checkers and the ALB proxy-only subnet only",
            direction="INGRESS",
            priority=1000,
            source_ranges=list(self.allowed_sources),
            target_service_accounts=[instance_service_account],
            allow=[ComputeFirewallAllow(protocol="tcp", ports=[str(service_port)])],
            log_config=ComputeFirewallLogConfig(metadata="INCLUDE_ALL_METADATA"),
        )
