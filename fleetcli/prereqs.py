"""What must be there before terraform runs: credentials, the hosted zone, the state bucket.

Each missing piece is one line saying what to do. The AWS checks go through the default
credential chain (environment, `AWS_PROFILE` / the default profile, SSO, OIDC web identity in
CI, instance roles) and `AWS_ENDPOINT_URL` like every boto3 client, so a local cloud (moto)
answers them with its `test`/`test` credentials; nothing is skipped for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fleetcli.errors import CliError
from infra.catalog import Cloud
from infra.config import Fleet

NO_AWS_CREDENTIALS = (
    "no AWS credentials found (no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, no AWS_PROFILE or default profile): "
    "run `aws configure sso` then `aws sso login`, or export AWS_PROFILE; in CI assume a role with OIDC "
    "(aws-actions/configure-aws-credentials)"
)
NO_GCP_CREDENTIALS = (
    "no Google credentials found (Application Default Credentials): run `gcloud auth application-default login` "
    "or set GOOGLE_APPLICATION_CREDENTIALS; in CI use workload identity (google-github-actions/auth)"
)


@dataclass(frozen=True)
class AwsAccess:
    session: Any  # boto3.session.Session
    account: str
    arn: str


def _boto3() -> Any:
    try:
        import boto3  # type: ignore[import-untyped]  # boto3 ships no type information
    except ImportError:
        raise CliError("boto3 is not installed: pip install 'llm-fleet[ops]'") from None
    return boto3


def _client_error(exc: BaseException) -> tuple[str, str] | None:
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]  # no type information

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return str(err.get("Code", "error")), str(err.get("Message", ""))
    return None


def aws_access(region: str) -> AwsAccess:
    """The caller's AWS identity (STS GetCallerIdentity); CliError saying what to do otherwise."""
    boto3 = _boto3()
    from botocore.config import Config  # type: ignore[import-untyped]
    from botocore.exceptions import BotoCoreError

    try:
        session = boto3.session.Session()
        if session.get_credentials() is None:
            raise CliError(NO_AWS_CREDENTIALS)
        config = Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 2, "mode": "standard"})
        identity = session.client("sts", region_name=region, config=config).get_caller_identity()
    except BotoCoreError as exc:
        raise CliError(f"AWS credentials: {exc}") from None
    except Exception as exc:
        coded = _client_error(exc)
        if coded is None:
            raise
        raise CliError(f"AWS credentials rejected by STS: {coded[0]}: {coded[1]}".rstrip(": ")) from None
    return AwsAccess(session, str(identity["Account"]), str(identity["Arn"]))


def gcp_credentials_problem() -> str | None:
    try:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError
    except ImportError:
        return "google-auth is not installed: pip install 'llm-fleet[ops]'"
    try:
        google.auth.default()
    except DefaultCredentialsError:
        return NO_GCP_CREDENTIALS
    return None


def hosted_zone_problem(access: AwsAccess, zone: str) -> str | None:
    route53 = access.session.client("route53", region_name="us-east-1")
    try:
        found = route53.list_hosted_zones_by_name(DNSName=zone, MaxItems="10")["HostedZones"]
    except Exception as exc:
        coded = _client_error(exc)
        if coded is None or not coded[0].startswith("AccessDenied"):
            raise
        return None  # this identity may not list zones; terraform reports it if the stack needs to
    if any(z["Name"].rstrip(".") == zone and not z.get("Config", {}).get("PrivateZone") for z in found):
        return None
    return (
        f"Route 53 hosted zone '{zone}' (global.hosted_zone) not found in AWS account {access.account}: "
        f"create the public zone (aws route53 create-hosted-zone --name {zone} --caller-reference llm-fleet-1) "
        "and delegate the domain to its name servers, or fix global.hosted_zone in the fleet file"
    )


def state_bucket_problem(access: AwsAccess, bucket: str, region: str) -> str | None:
    s3 = access.session.client("s3", region_name=region)
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception as exc:
        coded = _client_error(exc)
        if coded is None:
            raise
        if coded[0] in ("404", "NoSuchBucket", "NotFound"):
            return (
                f"state bucket '{bucket}' (state.bucket) does not exist yet: deploy the bootstrap stack first "
                "(llm-fleet deploy bootstrap), or use --backend local for a trial run"
            )
        return (
            f"state bucket '{bucket}' (state.bucket) is not readable by {access.arn}: {coded[0]} "
            "(bucket names are global: another account may own it; pick another state.bucket)"
        )
    return None


def needs_aws(fleet: Fleet, stacks: Sequence[str], *, s3_state: bool) -> bool:
    return s3_state or any(not s.startswith("gcp-") for s in stacks)


def needs_gcp(fleet: Fleet, stacks: Sequence[str]) -> bool:
    gcp = bool(fleet.regions_of(Cloud.GCP))
    return any(s.startswith("gcp-") for s in stacks) or (gcp and "bootstrap" in stacks)


def needs_zone(stacks: Sequence[str]) -> bool:
    return any(not s.startswith("gcp-") for s in stacks)
