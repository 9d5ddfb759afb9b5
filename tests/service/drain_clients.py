"""The drain tests' load: concurrent openai-SDK clients in a process of their own.

    python -m tests.service.drain_clients URL --clients 16 --streaming 4 --seconds 12 --out FILE

Running them apart from the test process means the test's own health polls and late requests
never wait for the clients' stream parsing (one GIL), and the clients never wait for the test.

Each request lasts about `--seconds` whatever the machine's speed: two calibration rounds (short
and long) measure the engine's per-stream pace at this concurrency from their difference, so the
fixed costs of a request (prefill, first token, SDK) do not make the pace look slower than it
is (one round underestimated it: loads meant for 12 s ended after 5 to 9), then `max_tokens` is sized from it and
`ignore_eos` (with `min_tokens`) keeps every request generating to the end. The outcome of every
request (tokens received, or the error) is written to `--out` as JSON; `--out` + ".started" appears when
the calibration is over and the real load begins.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import openai

from tests.service.helpers import API_KEY, SERVED

CALIBRATION_TOKENS = (16, 80)  # the short and the long round


async def _one(client: openai.AsyncOpenAI, index: int, *, streaming: bool, tokens: int) -> int:
    """One generation of exactly `tokens` tokens; returns the tokens received."""
    extra = {"ignore_eos": True, "min_tokens": tokens}
    if streaming:
        stream = await client.chat.completions.create(
            model=SERVED,
            messages=[{"role": "user", "content": f"story {index}"}],
            max_tokens=tokens,
            stream=True,
            stream_options={"include_usage": True},
            extra_body=extra,
        )
        usage = None
        async for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
        if usage is None:
            raise AssertionError("stream ended without its usage chunk (cut short)")
        return usage.completion_tokens
    completion = await client.completions.create(
        model=SERVED, prompt=f"story {index}", max_tokens=tokens, extra_body=extra
    )
    assert completion.usage is not None
    return completion.usage.completion_tokens


async def run(
    url: str, *, clients: int, streaming: int, seconds: float, cap: int, started_marker: Path
) -> dict[str, object]:
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0, timeout=300) as client:
        # The SDK builds its models on first use: pay that before measuring anything.
        await asyncio.gather(_one(client, 0, streaming=True, tokens=1), _one(client, 1, streaming=False, tokens=1))
        # Calibrate: the per-stream pace of this engine, on this machine, at this concurrency.
        durations = []
        for count in CALIBRATION_TOKENS:
            started = time.perf_counter()
            await asyncio.gather(*(_one(client, i, streaming=i < streaming, tokens=count) for i in range(clients)))
            durations.append(time.perf_counter() - started)
        short, long = CALIBRATION_TOKENS
        whole = long / durations[1]  # a lower bound: it includes the fixed costs
        marginal = (long - short) / (durations[1] - durations[0]) if durations[1] > durations[0] else whole
        pace = min(max(marginal, whole), 4 * whole)  # a noisy difference must not run away
        tokens = max(long, min(cap, round(pace * seconds)))
        requests = [_one(client, i, streaming=i < streaming, tokens=tokens) for i in range(clients)]
        # The calibration requests are all over: from here on, what the gateway has in flight is the load.
        started_marker.write_text(str(tokens))
        outcomes = await asyncio.gather(*requests, return_exceptions=True)
    return {
        "tokens": tokens,
        "pace_tokens_per_s": round(pace, 2),
        "outcomes": [
            outcome if isinstance(outcome, int) else f"{type(outcome).__name__}: {outcome}" for outcome in outcomes
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--streaming", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--cap", type=int, required=True, help="the gateway's max_tokens cap")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = asyncio.run(
        run(
            args.url,
            clients=args.clients,
            streaming=args.streaming,
            seconds=args.seconds,
            cap=args.cap,
            started_marker=args.out.with_name(args.out.name + ".started"),
        )
    )
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
