"""The gateway's `features` settings: from the instance contract's environment, --redis-url, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from infra.boot import instance_contract
from infra.config import DEFAULT_FLEET_FILE, load_fleet
from service.config.cli import parse_settings

BASE = ["--engine-url", "http://127.0.0.1:9", "--served-model-name", "tiny", "--auth-disabled"]


def fleet_file(tmp_path: Path) -> Path:
    """The default fleet with other limits, no cache and two routing pools."""
    fleet = yaml.safe_load(Path(DEFAULT_FLEET_FILE).read_text(encoding="utf-8"))
    fleet["service"].update(rate_limit_rpm=40, rate_limit_tpm=9000, cache_ttl_s=0)
    fleet["routing"] = {
        "pools": [
            {"name": "general", "model": "tiny", "intents": ["general", "math"]},
            {"name": "code", "model": "tiny-coder", "intents": ["code"], "url": "http://127.0.0.1:9001"},
        ]
    }
    path = tmp_path / "regions.yaml"
    path.write_text(yaml.safe_dump(fleet), encoding="utf-8")
    return path


def test_the_instance_contract_gives_the_features_and_redis_url_fills_both_tiers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = load_fleet(fleet_file(tmp_path))
    for key, value in instance_contract(fleet, fleet.regions[0]).service.env().items():
        if key.startswith("LLM_SERVICE_FEATURES__"):
            monkeypatch.setenv(key, value)
    settings = parse_settings([*BASE, "--redis-url", "redis://r:6379/0"])
    features = settings.resolved_features()
    assert features.rate_limit.requests_per_minute == 40
    assert features.rate_limit.tokens_per_minute == 9000
    assert not features.cache.enabled  # cache_ttl_s: 0
    assert [p.name for p in features.routing.pools] == ["general", "code"]
    assert features.cache.redis_url == features.rate_limit.redis_url == "redis://r:6379/0"


def test_defaults_without_a_fleet_file() -> None:
    features = parse_settings(BASE).resolved_features()
    assert features.rate_limit.requests_per_minute == 100
    assert features.cache.enabled
    assert features.cache.redis_url is None
    assert features.routing.pools == ()


def test_a_bad_nested_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLM_SERVICE_FEATURES__LANGUAGE__TEMPLATE", "no placeholder")
    with pytest.raises(SystemExit) as exit_:
        parse_settings(BASE)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error: features.language (LLM_SERVICE_FEATURES__LANGUAGE): ")
    assert "{language}" in err
