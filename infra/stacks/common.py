"""What every stack shares: the state backend, the AWS tags, remote-state lookups.

Backends: "fleet" writes state to the S3 bucket named in `fleet.state` (key
`<project>/<stack>.tfstate`, S3-native lockfile locking, SSE-KMS with the state key by its
alias); "local" keeps a state file next to the synthesized JSON (`terraform.<stack>.tfstate`)
so tests can run on a copy of the tree.
"""

from __future__ import annotations

from cdktf import (
    DataTerraformRemoteStateLocal,
    DataTerraformRemoteStateS3,
    LocalBackend,
    S3Backend,
    TerraformRemoteState,
    TerraformStack,
)
from constructs import Construct

from infra.config import Fleet
from infra.naming import Backend, local_state_file, state_key, state_kms_alias
from infra.tagging import fleet_tags, tag_aws_resources


def use_s3(fleet: Fleet, backend: Backend) -> bool:
    return backend == "fleet" and fleet.state.backend == "s3"


class FleetStack(TerraformStack):
    """A TerraformStack with the fleet's backend and AWS tags applied."""

    def __init__(
        self, scope: Construct, id_: str, *, fleet: Fleet, backend: Backend, force_local: bool = False
    ) -> None:
        super().__init__(scope, id_)
        self.fleet = fleet
        self.stack_name = id_
        self.backend_kind = backend
        if use_s3(fleet, backend) and not force_local:
            s3 = S3Backend(
                self,
                bucket=fleet.state.bucket,
                key=state_key(fleet.project, id_),
                region=fleet.state.region,
                encrypt=True,
                # Without a key, `encrypt` asks S3 for SSE-S3 on every write, overriding the
                # bucket's default SSE-KMS. The alias resolves to the bootstrap stack's state key
                # (Terraform S3 backend docs: kms_key_id; S3: a key alias is resolved in the
                # caller's account, which is the bucket's).
                kms_key_id=state_kms_alias(fleet.state.bucket),
            )
            # S3-native locking (terraform >= 1.10); the 0.21 binding predates the property.
            s3.add_override("use_lockfile", True)
        else:
            LocalBackend(self, path=local_state_file(id_))
        tag_aws_resources(self, fleet_tags(fleet.project, id_, fleet.tags))

    def remote_state(self, stack: str) -> TerraformRemoteState:
        """Read another stack's outputs the same way that stack stores its state."""
        rid = f"remote_{stack.replace('-', '_')}"
        if use_s3(self.fleet, self.backend_kind):
            return DataTerraformRemoteStateS3(
                self,
                rid,
                bucket=self.fleet.state.bucket,
                key=state_key(self.fleet.project, stack),
                region=self.fleet.state.region,
            )
        # Relative to this stack's directory, so a copied cdktf.out tree keeps working.
        return DataTerraformRemoteStateLocal(self, rid, path=f"../{stack}/{local_state_file(stack)}")
