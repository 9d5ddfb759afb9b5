"""Cloud preemption watchers: AWS spot interruption (IMDSv2) and GCP preemption.

Each watcher calls `notify(reason)` once when its cloud announces that the instance goes
away. An AWS rebalance recommendation is not such an announcement (the instance may run for
hours, and capacity rebalancing starts its replacement first): it is logged and counted
(`on_rebalance`, once), readiness stays as it is, and the watcher keeps polling for the
interruption notice. Transient metadata errors are logged and retried; they never stop the
watcher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx

log = logging.getLogger("service.preemption")

_AWS_TOKEN_TTL_S = 21600
_AWS_INTERRUPTION = "/latest/meta-data/spot/instance-action"
_AWS_REBALANCE = "/latest/meta-data/events/recommendations/rebalance"
_GCP_PREEMPTED = "/computeMetadata/v1/instance/preempted"


async def watch_aws(
    base_url: str, interval_s: float, notify: Callable[[str], None], on_rebalance: Callable[[], None] = lambda: None
) -> None:
    """Poll IMDSv2 (a session token, then the notice paths; 404 means no notice)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0, trust_env=False) as client:
        token: str | None = None
        rebalance_seen = False
        while True:
            try:
                if token is None:
                    response = await client.put(
                        "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": str(_AWS_TOKEN_TTL_S)}
                    )
                    response.raise_for_status()
                    token = response.text
                headers = {"X-aws-ec2-metadata-token": token}
                response = await client.get(_AWS_INTERRUPTION, headers=headers)
                if response.status_code == 200:
                    reason = "aws spot interruption notice"
                    log.warning("preemption notice", extra={"reason": reason, "notice": response.text[:200]})
                    notify(reason)
                    return
                if response.status_code == 401:
                    token = None  # expired: fetch a new one next turn
                elif not rebalance_seen:
                    rebalance = await client.get(_AWS_REBALANCE, headers=headers)
                    if rebalance.status_code == 200:
                        rebalance_seen = True
                        log.warning(
                            "rebalance recommendation: not draining (no interruption notice)",
                            extra={"notice": rebalance.text[:200]},
                        )
                        on_rebalance()
            except httpx.HTTPError as exc:
                log.warning("IMDS poll failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            await asyncio.sleep(interval_s)


async def watch_gcp(base_url: str, notify: Callable[[str], None], *, retry_s: float = 1.0) -> None:
    """Hang on `preempted?wait_for_change=true`; TRUE means the instance is being preempted."""
    headers = {"Metadata-Flavor": "Google"}
    etag = "0"
    timeout = httpx.Timeout(connect=2.0, read=None, write=2.0, pool=2.0)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, trust_env=False) as client:
        while True:
            try:
                response = await client.get(
                    _GCP_PREEMPTED, params={"wait_for_change": "true", "last_etag": etag}, headers=headers
                )
                if response.status_code == 200:
                    etag = response.headers.get("etag", etag)
                    if response.text.strip().upper() == "TRUE":
                        log.warning("preemption notice", extra={"reason": "gcp preemption"})
                        notify("gcp preemption")
                        return
                    continue
                log.warning("GCP metadata answered", extra={"status": response.status_code})
            except httpx.HTTPError as exc:
                log.warning("GCP metadata watch failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            await asyncio.sleep(retry_s)
