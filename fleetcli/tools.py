"""status, preflight, cost, smoke: the operator tools' library functions, drawn with Rich.

The data comes from `scripts.ops.<tool>` (`collect`, `fleet_cost`, `check_endpoint`, ...)
with the same clients those tools use (the default AWS credential chain, which honours
`AWS_PROFILE` and `AWS_ENDPOINT_URL`; Application Default Credentials for GCP). Only the
rendering is this package's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from fleetcli import console, prereqs
from fleetcli.errors import EXIT_FAILURE, EXIT_OK, CliError, UsageError
from fleetcli.progress import RichSteps
from fleetcli.views import milliseconds, money, percent, print_notes, short, simple_table
from infra.catalog import Cloud
from infra.config import Fleet

API_KEY_ENVS = ("LLM_FLEET_API_KEY", "OPENAI_API_KEY")


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, default=str))


def _steps(total: int, enabled: bool) -> RichSteps:
    return RichSteps(total=total, enabled=enabled, console=console.err())


def _aws_first(fleet: Fleet) -> None:
    """One line when there are no AWS credentials, before any tool call fails on it."""
    prereqs.aws_access(fleet.state.region)


def status(fleet: Fleet, *, as_json: bool) -> int:
    from scripts.ops import fleet_status
    from scripts.ops._common import boto3_factory

    _aws_first(fleet)
    progress = _steps(len(fleet.regions) + 1, not as_json)
    statuses = fleet_status.collect(fleet, aws=boto3_factory(), gcp=None, progress=progress)
    if as_json:
        _print_json([asdict(s) | {"ok": s.ok} for s in statuses])
    else:
        rows = []
        for s, region in zip(statuses, fleet.regions, strict=True):
            groups = s.groups or [fleet_status.Group("(none found)", 0, 0, 0, 0, 0, 0)]
            for i, g in enumerate(groups):
                first = i == 0
                rows.append(
                    [
                        s.stack if first else "",
                        g.name,
                        str(g.desired),
                        f"{g.min_size}/{g.max_size}" if region.cloud == Cloud.AWS else "-",
                        str(g.in_service),
                        f"{g.on_demand}/{g.spot}",
                        "-" if g.on_demand_base is None else str(g.on_demand_base),
                        ",".join(g.instance_types) or "-",
                        f"{s.healthy_targets}/{s.targets}" if first else "",
                        f"{region.region}.{fleet.global_.domain}: {s.global_health}" if first else "",
                        ("ok" if s.ok else "DEGRADED") if first else "",
                    ]
                )
        header = ["stack", "group", "desired", "min/max", "in service", "od/spot", "od base", "types"]
        header += ["healthy", "global health check", "state"]
        console.out().print(simple_table(header, rows, title=f"fleet status: https://{fleet.global_.domain}"))
    return EXIT_OK if all(s.ok for s in statuses) else EXIT_FAILURE


def preflight(fleet: Fleet, *, as_json: bool) -> int:
    from scripts.ops import preflight as tool
    from scripts.ops._common import boto3_factory

    if fleet.regions_of(Cloud.AWS):
        _aws_first(fleet)
    checks = tool.collect(fleet, aws=boto3_factory(), gcp=None, progress=_steps(len(fleet.regions), not as_json))
    if as_json:
        _print_json([asdict(c) | {"fits": c.fits} for c in checks])
    else:
        rows = [
            [
                c.stack,
                c.instance_type,
                f"{len(c.zones)} ({', '.join(z.rsplit('-', 1)[-1] for z in c.zones)})" if c.zones else "0",
                str(c.on_demand or "-"),
                str(c.spot or "-"),
                c.spot_price,
                c.verdict,
            ]
            for c in checks
        ]
        header = ["stack", "type", "zones offering", "on-demand need/limit", "spot need/limit", "spot price", "verdict"]
        console.out().print(simple_table(header, rows, title="preflight: quotas, zones, spot prices"))
        print_notes(console.out(), [f"{c.stack}: {n}" for c in checks for n in c.notes])
    return EXIT_FAILURE if any(c.fits is False for c in checks) else EXIT_OK


def cost(fleet: Fleet, *, offline: bool, as_json: bool) -> int:
    from scripts.ops import cost as tool
    from scripts.ops._common import boto3_factory
    from scripts.ops.pricing import HOURS_PER_MONTH, AwsPricingApi, PriceSource, PriceTable

    table_prices = PriceTable()
    prices: PriceSource = table_prices
    api = None
    if not offline:
        api = AwsPricingApi(boto3_factory(), table_prices)
        prices = api
    result = tool.fleet_cost(fleet, prices, _steps(len(fleet.regions), not as_json))
    lo, hi = result.total("at_min"), result.total("at_max")
    if as_json:
        _print_json(
            {
                "regions": [asdict(r) for r in result.regions],
                "total_at_min": asdict(lo),
                "total_at_max": asdict(hi),
                "saving_at_min": lo.saving,
                "saving_at_max": hi.saving,
            }
        )
    else:
        rows = [
            [
                r.stack,
                r.instance_type,
                f"{r.rates.on_demand:.3f}",
                f"{r.rates.spot:.3f}",
                f"{r.rates.reserved_1y:.3f}",
                str(r.at_min.mix),
                money(r.at_min.monthly),
                money(r.at_min.monthly_all_on_demand),
                str(r.at_max.mix),
                money(r.at_max.monthly),
                money(r.at_max.monthly_all_on_demand),
            ]
            for r in result.regions
        ]
        rows.append(["total", "", "", "", "", str(lo.mix), money(lo.monthly), money(lo.monthly_all_on_demand)])
        rows[-1] += [str(hi.mix), money(hi.monthly), money(hi.monthly_all_on_demand)]
        header = ["stack", "instance", "$/h od", "$/h spot", "$/h 1y", "min r/od/s", "min $/mo", "all-od $/mo"]
        header += ["max r/od/s", "max $/mo", "all-od $/mo"]
        out = console.out()
        out.print(simple_table(header, rows, title="monthly cost at min and max replicas"))
        sources = sorted({r.rates.source for r in result.regions})
        out.print(
            f"\nmonthly = {HOURS_PER_MONTH:g} h; r/od/s = reserved / on-demand / spot replicas; "
            f"prices: {', '.join(sources)}"
        )
        out.print(
            f"saving against all on-demand: {money(lo.saving)}/month at min replicas "
            f"({percent(lo.saving, lo.monthly_all_on_demand)}), {money(hi.saving)}/month at max replicas "
            f"({percent(hi.saving, hi.monthly_all_on_demand)})"
        )
    if offline:
        console.err().print(f"offline: prices from {table_prices.path.name} ({table_prices.label})")
    elif api is not None:
        for reason in api.fallbacks:
            console.err().print(f"pricing API unavailable for {reason}; used {table_prices.label}")
    return EXIT_OK


# --- smoke and chat share how an endpoint, its key and its model are found ------------------


def api_key(key: str | None, key_file: Path | None) -> str:
    """--api-key, else --api-key-file (first non-comment line), else $LLM_FLEET_API_KEY / $OPENAI_API_KEY."""
    if key:
        return key.strip()
    if key_file is not None:
        from scripts.ops.smoke import read_api_key

        return read_api_key(str(key_file))
    for env in API_KEY_ENVS:
        value = os.environ.get(env, "").strip()
        if value:
            return value
    raise UsageError(f"no API key: pass --api-key or --api-key-file, or set {' or '.join(API_KEY_ENVS)}")


def smoke(
    fleet: Fleet | None,
    *,
    endpoints: Sequence[str],
    key: str,
    model: str | None,
    ca_bundle: Path | None,
    timeout_s: float,
    max_tokens: int,
    min_cert_days: int,
    as_json: bool,
) -> int:
    from scripts.ops import smoke as tool

    if max_tokens < 1:
        raise UsageError("--max-tokens: must be >= 1")
    if timeout_s <= 0:
        raise UsageError("--timeout: must be > 0 seconds")
    if endpoints:
        # an OpenAI base URL (…/v1) is accepted too: the check adds /v1 itself
        targets = [tool.parse_endpoint(url.rstrip("/").removesuffix("/v1"), allow_http=True) for url in endpoints]
    elif fleet is not None:
        targets = tool.fleet_endpoints(fleet)
    else:
        raise UsageError("no fleet file and no --endpoint: pass --endpoint URL or --file FLEET")
    if model is None:
        if fleet is None:
            raise UsageError("--model: required with --endpoint when there is no fleet file")
        model = fleet.model.served_name
    context = tool.tls_context(str(ca_bundle) if ca_bundle else None)
    progress = _steps(len(targets), not as_json)
    results = []
    for target in targets:
        with progress.step(f"{target.name}: TLS, models, answer"):
            results.append(
                tool.check_endpoint(
                    target,
                    api_key=key,
                    model=model,
                    context=context,
                    factory=tool.openai_client,
                    timeout_s=timeout_s,
                    max_tokens=max_tokens,
                    min_cert_days=min_cert_days,
                )
            )
    if as_json:
        _print_json([asdict(r) | {"ok": r.ok} for r in results])
    else:
        rows = [
            [
                r.endpoint,
                r.url,
                r.tls_version or ("none (http)" if r.url.startswith("http://") else "-"),
                "-" if r.cert_days_left is None else str(r.cert_days_left),
                short(", ".join(r.models)) if r.models else "-",
                milliseconds(r.ttft_s),
                milliseconds(r.total_s),
                "-" if r.completion_tokens is None else str(r.completion_tokens),
                short(r.answer),
                "ok" if r.ok else f"FAIL: {r.error}",
            ]
            for r in results
        ]
        header = ["endpoint", "url", "tls", "cert days", "models", "ttft ms", "total ms", "tokens", "answer", "result"]
        console.out().print(simple_table(header, rows, title=f"smoke: model {model}"))
    failed = [r for r in results if not r.ok]
    if failed:
        raise CliError(
            f"smoke: {len(failed)} of {len(results)} endpoint(s) failed; first: {failed[0].endpoint}: {failed[0].error}"
        )
    return EXIT_OK
