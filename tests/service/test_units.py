"""Gateway parts without an engine: settings and CLI, auth, drain, watchers, supervision."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devkit.cloudmeta import cloud_stand_in as metadata_server
from service.api.errors import ApiError, error_envelope
from service.config.cli import parse_settings
from service.config.settings import ServiceSettings
from service.engine.health import EnginePhase
from service.engine.process import EngineProcess, engine_argv
from service.engine.supervisor import EngineSupervisor
from service.lifecycle.drain import DrainBudget, DrainController, DrainPhase
from service.lifecycle.preemption import watch_aws, watch_gcp
from service.pipeline.auth import ApiKeyAuth, bearer_token
from service.upstream.client import HttpEngineClient
from tests.service.helpers import REPO


def settings(**overrides: object) -> ServiceSettings:
    base: dict[str, object] = {"model": "m", "served_model_name": "s", "api_keys": "k"}
    return ServiceSettings(**{**base, **overrides})


class TestSettings:
    def test_flags_over_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LLM_SERVICE_PORT", "9000")
        monkeypatch.setenv("LLM_SERVICE_MAX_TOKENS_CAP", "64")
        parsed = parse_settings(["--model", "m", "--served-model-name", "s", "--port", "8123", "--watch-aws"])
        assert parsed.port == 8123
        assert parsed.max_tokens_cap == 64
        assert parsed.watch_aws is True

    def test_env_lists(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LLM_SERVICE_ENGINE_ARGS", "--enforce-eager,--max-num-seqs,8")
        assert settings().engine_args == ["--enforce-eager", "--max-num-seqs", "8"]

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["--served-model-name", "s"], "model: required unless engine_url is set"),
            (["--model", "m", "--served-model-name", "s", "--port", "eighty"], "--port (LLM_SERVICE_PORT):"),
            (["--model", "m", "--served-model-name", "s", "--engine-url", "ftp://x"], "--engine-url"),
            (["--model", "m", "--served-model-name", "s", "--max-tokens-cap", "0"], "--max-tokens-cap"),
        ],
    )
    def test_bad_flags_are_one_line(self, argv: list[str], message: str) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "service", *argv], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 2
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1

    def test_no_keys_refuses_to_start(self, tmp_path: Path) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "service", "--model", "m", "--served-model-name", "s", "--port", "1"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"PATH": "/usr/bin:/bin"},
        )
        assert result.returncode == 2
        assert result.stderr.strip() == (
            "error: --api-keys-file (LLM_SERVICE_API_KEYS_FILE): "
            "no API keys configured (--api-keys-file, LLM_SERVICE_API_KEYS or --auth-disabled)"
        )

    def test_key_file(self, tmp_path: Path) -> None:
        keys = tmp_path / "keys"
        keys.write_text("# comment\n  alpha \n\nbeta\n")
        assert settings(api_keys="", api_keys_file=keys).load_api_keys() == (b"alpha", b"beta")
        with pytest.raises(ValueError, match="api_keys_file: cannot read"):
            settings(api_keys_file=tmp_path / "missing").load_api_keys()

    def test_key_file_format(self, tmp_path: Path) -> None:
        """A byte-order mark is not part of the first key; `#` starts a comment anywhere."""
        keys = tmp_path / "keys"
        keys.write_bytes("\ufeffsk-one  # team a\n\t# sk-retired\nsk-two#bots\r\n \r\n".encode())
        assert settings(api_keys="", api_keys_file=keys).load_api_keys() == (b"sk-one", b"sk-two")

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("sk-one\nsk-clé\n".encode(), r"keys, line 2: the key holds a character that is not allowed"),
            (b"sk-one\nsk two\n", r"keys, line 2: the key holds a character that is not allowed"),
            (("x" * 257).encode(), r"keys, line 1: the key is 257 characters long; the maximum is 256"),
            (b"\xff\xfe", r"is not UTF-8 text"),
        ],
        ids=["non-ascii", "space", "too-long", "not-utf8"],
    )
    def test_a_bad_key_file_names_the_line(self, tmp_path: Path, content: bytes, message: str) -> None:
        keys = tmp_path / "keys"
        keys.write_bytes(content)
        with pytest.raises(ValueError, match=r"^api_keys_file: .*" + message) as err:
            settings(api_keys="", api_keys_file=keys).load_api_keys()
        assert "clé" not in str(err.value)  # never the key itself
        with pytest.raises(ValueError, match=r"^api_keys: key 2 holds a character that is not allowed"):
            settings(api_keys="sk-a,sk-ü").load_api_keys()

    def test_a_bad_key_file_stops_the_service_in_one_line(self, tmp_path: Path) -> None:
        keys = tmp_path / "keys"
        keys.write_text("sk-fine\nsk-ünïcode\n", encoding="utf-8")
        argv = ["--model", "m", "--served-model-name", "s", "--api-keys-file", str(keys)]
        result = subprocess.run(
            [sys.executable, "-m", "service", *argv], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 2
        assert result.stderr.startswith(
            f"error: --api-keys-file (LLM_SERVICE_API_KEYS_FILE): {keys}, line 2: the key holds a character"
        )
        assert result.stderr.count("\n") == 1


def test_engine_argv_cpu_and_gpu() -> None:
    cpu = engine_argv(settings(max_model_len=2048), 9001, gpu=False)
    assert cpu[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert cpu[cpu.index("--port") + 1] == "9001"
    assert cpu[cpu.index("--host") + 1] == "127.0.0.1"
    assert "--gpu-memory-utilization" not in cpu
    assert "--quantization" not in cpu
    gpu = engine_argv(settings(quantization="compressed-tensors", engine_args="--enforce-eager"), 9001, gpu=True)
    assert gpu[gpu.index("--gpu-memory-utilization") + 1] == "0.9"
    assert gpu[gpu.index("--quantization") + 1] == "compressed-tensors"
    assert gpu[-1] == "--enforce-eager"


class TestAuth:
    def test_keys(self) -> None:
        auth = ApiKeyAuth((b"one", b"two"))
        assert auth.check("Bearer two") == "two"
        assert ApiKeyAuth((), disabled=True).check("Bearer anything") == "anonymous"
        for header, code in [
            (None, "missing_api_key"),
            ("Bearer three", "invalid_api_key"),
            ("Basic two", "invalid_api_key"),
        ]:
            with pytest.raises(ApiError) as caught:
                auth.check(header)
            assert caught.value.status == 401
            assert caught.value.code == code

    def test_one_bearer_parser(self) -> None:
        """API keys and the metrics token are read by the same parser: the scheme in any case."""
        for header in ("Bearer tok", "bearer tok", "BEARER  tok "):
            assert bearer_token(header) == "tok"
        for header in (None, "", "tok", "Basic tok", "Bearer", "Bearer   "):
            assert bearer_token(header) is None
        assert ApiKeyAuth((b"two",)).check("bearer two") == "two"

    def test_envelope(self) -> None:
        assert error_envelope(429, "slow down", code="overloaded") == {
            "error": {"message": "slow down", "type": "rate_limit_error", "param": None, "code": "overloaded"}
        }


class TestDrain:
    def test_phases_wait_for_in_flight(self) -> None:
        async def scenario() -> list[tuple[float, DrainPhase]]:
            in_flight = [2]
            done = asyncio.Event()
            drain = DrainController(lambda: in_flight[0], on_done=done.set)
            started = time.monotonic()
            drain.begin("test", DrainBudget(serve_s=0.2, finish_s=5))
            seen = [(0.0, drain.phase)]
            await asyncio.sleep(0.3)
            seen.append((time.monotonic() - started, drain.phase))
            in_flight[0] = 0
            await asyncio.wait_for(done.wait(), 2)
            seen.append((time.monotonic() - started, drain.phase))
            return seen

        phases = [phase for _, phase in asyncio.run(scenario())]
        assert phases == [DrainPhase.DRAINING, DrainPhase.REJECTING, DrainPhase.STOPPED]

    def test_finish_window_bounds_the_wait(self) -> None:
        async def scenario() -> DrainPhase:
            done = asyncio.Event()
            drain = DrainController(lambda: 1, on_done=done.set)  # a request that never ends
            drain.begin("test", DrainBudget(serve_s=0, finish_s=0.2))
            await asyncio.wait_for(done.wait(), 5)
            return drain.phase

        assert asyncio.run(scenario()) is DrainPhase.STOPPED

    def test_tighter_trigger_shortens(self) -> None:
        async def scenario() -> None:
            done = asyncio.Event()
            drain = DrainController(lambda: 0, on_done=done.set)
            drain.begin("SIGTERM", DrainBudget(serve_s=60, finish_s=60))
            drain.begin("gcp preemption", DrainBudget(serve_s=0.1, finish_s=0.1))
            await asyncio.wait_for(done.wait(), 5)
            assert drain.reason == "SIGTERM"

        asyncio.run(scenario())


class TestWatchers:
    def test_aws_interruption_notice_drains(self) -> None:
        with metadata_server() as metadata:

            async def scenario() -> list[str]:
                seen: list[str] = []
                task = asyncio.create_task(watch_aws(metadata.url, 0.05, seen.append))
                await asyncio.sleep(0.3)
                assert seen == []
                await asyncio.to_thread(metadata.trigger, "spot")
                await asyncio.wait_for(task, 5)
                return seen

            seen = asyncio.run(scenario())
            stats = metadata.stats()
            assert stats["unauthorised"] == 0
            assert stats["token_requests"] >= 1
        assert seen == ["aws spot interruption notice"]

    def test_aws_rebalance_recommendation_is_counted_once_and_never_drains(self) -> None:
        """A rebalance recommendation is not an interruption (the instance may run for hours,
        and capacity rebalancing launches its replacement first): counted, no drain; the
        watcher keeps polling, and a later interruption notice still drains."""
        with metadata_server() as metadata:

            async def scenario() -> tuple[list[str], int, bool]:
                seen: list[str] = []
                rebalances: list[int] = []
                task = asyncio.create_task(watch_aws(metadata.url, 0.05, seen.append, lambda: rebalances.append(1)))
                await asyncio.to_thread(metadata.trigger, "rebalance")
                await asyncio.sleep(0.6)
                still_watching = not task.done()
                counted = len(rebalances)
                await asyncio.to_thread(metadata.trigger, "spot")
                await asyncio.wait_for(task, 5)
                return seen, counted, still_watching

            seen, counted, still_watching = asyncio.run(scenario())
        assert still_watching
        assert counted == 1
        assert seen == ["aws spot interruption notice"]

    def test_gcp(self) -> None:
        with metadata_server() as metadata:

            async def scenario() -> list[str]:
                seen: list[str] = []
                task = asyncio.create_task(watch_gcp(metadata.url, seen.append))
                await asyncio.sleep(0.3)
                assert seen == []
                await asyncio.to_thread(metadata.trigger, "preempt")
                await asyncio.wait_for(task, 5)
                return seen

            assert asyncio.run(scenario()) == ["gcp preemption"]


def test_supervisor_gives_up_after_restart_limit() -> None:
    """A real child process that exits at once: restarts with backoff, then the fatal callback."""
    config = settings(restart_limit=2, restart_backoff_s=0.05, restart_backoff_max_s=0.1, engine_stop_timeout_s=1)

    async def scenario() -> tuple[list[str], int, EnginePhase]:
        fatal: list[str] = []
        restarts = [0]
        process = EngineProcess(config, argv=lambda _s, _port, _gpu: [sys.executable, "-c", "raise SystemExit(3)"])
        supervisor = EngineSupervisor(
            config,
            HttpEngineClient("http://127.0.0.1:9"),
            process=process,
            on_restart=lambda: restarts.__setitem__(0, restarts[0] + 1),
            on_fatal=fatal.append,
        )
        await supervisor.start()
        for _ in range(300):
            if fatal:
                break
            await asyncio.sleep(0.05)
        phase = supervisor.health.phase
        await supervisor.stop()
        await supervisor.client.aclose()
        return fatal, restarts[0], phase

    fatal, restarts, phase = asyncio.run(scenario())
    assert fatal == ["engine failed to start 3 times in a row; giving up"]
    assert restarts == 2
    assert phase is EnginePhase.FAILED


def test_an_engine_started_early_is_adopted_once_then_restarts_are_new() -> None:
    """`python -m service` starts vLLM before its own imports; the supervisor's first spawn
    adopts that process, a restart starts a new one, and kill() leaves no process behind."""
    config = settings(engine_stop_timeout_s=1)
    process = EngineProcess(config, argv=lambda _s, _port, _gpu: [sys.executable, "-c", "import time; time.sleep(60)"])

    async def scenario() -> tuple[int | None, int | None, int | None, int | None]:
        url = process.start()
        early = process.pid
        assert await process.spawn() == url  # adopted, not started again
        adopted = process.pid
        await process.stop()
        assert process.pid is None
        await process.spawn()  # a restart: a new process
        restarted = process.pid
        code = process.returncode
        return early, adopted, restarted, code

    early, adopted, restarted, code = asyncio.run(scenario())
    assert early is not None
    assert adopted == early
    assert restarted is not None
    assert restarted != early
    assert code is None  # still running
    process.kill()
    assert process.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(restarted, 0)


def test_every_setting_is_documented() -> None:
    """docs/service.md's table lists every flag and variable of the service (no drift)."""
    from service.config.cli import env_name, flag_name

    table = (REPO / "docs" / "service.md").read_text(encoding="utf-8")
    missing = [
        name
        for name, info in ServiceSettings.model_fields.items()
        if name != "features" and f"| `{flag_name(name)}` | `{env_name(name)}` |" not in table
    ]
    assert not missing, f"settings missing from docs/service.md: {missing}"
