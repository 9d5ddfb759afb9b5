"""The ACM DNS-validation record of the global name, owned by the bootstrap stack alone.

Every regional certificate also names the global domain (the latency records send it to each
ALB). ACM gives every certificate for one domain in one account the same validation CNAME, in
every region (terraform-provider-aws#13653: a second region's record "already exists"), and it
must stay in place for ACM to renew those certificates (ACM "DNS validation": the CNAME lets
ACM renew automatically). When each region wrote it (`allow_overwrite`), destroying one region
deleted the record the others renew with.

So one stack owns it: bootstrap, applied before and destroyed after every region. It requests a
certificate for the global name (never attached, never waited for) only to learn the CNAME,
and writes that record; the regional stacks list its name in their validation check but never
create it. The per-region names keep their own records in their own stacks.
"""

from __future__ import annotations

import json

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.acm_certificate import AcmCertificate
from cdktf_cdktf_provider_aws.data_aws_route53_zone import DataAwsRoute53Zone
from cdktf_cdktf_provider_aws.route53_record import Route53Record
from constructs import Construct

VALIDATION_TTL_S = 60


def validation_option(certificate: AcmCertificate, domain: str) -> str:
    """The HCL expression of the certificate's validation option for one of its names.

    Keyed at synth time: a for_each over domain_validation_options would have keys unknown until
    the certificate exists, which a first apply rejects.
    """
    options = f"{certificate.fqn}.domain_validation_options"
    return f"one([for o in {options} : o if o.domain_name == {json.dumps(domain)}])"


class AwsGlobalNameValidation(Construct):
    def __init__(self, scope: Construct, id_: str, *, hosted_zone: str, domain: str) -> None:
        super().__init__(scope, id_)
        self.zone = DataAwsRoute53Zone(self, "zone", name=hosted_zone, private_zone=False)
        self.certificate = AcmCertificate(
            self,
            "cert",
            domain_name=domain,
            validation_method="DNS",
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
        )
        option = validation_option(self.certificate, domain)
        self.record = Route53Record(
            self,
            "record",
            zone_id=self.zone.zone_id,
            name=f"${{{option}.resource_record_name}}",
            type=f"${{{option}.resource_record_type}}",
            records=[f"${{{option}.resource_record_value}}"],
            ttl=VALIDATION_TTL_S,
        )
