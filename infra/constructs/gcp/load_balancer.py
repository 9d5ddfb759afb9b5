"""Regional external Application Load Balancer (EXTERNAL_MANAGED) in front of both pools.

- A static regional IPv4 address (Premium tier) shared by the HTTPS and HTTP forwarding rules;
  the global stack points `<region>.<domain>` (and a latency record of the global name) at it.
- Certificate: a Certificate Manager *regional Google-managed* certificate with DNS
  authorization. Chosen over a self-managed `google_compute_region_ssl_certificate` (someone
  would have to issue and rotate it) and because load-balancer authorization does not exist
  for regional certificates. One DNS authorization for the global domain covers the domain
  and its wildcard, so the certificate names `<domain>` and `*.<domain>` (which includes
  `<region>.<domain>`) and needs a single CNAME, which the global stack writes in the Route 53
  zone from this stack's outputs. PER_PROJECT_RECORD keeps that CNAME from clashing with
  another project's authorization of the same domain (e.g. a staging fleet).
- SSL policy MODERN with TLS >= 1.2; plain HTTP only answers 301 to HTTPS.
- URL map: only the public API paths and the readiness path reach the backends; any other
  path gets 404 from the proxy (fault-injection abort), so vLLM's other routes are unreachable.
- Backend service: both MIGs, LEAST_REQUEST (generations vary widely in length), timeout
  >= 300 s for long non-streamed generations, connection draining shorter than the 30 s spot
  notice so a preempted VM's in-flight requests finish before it is powered off.
"""

from __future__ import annotations

from collections.abc import Sequence

from cdktf_cdktf_provider_google.certificate_manager_certificate import (
    CertificateManagerCertificate,
    CertificateManagerCertificateManaged,
)
from cdktf_cdktf_provider_google.certificate_manager_dns_authorization import CertificateManagerDnsAuthorization
from cdktf_cdktf_provider_google.compute_address import ComputeAddress
from cdktf_cdktf_provider_google.compute_forwarding_rule import ComputeForwardingRule
from cdktf_cdktf_provider_google.compute_region_backend_service import (
    ComputeRegionBackendService,
    ComputeRegionBackendServiceBackend,
    ComputeRegionBackendServiceLogConfig,
)
from cdktf_cdktf_provider_google.compute_region_ssl_policy import ComputeRegionSslPolicy
from cdktf_cdktf_provider_google.compute_region_target_http_proxy import ComputeRegionTargetHttpProxy
from cdktf_cdktf_provider_google.compute_region_target_https_proxy import ComputeRegionTargetHttpsProxy
from cdktf_cdktf_provider_google.compute_region_url_map import (
    ComputeRegionUrlMap,
    ComputeRegionUrlMapDefaultUrlRedirect,
    ComputeRegionUrlMapHostRule,
    ComputeRegionUrlMapPathMatcher,
    ComputeRegionUrlMapPathMatcherDefaultRouteAction,
    ComputeRegionUrlMapPathMatcherDefaultRouteActionFaultInjectionPolicy,
    ComputeRegionUrlMapPathMatcherDefaultRouteActionFaultInjectionPolicyAbort,
    ComputeRegionUrlMapPathMatcherDefaultRouteActionWeightedBackendServices,
    ComputeRegionUrlMapPathMatcherPathRule,
)
from cdktf_cdktf_provider_google.compute_subnetwork import ComputeSubnetwork
from constructs import Construct

from contract.facts import LB_FORWARDED_PATHS
from infra.constructs.gcp.gpu_pool import NAMED_PORT
from infra.tagging import gcp_name

BACKEND_TIMEOUT_S = 300
NOT_FOUND = 404


class GcpLoadBalancer(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name: str,
        region: str,
        domain: str,
        network: str,
        proxy_subnet: ComputeSubnetwork,
        groups: Sequence[str],
        health_check: str,
        drain_timeout_s: int,
    ) -> None:
        super().__init__(scope, id_)
        self.domains = [domain, f"*.{domain}"]
        self.address = ComputeAddress(
            self,
            "address",
            name=gcp_name(name, "lb"),
            region=region,
            address_type="EXTERNAL",
            network_tier="PREMIUM",
            description="Regional external Application Load Balancer",
        )
        self.dns_authorization = CertificateManagerDnsAuthorization(
            self,
            "dns_authorization",
            name=gcp_name(name, "dns-auth"),
            location=region,
            domain=domain,
            type="PER_PROJECT_RECORD",
            description=f"Proves control of {domain} (and *.{domain}) for the regional certificate",
        )
        self.certificate = CertificateManagerCertificate(
            self,
            "certificate",
            name=gcp_name(name, "cert"),
            location=region,
            description=f"{domain} and *.{domain} (covers the regional name)",
            managed=CertificateManagerCertificateManaged(
                domains=self.domains, dns_authorizations=[self.dns_authorization.id]
            ),
        )
        self.ssl_policy = ComputeRegionSslPolicy(
            self, "tls", name=gcp_name(name, "tls"), region=region, profile="MODERN", min_tls_version="TLS_1_2"
        )
        self.backend = ComputeRegionBackendService(
            self,
            "backend",
            name=gcp_name(name, "backend"),
            region=region,
            load_balancing_scheme="EXTERNAL_MANAGED",
            protocol="HTTP",
            port_name=NAMED_PORT,
            timeout_sec=BACKEND_TIMEOUT_S,
            connection_draining_timeout_sec=drain_timeout_s,
            locality_lb_policy="LEAST_REQUEST",
            health_checks=[health_check],
            backend=[
                ComputeRegionBackendServiceBackend(group=g, balancing_mode="UTILIZATION", capacity_scaler=1.0)
                for g in groups
            ],
            log_config=ComputeRegionBackendServiceLogConfig(enable=True, sample_rate=1.0),
        )
        self.url_map = ComputeRegionUrlMap(
            self,
            "https_routes",
            name=gcp_name(name, "https"),
            region=region,
            description="Only the public API and the readiness path reach the instances",
            default_service=self.backend.id,
            host_rule=[ComputeRegionUrlMapHostRule(hosts=["*"], path_matcher="api")],
            path_matcher=[
                ComputeRegionUrlMapPathMatcher(
                    name="api",
                    # Anything else: 404 from the proxy, never forwarded.
                    default_route_action=ComputeRegionUrlMapPathMatcherDefaultRouteAction(
                        weighted_backend_services=[
                            ComputeRegionUrlMapPathMatcherDefaultRouteActionWeightedBackendServices(
                                backend_service=self.backend.id, weight=100
                            )
                        ],
                        fault_injection_policy=ComputeRegionUrlMapPathMatcherDefaultRouteActionFaultInjectionPolicy(
                            abort=ComputeRegionUrlMapPathMatcherDefaultRouteActionFaultInjectionPolicyAbort(
                                http_status=NOT_FOUND, percentage=100
                            )
                        ),
                    ),
                    path_rule=[
                        ComputeRegionUrlMapPathMatcherPathRule(paths=list(LB_FORWARDED_PATHS), service=self.backend.id)
                    ],
                )
            ],
        )
        self.redirect_map = ComputeRegionUrlMap(
            self,
            "http_redirect",
            name=gcp_name(name, "http-redirect"),
            region=region,
            description="HTTP -> HTTPS",
            default_url_redirect=ComputeRegionUrlMapDefaultUrlRedirect(
                https_redirect=True, strip_query=False, redirect_response_code="MOVED_PERMANENTLY_DEFAULT"
            ),
        )
        self.https_proxy = ComputeRegionTargetHttpsProxy(
            self,
            "https_proxy",
            name=gcp_name(name, "https"),
            region=region,
            url_map=self.url_map.id,
            certificate_manager_certificates=[self.certificate.id],
            ssl_policy=self.ssl_policy.id,
        )
        self.http_proxy = ComputeRegionTargetHttpProxy(
            self, "http_proxy", name=gcp_name(name, "http"), region=region, url_map=self.redirect_map.id
        )
        self.forwarding_rules = [
            ComputeForwardingRule(
                self,
                f"{scheme}_rule",
                name=gcp_name(name, scheme),
                region=region,
                load_balancing_scheme="EXTERNAL_MANAGED",
                network_tier="PREMIUM",
                network=network,
                ip_protocol="TCP",
                port_range=str(port),
                ip_address=self.address.id,
                target=proxy.id,
                # The regional proxies need the proxy-only subnet before any rule exists.
                depends_on=[proxy_subnet],
            )
            for scheme, port, proxy in (("https", 443, self.https_proxy), ("http", 80, self.http_proxy))
        ]
        record = self.dns_authorization.dns_resource_record.get(0)
        self.authorization_record = {"name": record.name, "type": record.type, "data": record.data}
