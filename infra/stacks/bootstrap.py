"""`bootstrap`: the Terraform state bucket every other stack stores its state in.

It keeps its own state locally (it creates the bucket the others need), so it is applied
once per account, by hand or by the first CI run, before any regional stack.
"""

from __future__ import annotations

from cdktf import TerraformOutput
from cdktf_cdktf_provider_aws.provider import AwsProvider
from constructs import Construct

from infra.config import Fleet
from infra.constructs.aws_state_bucket import AwsStateBucket
from infra.stacks.common import Backend, FleetStack


class BootstrapStack(FleetStack):
    def __init__(self, scope: Construct, id_: str, *, fleet: Fleet, backend: Backend) -> None:
        super().__init__(scope, id_, fleet=fleet, backend=backend, force_local=True)

        AwsProvider(self, "aws", region=fleet.state.region)
        self.bucket = AwsStateBucket(self, "state", bucket_name=fleet.state.bucket)
        TerraformOutput(self, "state_bucket_name", value=self.bucket.bucket.bucket)
        TerraformOutput(self, "state_bucket_arn", value=self.bucket.bucket.arn)
        TerraformOutput(self, "state_kms_key_arn", value=self.bucket.key.arn)
