"""`smoke` without a server: endpoints derived from the fleet file, and bad input in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config import Fleet
from scripts.ops import smoke


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    path.write_text("# a key\nsk-test\n", encoding="utf-8")
    return path


def test_endpoints_from_the_fleet(fleet: Fleet) -> None:
    endpoints = smoke.fleet_endpoints(fleet)
    assert [(e.name, e.url) for e in endpoints] == [
        ("global", "https://api.example.com"),
        ("us-west-2", "https://us-west-2.api.example.com"),
        ("eu-central-1", "https://eu-central-1.api.example.com"),
        ("asia-southeast1", "https://asia-southeast1.api.example.com"),
    ]
    assert all(e.port == 443 for e in endpoints)


def test_endpoint_origin_is_normalised() -> None:
    assert smoke.parse_endpoint("https://127.0.0.1:8443/") == smoke.Endpoint("127.0.0.1", "https://127.0.0.1:8443")
    ipv6 = smoke.parse_endpoint("https://[::1]:8443")
    assert (ipv6.url, ipv6.host, ipv6.port) == ("https://[::1]:8443", "::1", 8443)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--endpoint", "http://127.0.0.1:8000"], "--endpoint 'http://127.0.0.1:8000': must be an https:// URL"),
        (["--endpoint", "https://127.0.0.1:8000/v1"], "give the origin only (https://host[:port])"),
        (["--endpoint", "https://127.0.0.1:99999"], "the port is not a number in 1-65535"),
        (["--api-key-file", "/nonexistent/key"], "--api-key-file /nonexistent/key: cannot read it"),
        (["--max-tokens", "0"], "--max-tokens: must be >= 1"),
        (["--timeout", "0"], "--timeout: must be > 0 seconds"),
        (["--ca-bundle", "/nonexistent/ca.pem"], "--ca-bundle /nonexistent/ca.pem: no such file"),
        (["--file", "/nonexistent/regions.yaml"], "/nonexistent/regions.yaml"),
    ],
)
def test_bad_input_is_one_line(
    argv: list[str], message: str, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert smoke.main(["--api-key-file", str(key_file), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("smoke: error: ")
    assert message in err[0]


def test_key_file_without_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.write_text("# nothing here\n\n", encoding="utf-8")
    assert smoke.main(["--api-key-file", str(empty)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"smoke: error: --api-key-file {empty}: no key in it (one key per line; # starts a comment)"


def test_missing_key_names_the_flag_and_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert smoke.main(["--endpoint", "https://127.0.0.1:1"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == "smoke: error: --api-key-file: not given and OPENAI_API_KEY is not set"


def test_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", " sk-from-env ")
    assert smoke.read_api_key(None) == "sk-from-env"
