"""The regional entry point: an internet-facing ALB with TLS from a DNS-validated ACM cert.

HTTPS (TLS 1.3/1.2 policy) forwards only the public API paths and the readiness path to the
instances; everything else gets a 404 in the OpenAI error envelope. HTTP answers 301 to HTTPS.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.acm_certificate import AcmCertificate
from cdktf_cdktf_provider_aws.acm_certificate_validation import AcmCertificateValidation
from cdktf_cdktf_provider_aws.lb import Lb
from cdktf_cdktf_provider_aws.lb_listener import (
    LbListener,
    LbListenerDefaultAction,
    LbListenerDefaultActionFixedResponse,
    LbListenerDefaultActionRedirect,
)
from cdktf_cdktf_provider_aws.lb_listener_rule import (
    LbListenerRule,
    LbListenerRuleAction,
    LbListenerRuleCondition,
    LbListenerRuleConditionPathPattern,
)
from cdktf_cdktf_provider_aws.lb_target_group import LbTargetGroup, LbTargetGroupHealthCheck
from cdktf_cdktf_provider_aws.route53_record import Route53Record
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

from contract.facts import AWS, LB_FORWARDED_PATHS
from infra.constructs.aws.global_name_validation import VALIDATION_TTL_S, validation_option
from infra.tagging import suppress

TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
READY_CHECK = AWS.ready_check  # the target group's check, as the drain windows assume it
NOT_FOUND_BODY = json.dumps(
    {"error": {"message": "not found", "type": "invalid_request_error", "param": None, "code": "not_found"}},
    separators=(",", ":"),
)


class AwsLoadBalancer(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name: str,
        vpc_id: str,
        subnet_ids: Sequence[str],
        zone_id: str,
        domain_names: Sequence[str],
        shared_names: Sequence[str] = (),
        service_port: int,
        deregistration_delay_s: int,
        idle_timeout_s: int,
    ) -> None:
        super().__init__(scope, id_)
        self.security_group = SecurityGroup(
            self, "sg", name_prefix=f"{name}-alb-", description=f"{name} load balancer", vpc_id=vpc_id
        )
        for port, what in ((443, "HTTPS API"), (80, "HTTP, redirected to HTTPS")):
            rule = VpcSecurityGroupIngressRule(
                self,
                f"ingress_{port}",
                security_group_id=self.security_group.id,
                cidr_ipv4="0.0.0.0/0",
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                description=what,
            )
            if port == 80:
                suppress(rule, {"CKV_AWS_260": "port 80 only answers 301 to HTTPS"})

        self.certificate = AcmCertificate(
            self,
            "cert",
            domain_name=domain_names[0],
            subject_alternative_names=list(domain_names[1:]),
            validation_method="DNS",
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
        )
        # One record per name this stack owns. A name in `shared_names` (the global name, on
        # every region's certificate) has the same validation CNAME in every region, and its
        # record is the bootstrap stack's (infra/constructs/aws/global_name_validation.py): it
        # is only listed in the validation check here, so destroying this region leaves it.
        self.validation_records: list[Route53Record] = []
        fqdns: list[str] = []
        for i, domain in enumerate(domain_names):
            option = validation_option(self.certificate, domain)
            if domain in shared_names:
                fqdns.append(f"${{{option}.resource_record_name}}")
                continue
            record = Route53Record(
                self,
                f"cert_validation_{i}",
                zone_id=zone_id,
                name=f"${{{option}.resource_record_name}}",
                type=f"${{{option}.resource_record_type}}",
                records=[f"${{{option}.resource_record_value}}"],
                ttl=VALIDATION_TTL_S,
            )
            self.validation_records.append(record)
            fqdns.append(record.fqdn)
        self.certificate_validation = AcmCertificateValidation(
            self,
            "cert_validated",
            certificate_arn=self.certificate.arn,
            validation_record_fqdns=fqdns,
        )

        self.alb = Lb(
            self,
            "alb",
            name=f"{name}"[:32],
            load_balancer_type="application",
            internal=False,
            security_groups=[self.security_group.id],
            subnets=list(subnet_ids),
            drop_invalid_header_fields=True,
            idle_timeout=idle_timeout_s,
            enable_deletion_protection=True,
            desync_mitigation_mode="strictest",
        )
        suppress(
            self.alb,
            {
                "CKV_AWS_91": "request logs are written by the gateway (JSON, with request ids); ALB access logs "
                "would duplicate them",
                "CKV2_AWS_28": "API keys, body-size and rate limits are enforced by the gateway; a WAF adds no rule "
                "that applies to an authenticated JSON API",
                "CKV2_AWS_76": "no WAF (see CKV2_AWS_28); the service runs no Java",
            },
        )
        self.target_group = LbTargetGroup(
            self,
            "tg",
            name_prefix="llm-",
            port=service_port,
            protocol="HTTP",
            target_type="instance",
            vpc_id=vpc_id,
            deregistration_delay=str(deregistration_delay_s),
            load_balancing_algorithm_type="least_outstanding_requests",
            health_check=LbTargetGroupHealthCheck(
                enabled=True,
                path=READY_CHECK.path,
                port="traffic-port",
                protocol="HTTP",
                matcher="200",
                interval=int(READY_CHECK.interval_s),
                timeout=int(READY_CHECK.timeout_s),
                healthy_threshold=READY_CHECK.healthy_threshold,
                unhealthy_threshold=READY_CHECK.unhealthy_threshold,
            ),
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
        )
        suppress(
            self.target_group,
            {
                "CKV_AWS_378": "TLS ends at the ALB; targets sit in private subnets and accept the service port "
                "only from the ALB's security group"
            },
        )
        self.http_listener = LbListener(
            self,
            "http",
            load_balancer_arn=self.alb.arn,
            port=80,
            protocol="HTTP",
            default_action=[
                LbListenerDefaultAction(
                    type="redirect",
                    redirect=LbListenerDefaultActionRedirect(port="443", protocol="HTTPS", status_code="HTTP_301"),
                )
            ],
        )
        self.https_listener = LbListener(
            self,
            "https",
            load_balancer_arn=self.alb.arn,
            port=443,
            protocol="HTTPS",
            ssl_policy=TLS_POLICY,
            certificate_arn=self.certificate_validation.certificate_arn,
            default_action=[
                LbListenerDefaultAction(
                    type="fixed-response",
                    fixed_response=LbListenerDefaultActionFixedResponse(
                        content_type="application/json", message_body=NOT_FOUND_BODY, status_code="404"
                    ),
                )
            ],
        )
        self.api_rule = LbListenerRule(
            self,
            "api",
            listener_arn=self.https_listener.arn,
            priority=10,
            action=[LbListenerRuleAction(type="forward", target_group_arn=self.target_group.arn)],
            condition=[
                LbListenerRuleCondition(
                    path_pattern=LbListenerRuleConditionPathPattern(values=list(LB_FORWARDED_PATHS))
                )
            ],
        )
