"""`make demo`: the whole system on one machine, no cloud account.

    python -m scripts.demo [--stay-up] [--timeout 2400]

1. check regions.yaml                     (python -m infra check)
2. synthesize every stack                 (python -m infra synth, local state backend)
3. deploy the AWS and global stacks       (terraform apply against a local moto_server);
   meanwhile the service image is built from service/Dockerfile and pushed to a local registry
4. boot a local region                    (two instances, each running the boot script rendered
                                           for its cloud: the image pulled with credentials, the
                                           weights from the object store, the agents; HAProxy)
5. chat through the load balancer         (the official openai SDK: one answer, one stream)
6. show the endpoint, health and metrics  (each gateway's /health/ready and /metrics)

Everything it starts (servers, moto, temporary directories) is cleaned up on exit, on
Ctrl-C and on SIGTERM; `--stay-up` keeps the region running until Ctrl-C. Exit status 0 on
success, 1 with one `demo: error: ...` line otherwise, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

import httpx
import openai

from contract.facts import PUBLIC_API_PATHS
from devkit.localcloud import FleetDeployment, HarnessError
from devkit.localregion import REPO, SERVED, LocalRegion
from devkit.proc import LocalError
from infra.config import load_fleet

STEPS = 6


class DemoError(RuntimeError):
    """One line for the operator."""


class DeadlineError(Exception):
    pass


@contextlib.contextmanager
def step(number: int, title: str) -> Iterator[None]:
    print(f"\n[{number}/{STEPS}] {title}", flush=True)
    started = time.monotonic()
    yield
    print(f"      done in {time.monotonic() - started:.1f} s", flush=True)


def indent(text: str, prefix: str = "      ") -> str:
    return "\n".join(prefix + line for line in text.rstrip().splitlines())


def run_cli(argv: list[str], what: str, timeout_s: float) -> str:
    """Run a repository CLI (`python -m ...`); its stdout, or DemoError with its last line."""
    try:
        proc = subprocess.run(
            [sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise DemoError(f"{what}: no result within {timeout_s:g} s") from exc
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}").splitlines()
        raise DemoError(f"{what}: {lines[-1]}")
    return proc.stdout


# --- the steps ------------------------------------------------------------------------------


def check_fleet() -> None:
    print(indent(run_cli(["-m", "infra", "check"], "python -m infra check", 120)))


def synthesize(out: Path) -> list[str]:
    stacks = run_cli(["-m", "infra", "stacks"], "python -m infra stacks", 120).split()
    output = run_cli(["-m", "infra", "synth", "--backend", "local", "--out", str(out)], "python -m infra synth", 900)
    print(indent(output))
    return stacks


def deploy(synth_root: Path, workdir: Path, stack: contextlib.ExitStack) -> FleetDeployment:
    """Apply bootstrap, every AWS region and global to moto; destroyed when `stack` closes.

    With GCP regions in the fleet, the full bootstrap also holds the GCP workload identity
    pool, and hashicorp/google cannot be installed offline: the bootstrap applied is the
    AWS-only projection's, synthesized here (the same as the test tiers' deployment)."""
    import yaml

    from devkit.localcloud import aws_only, deploy_fleet
    from infra.catalog import Cloud

    fleet = load_fleet()
    replace: dict[str, Path] = {}
    if fleet.regions_of(Cloud.GCP):
        projection = workdir / "aws-only.yaml"
        workdir.mkdir(parents=True, exist_ok=True)
        data = aws_only(fleet).model_dump(mode="json", by_alias=True)
        projection.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        out = workdir / "aws-only.out"
        argv = ["-m", "infra", "synth", "--file", str(projection), "--backend", "local", "--stack", "bootstrap"]
        run_cli([*argv, "--out", str(out)], "python -m infra synth (AWS-only bootstrap)", 900)
        replace["bootstrap"] = out / "stacks" / "bootstrap"
        print("      bootstrap: the AWS-only projection's (hashicorp/google cannot be installed offline)")
    try:
        deployment = stack.enter_context(deploy_fleet(fleet, synth_root, workdir, replace=replace))
    except HarnessError as exc:
        raise DemoError(f"offline deploy: {_terraform_error(exc)}") from exc
    print(f"      moto_server at {deployment.endpoint}; applied {', '.join(deployment.dirs)}")
    for name, outputs in deployment.outputs.items():
        shown = {key: value for key, value in outputs.items() if isinstance(value, str | int)}
        if shown:
            print(f"      {name}: " + ", ".join(f"{key}={value}" for key, value in sorted(shown.items())[:4]))
    return deployment


def boot(region: LocalRegion) -> None:
    """Boot every instance from the user data rendered for its cloud; say what each ran."""
    region.launch()
    assert region.cloud is not None
    print(f"      image {region.cloud.image} (built from service/Dockerfile, pulled with credentials)")
    for instance in region.instances:
        machine = instance.m
        boot_s = machine.boot_seconds or 0.0
        print(
            f"      {instance.name}: {instance.kind.value} user data of {instance.region.stack_name} "
            f"(infra.boot; {machine.user_data_path.stat().st_size} bytes), boot script {boot_s:.1f} s"
        )
    print(f"      waiting for {', '.join(i.name for i in region.instances)} to be ready and UP in HAProxy")
    started = time.monotonic()
    ready = {}
    deadline = started + region.options.engine_start_timeout_s
    for instance in region.instances:
        instance.wait_ready(max(deadline - time.monotonic(), 1.0))
        ready[instance.name] = (instance.m.boot_seconds or 0.0) + time.monotonic() - started
    region.wait_in_rotation()
    for name, seconds in ready.items():
        print(f"      {name}: boot to ready {seconds:.0f} s")


def _terraform_error(exc: HarnessError) -> str:
    """One line: the failing command, and terraform's own `Error:` line when it printed one."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = next((line for line in lines if line.startswith("Error:")), None)
    return f"{lines[0]}: {detail}" if detail and lines else (lines[0] if lines else type(exc).__name__)


def chat(region: LocalRegion) -> None:
    client = openai.OpenAI(base_url=region.url + "/v1", api_key=region.api_key, max_retries=2, timeout=120)
    question = "In one sentence: what does a load balancer do?"
    print(f"      > {question}")
    completion = client.chat.completions.create(
        model=SERVED, messages=[{"role": "user", "content": question}], max_tokens=32
    )
    answer = completion.choices[0].message.content or ""
    usage = completion.usage
    tokens = f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens" if usage else "no usage"
    print(f"      < {answer!r}")
    print(f"        (non-streaming; {tokens}; finish_reason={completion.choices[0].finish_reason})")
    print("      > the same question, streamed:")
    started = time.monotonic()
    first: float | None = None
    parts: list[str] = []
    for chunk in client.chat.completions.create(
        model=SERVED, messages=[{"role": "user", "content": question}], max_tokens=32, stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            first = first if first is not None else time.monotonic() - started
            parts.append(chunk.choices[0].delta.content)
    ttft = f"{first * 1000:.0f} ms" if first is not None else "-"
    print(f"      < {''.join(parts)!r}")
    print(f"        (streaming; {len(parts)} chunks; first token after {ttft})")
    print("        The tiny test model has random weights: the words are noise, the plumbing is real.")


def _metric(text: str, name: str, *, status_prefix: str = "") -> float:
    """Sum of the samples of `name` on the public API routes (not health checks, not /metrics)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            metric, _, label_text = head.partition("{")
            if metric != name or not any(f'route="{path}"' in label_text for path in PUBLIC_API_PATHS):
                continue
            if status_prefix and f'status="{status_prefix}' not in label_text:
                continue
            total += float(value)
    return total


def show(region: LocalRegion) -> None:
    print(f"      endpoint:   {region.url}/v1   (OPENAI_BASE_URL; api key {region.api_key})")
    print(f"      HAProxy:    stats at http://127.0.0.1:{region.lb.stats_port}/stats")
    stats = region.lb.stats()
    print("      instance  gateway                 haproxy  ready  engine   API requests  5xx  tokens out  ttft avg")
    for instance in region.instances:
        health = instance.health()
        try:
            text = instance.metrics()
        except httpx.HTTPError:
            text = ""
        count = _metric(text, "llm_gateway_request_duration_seconds_count")
        errors = _metric(text, "llm_gateway_request_duration_seconds_count", status_prefix="5")
        tokens = _metric(text, "llm_gateway_completion_tokens_total")
        ttft_n = _metric(text, "llm_gateway_time_to_first_token_seconds_count")
        ttft = _metric(text, "llm_gateway_time_to_first_token_seconds_sum") / ttft_n * 1000 if ttft_n else None
        server = stats.get(instance.name)
        print(
            f"      {instance.name:9} {instance.url:23} {server.status if server else '?':8} "
            f"{health.get('ready')!s:6} {health.get('engine')!s:8} {count:12.0f}  {errors:3.0f}  {tokens:10.0f}  "
            + (f"{ttft:.0f} ms" if ttft is not None else "-")
        )


# --- main -------------------------------------------------------------------------------------


def _raise_deadline(signum: int, frame: FrameType | None) -> None:
    raise DeadlineError


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    with contextlib.ExitStack() as cleanup:
        workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="llm-fleet-demo-")))
        with step(1, "check regions.yaml"):
            check_fleet()
        with step(2, "synthesize every stack"):
            synth_root = workdir / "cdktf.out"
            stacks = synthesize(synth_root)
            print(f"      stacks: {', '.join(stacks)}")
        region = LocalRegion(workdir / "region", load_fleet(), moto_endpoint="")
        cleanup.callback(region.stop)
        # The image takes a while on a fresh machine: build it while terraform deploys.
        with ThreadPoolExecutor(max_workers=1) as pool:
            prepared = pool.submit(region.prepare)
            with step(3, "deploy the AWS and global stacks to moto; build the service image meanwhile"):
                deployment = deploy(synth_root / "stacks", workdir / "deploy", cleanup)
                cloud = prepared.result()
                print(f"      service image: {cloud.image} ({cloud.build_seconds:.0f} s to build or find)")
        cleanup.callback(region.stop)  # stop the region (fast) before terraform destroy
        region.moto_endpoint = deployment.endpoint
        with step(4, f"boot the local region: {region.size} instances from their user data, behind HAProxy"):
            boot(region)
        with step(5, "chat through the load balancer with the official openai SDK"):
            chat(region)
        with step(6, "endpoint, health and metrics"):
            show(region)
        print(f"\ndemo: ok in {time.monotonic() - started:.0f} s")
        if args.stay_up:
            signal.alarm(0)
            print(f"staying up: {region.url}/v1 (api key {region.api_key}); Ctrl-C to stop and clean up", flush=True)
            while all(instance.running() for instance in region.instances):
                time.sleep(1)
            raise DemoError("an instance exited while staying up")
        print("cleaning up (servers, moto, temporary files)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--stay-up", action="store_true", help="keep the local region running until Ctrl-C")
    parser.add_argument("--timeout", type=int, default=2400, help="seconds for the whole demo (default 2400)")
    args = parser.parse_args(argv)
    if args.timeout < 60:
        parser.error("--timeout: at least 60 seconds")
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGALRM, _raise_deadline)
    signal.alarm(args.timeout)
    try:
        return run(args)
    except (DemoError, LocalError) as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    except HarnessError as exc:  # raised while cleaning up (terraform destroy)
        print(f"demo: error: {_terraform_error(exc)}", file=sys.stderr)
        return 1
    except openai.APIError as exc:
        print(f"demo: error: the local region answered {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except DeadlineError:
        print(f"demo: error: not done within --timeout {args.timeout} s (cleaned up)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("demo: interrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        signal.alarm(0)


if __name__ == "__main__":
    raise SystemExit(main())
