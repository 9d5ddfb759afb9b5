"""`python -m scripts.ops.smoke`: the global and every regional endpoint, end to end.

For each endpoint (default: `https://<global.domain>` and `https://<region>.<global.domain>`
for every region of the fleet file; or the `--endpoint` URLs given):

1. TLS: a handshake that verifies the certificate chain and that the certificate is valid
   for the endpoint's name, TLS >= 1.2; reports the protocol version and the days until the
   certificate expires (fails below `--min-cert-days`).
2. Models: `GET /v1/models` through the official OpenAI SDK; the served model must be listed.
3. Answer: a short streamed chat completion through the SDK; time to first token and total
   latency; at least one generated token.

`llm-fleet smoke` also takes plain http:// origins (a local load balancer such as the local
region's HAProxy): `parse_endpoint(url, allow_http=True)`; step 1 is skipped for them.

A table (or `--json`) on stdout, progress on stderr. Exit 0 when every endpoint passes, 1
when any fails, 2 for a bad flag or fleet file. The SDK client is built by an injected
factory (tests aim it at a local gateway behind a test CA).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from infra.cliutil import EXIT_OK, EXIT_PROBLEM, ArgParser, add_fleet_argument, table
from infra.config import Fleet
from infra.naming import endpoint_name
from scripts.ops._common import OpsError, Progress, emit, load_fleet_or_raise, run_main

if TYPE_CHECKING:
    import openai

PROG = "python -m scripts.ops.smoke"
PROMPT = "Reply with one word: are you ready?"
DEFAULT_MAX_TOKENS = 16
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MIN_CERT_DAYS = 7
ACCEPTED_TLS = ("TLSv1.2", "TLSv1.3")
API_KEY_ENV = "OPENAI_API_KEY"

# (base_url ending in /v1, api_key, TLS context, timeout seconds) -> an OpenAI client.
ClientFactory = Callable[[str, str, ssl.SSLContext, float], "openai.OpenAI"]


def openai_client(base_url: str, api_key: str, context: ssl.SSLContext, timeout_s: float) -> openai.OpenAI:
    """The official SDK, no retries (a smoke test reports the first failure), our TLS context."""
    import openai

    http_client = openai.DefaultHttpxClient(verify=context, timeout=timeout_s)
    return openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout_s, http_client=http_client)


@dataclass(frozen=True)
class Endpoint:
    name: str  # "global", a region, or the host of an --endpoint URL
    url: str  # https://host[:port], no path

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (80 if self.plain_http else 443)

    @property
    def plain_http(self) -> bool:
        return urlsplit(self.url).scheme == "http"


@dataclass(frozen=True)
class TlsInfo:
    version: str
    cert_days_left: int


@dataclass
class SmokeResult:
    endpoint: str
    url: str
    tls_version: str | None = None
    cert_days_left: int | None = None
    models: list[str] = field(default_factory=list)
    answer: str | None = None
    completion_tokens: int | None = None
    ttft_s: float | None = None
    total_s: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def fleet_endpoints(fleet: Fleet) -> list[Endpoint]:
    """The global name and one name per region (`<region>.<global.domain>`), all HTTPS."""
    domain = fleet.global_.domain
    return [Endpoint("global", f"https://{domain}")] + [
        Endpoint(region.region, f"https://{endpoint_name(fleet, region)}") for region in fleet.regions
    ]


def parse_endpoint(url: str, *, allow_http: bool = False) -> Endpoint:
    """An `--endpoint` value: an https:// URL with a host and no path beyond `/` (or http://
    when `allow_http`: a local load balancer, where there is no TLS to check)."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not (allow_http and parts.scheme == "http"):
        schemes = "an http:// or https://" if allow_http else "an https://"
        raise OpsError(f"--endpoint {url!r}: must be {schemes} URL (smoke checks TLS)")
    if not parts.hostname:
        raise OpsError(f"--endpoint {url!r}: no host name")
    try:
        port = parts.port
    except ValueError:
        raise OpsError(f"--endpoint {url!r}: the port is not a number in 1-65535") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise OpsError(f"--endpoint {url!r}: give the origin only (https://host[:port]); /v1 is added")
    netloc = parts.hostname if port is None else f"{parts.hostname}:{port}"
    if ":" in parts.hostname:  # IPv6 literal
        netloc = f"[{parts.hostname}]" + ("" if port is None else f":{port}")
    return Endpoint(parts.hostname, f"{parts.scheme}://{netloc}")


def read_api_key(path: str | None) -> str:
    """The first key in the file (one per line, # comments), else $OPENAI_API_KEY."""
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise OpsError(f"--api-key-file {path}: cannot read it ({exc.strerror})") from None
        for line in text.splitlines():
            key = line.strip()
            if key and not key.startswith("#"):
                return key
        raise OpsError(f"--api-key-file {path}: no key in it (one key per line; # starts a comment)")
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise OpsError(f"--api-key-file: not given and {API_KEY_ENV} is not set")
    return key


def tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Certificate and host name verification on, TLS >= 1.2; the system CAs or a bundle."""
    if ca_bundle is not None and not Path(ca_bundle).is_file():
        raise OpsError(f"--ca-bundle {ca_bundle}: no such file")
    try:
        context = ssl.create_default_context(cafile=ca_bundle)
    except ssl.SSLError as exc:
        raise OpsError(f"--ca-bundle {ca_bundle}: not a PEM certificate bundle ({exc.reason})") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def probe_tls(endpoint: Endpoint, context: ssl.SSLContext, timeout_s: float, *, now: dt.datetime) -> TlsInfo:
    """One verified handshake: the protocol version and the days the certificate has left."""
    with (
        socket.create_connection((endpoint.host, endpoint.port), timeout=timeout_s) as raw,
        context.wrap_socket(raw, server_hostname=endpoint.host) as tls,
    ):
        version = tls.version() or "unknown"
        cert: dict[str, Any] = tls.getpeercert() or {}
    not_after = cert.get("notAfter")
    if not isinstance(not_after, str):
        raise ssl.SSLError(f"the certificate of {endpoint.host} has no expiry date")
    expires = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), tz=dt.UTC)
    return TlsInfo(version, (expires - now).days)


def _sdk_error(exc: BaseException, timeout_s: float) -> str | None:
    """One line for the SDK's errors; None for anything else (a bug: let it raise)."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return f"timed out after {timeout_s:g}s"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return f"connection failed: {str(cause).splitlines()[0] if str(cause) else type(cause).__name__}"
    if isinstance(exc, openai.APIStatusError):
        message = exc.message.splitlines()[0] if exc.message else ""
        return f"HTTP {exc.status_code}: {message}"
    if isinstance(exc, openai.APIError):
        return f"API error: {exc.message}"
    return None


def _check_tls(
    result: SmokeResult,
    endpoint: Endpoint,
    *,
    context: ssl.SSLContext,
    timeout_s: float,
    min_cert_days: int,
    now: dt.datetime | None,
) -> None:
    """Step 1: the verified handshake; sets the result's TLS fields, or its error."""
    try:
        tls = probe_tls(endpoint, context, timeout_s, now=now or dt.datetime.now(dt.UTC))
    except ssl.SSLCertVerificationError as exc:
        result.error = f"TLS: certificate verify failed: {exc.verify_message}"
        return
    except ssl.SSLError as exc:
        result.error = f"TLS: {exc.reason or exc}"
        return
    except OSError as exc:
        result.error = f"connection failed: {exc.strerror or exc or type(exc).__name__}"
        return
    result.tls_version, result.cert_days_left = tls.version, tls.cert_days_left
    if tls.version not in ACCEPTED_TLS:
        result.error = f"TLS: negotiated {tls.version}, need one of {', '.join(ACCEPTED_TLS)}"
    elif tls.cert_days_left < min_cert_days:
        result.error = f"TLS: certificate expires in {tls.cert_days_left} days (< {min_cert_days})"


def check_endpoint(
    endpoint: Endpoint,
    *,
    api_key: str,
    model: str,
    context: ssl.SSLContext,
    factory: ClientFactory,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    min_cert_days: int = DEFAULT_MIN_CERT_DAYS,
    now: dt.datetime | None = None,
) -> SmokeResult:
    result = SmokeResult(endpoint.name, endpoint.url)
    if not endpoint.plain_http:
        _check_tls(result, endpoint, context=context, timeout_s=timeout_s, min_cert_days=min_cert_days, now=now)
        if result.error is not None:
            return result
    client = factory(endpoint.url + "/v1", api_key, context, timeout_s)
    try:
        result.models = sorted(m.id for m in client.models.list())
        if model not in result.models:
            served = ", ".join(result.models) or "none"
            result.error = f"model {model!r} not served (serves: {served})"
            return result
        started = time.perf_counter()
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=max_tokens,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        parts: list[str] = []
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                if result.ttft_s is None:
                    result.ttft_s = time.perf_counter() - started
                parts.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                result.completion_tokens = chunk.usage.completion_tokens
        result.total_s = time.perf_counter() - started
        result.answer = "".join(parts)
        if not parts:
            result.error = "empty answer: the stream carried no generated text"
    except Exception as exc:
        message = _sdk_error(exc, timeout_s)
        if message is None:
            raise
        result.error = message
    finally:
        client.close()
    return result


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _short(text: str | None, width: int = 24) -> str:
    if text is None:
        return "-"
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def render(results: Sequence[SmokeResult]) -> str:
    rows = [
        [
            r.endpoint,
            r.url,
            r.tls_version or "-",
            "-" if r.cert_days_left is None else f"{r.cert_days_left}",
            _short(", ".join(r.models)) if r.models else "-",
            _seconds(r.ttft_s),
            _seconds(r.total_s),
            "-" if r.completion_tokens is None else f"{r.completion_tokens}",
            _short(r.answer),
            "ok" if r.ok else f"FAIL: {r.error}",
        ]
        for r in results
    ]
    header = ["endpoint", "url", "tls", "cert days", "models", "ttft ms", "total ms", "tokens", "answer", "result"]
    return table(header, rows)


def main(
    argv: Sequence[str] | None = None,
    *,
    client_factory: ClientFactory | None = None,
    out: TextIO | None = None,
) -> int:
    parser = ArgParser(prog=PROG, description="TLS, models and a short answer from every endpoint of the fleet")
    add_fleet_argument(parser)
    parser.add_argument(
        "--endpoint",
        action="append",
        metavar="URL",
        help="check this https:// origin instead of the fleet's names (repeatable)",
    )
    parser.add_argument("--api-key-file", help=f"file with the API key (first non-comment line); else ${API_KEY_ENV}")
    parser.add_argument("--ca-bundle", help="PEM CA bundle to verify the certificates with (default: system CAs)")
    parser.add_argument("--model", help="served model name to ask (default: model.served_name of the fleet file)")
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="answer length (default: 16)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per request (default: 60)")
    parser.add_argument(
        "--min-cert-days",
        type=int,
        default=DEFAULT_MIN_CERT_DAYS,
        help="fail when a certificate expires sooner (default: 7)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    stream = out or sys.stdout

    def body() -> int:
        if args.max_tokens < 1:
            raise OpsError("--max-tokens: must be >= 1")
        if args.timeout <= 0:
            raise OpsError("--timeout: must be > 0 seconds")
        fleet = load_fleet_or_raise(args.file)
        endpoints = [parse_endpoint(u) for u in args.endpoint] if args.endpoint else fleet_endpoints(fleet)
        api_key = read_api_key(args.api_key_file)
        context = tls_context(args.ca_bundle)
        model = args.model or fleet.model.served_name
        progress = Progress(total=len(endpoints), enabled=not args.json)
        results = []
        for endpoint in endpoints:
            with progress.step(f"{endpoint.name}: TLS, models, answer"):
                results.append(
                    check_endpoint(
                        endpoint,
                        api_key=api_key,
                        model=model,
                        context=context,
                        factory=client_factory or openai_client,
                        timeout_s=args.timeout,
                        max_tokens=args.max_tokens,
                        min_cert_days=args.min_cert_days,
                    )
                )
        emit(
            results, as_json=args.json, verdict="ok", judge=lambda r: r.ok, text=lambda: render(results), stream=stream
        )
        return EXIT_OK if all(r.ok for r in results) else EXIT_PROBLEM

    return run_main("smoke", body)


if __name__ == "__main__":
    sys.exit(main())
