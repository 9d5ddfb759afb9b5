"""The fleet file: every mistake named by its field path, the default file valid."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.catalog import AWS_REGIONS, GCP_REGIONS, GPU_OFFERINGS, GPUS, Cloud
from infra.config import DEFAULT_FLEET_FILE, FleetConfigError, load_fleet, parse_fleet, parse_fleet_text

DEFAULT: dict[str, Any] = yaml.safe_load(DEFAULT_FLEET_FILE.read_text())


def fleet_with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(DEFAULT)
    data.update(changes)
    return data


def region_with(index: int = 0, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(DEFAULT)
    data["regions"][index].update(changes)
    return data


def errors_of(data: object) -> list[str]:
    with pytest.raises(FleetConfigError) as info:
        parse_fleet(data, "test.yaml")
    return [str(e) for e in info.value.errors]


def only_error(data: object) -> str:
    errors = errors_of(data)
    assert len(errors) == 1, errors
    return errors[0]


def test_default_fleet_is_valid_and_has_two_clouds_three_regions() -> None:
    fleet = load_fleet()
    assert len(fleet.regions) == 3
    assert {r.cloud for r in fleet.regions} == {Cloud.AWS, Cloud.GCP}
    regions = [r.region for r in fleet.regions]
    assert any(r.startswith("us-west") for r in regions)
    assert any(r.startswith("eu-central") for r in regions)
    assert any(r.startswith(("ap-southeast", "asia-southeast")) for r in regions)
    assert fleet.model.quantization.value == "int8"


def test_models_are_frozen() -> None:
    fleet = load_fleet()
    with pytest.raises(ValueError, match="frozen"):
        fleet.regions[0].min_replicas = 5  # type: ignore[misc]


def test_stack_names_in_deploy_order_canary_first() -> None:
    data = copy.deepcopy(DEFAULT)
    for r in data["regions"]:
        r["canary"] = False
    data["regions"][1]["canary"] = True
    fleet = parse_fleet(data)
    names = fleet.stack_names()
    assert names[0] == "bootstrap"
    assert names[-1] == "global"
    assert names[1] == fleet.regions[1].stack_name
    assert sorted(names[1:-1]) == sorted(r.stack_name for r in fleet.regions)


def test_engine_checkpoint_defaults_to_known_int8_build() -> None:
    fleet = load_fleet()
    assert fleet.model.engine_checkpoint == "RedHatAI/Qwen2.5-7B-Instruct-quantized.w8a8"


# --- each mistake of the issue, with its exact field path ---------------------------------


def test_unknown_top_level_key_with_did_you_mean() -> None:
    data = fleet_with(regoins=[])
    msg = only_error(data)
    assert msg.startswith("regoins: unknown key (did you mean 'regions'?)")


def test_unknown_nested_key_with_did_you_mean() -> None:
    data = region_with(0, min_replica=1)
    msg = only_error(data)
    assert msg.startswith("regions[0].min_replica: unknown key (did you mean 'min_replicas'?)")
    assert "allowed:" in msg


def test_unknown_key_in_nested_model_section() -> None:
    data = copy.deepcopy(DEFAULT)
    data["model"]["quantisation"] = "int8"
    assert only_error(data).startswith("model.quantisation: unknown key (did you mean 'quantization'?)")


def test_wrong_type() -> None:
    msg = only_error(region_with(1, max_replicas="three"))
    assert msg.startswith("regions[1].max_replicas: ")
    assert "integer" in msg
    assert "'three'" in msg


def test_wrong_type_section_not_a_mapping() -> None:
    assert only_error(fleet_with(autoscale=[1, 2])).startswith("autoscale: ")


def test_unknown_cloud() -> None:
    assert only_error(region_with(0, cloud="azure")) == "regions[0].cloud: unknown cloud 'azure'; allowed: aws, gcp"


def test_region_not_of_that_cloud() -> None:
    msg = only_error(region_with(0, region="europe-west4"))
    assert msg.startswith("regions[0].region: 'europe-west4' is not a aws region ('europe-west4' is a gcp region)")


def test_unknown_region_with_suggestion() -> None:
    msg = only_error(region_with(0, region="us-wset-2"))
    assert msg.startswith("regions[0].region: 'us-wset-2' is not a aws region (did you mean 'us-west-2'?)")


def test_gpu_not_offered_by_cloud() -> None:
    msg = only_error(region_with(2, gpu_type="a10g"))
    assert msg.startswith("regions[2].gpu_type: 'a10g' is not offered on gcp; allowed: ")
    assert "l4" in msg


def test_unknown_gpu_type() -> None:
    msg = only_error(region_with(0, gpu_type="rtx4090"))
    assert msg.startswith("regions[0].gpu_type: unknown gpu type 'rtx4090'")


def test_min_above_max() -> None:
    assert only_error(region_with(0, min_replicas=4, max_replicas=3)) == (
        "regions[0].min_replicas: 4 is above max_replicas (3)"
    )


@pytest.mark.parametrize("field", ["min_replicas", "on_demand_base"])
def test_negative_counts(field: str) -> None:
    msg = only_error(region_with(1, **{field: -1}))
    assert msg.startswith(f"regions[1].{field}: Input should be greater than or equal to 0")


def test_on_demand_base_above_max() -> None:
    assert only_error(region_with(0, on_demand_base=5)) == "regions[0].on_demand_base: 5 is above max_replicas (3)"


def test_duplicate_region() -> None:
    data = copy.deepcopy(DEFAULT)
    dup = copy.deepcopy(data["regions"][0])
    dup["canary"] = False
    data["regions"].append(dup)
    assert only_error(data) == "regions[3].region: duplicate region: already used by regions[0]"


def test_int8_on_gpu_that_cannot_run_it() -> None:
    msg = only_error(region_with(0, gpu_type="v100"))
    assert msg.startswith("regions[0].gpu_type: 'v100' cannot run int8 models (model.quantization)")


def test_fp8_on_gpu_without_fp8() -> None:
    data = region_with(1, gpu_type="t4")
    data["model"]["quantization"] = "fp8"
    errors = errors_of(data)
    assert errors[0].startswith("regions[0].gpu_type: 'a10g' cannot run fp8 models (model.quantization)")
    assert errors[1].startswith("regions[1].gpu_type: 't4' cannot run fp8 models")
    assert len(errors) == 2  # the gcp l4 region runs fp8


def test_empty_file() -> None:
    with pytest.raises(FleetConfigError) as info:
        parse_fleet_text("", "empty.yaml")
    assert [str(e) for e in info.value.errors] == ["file is empty; it needs at least 'global' and 'regions'"]


def test_yaml_syntax_error_has_line_number() -> None:
    text = DEFAULT_FLEET_FILE.read_text().replace("  port: 8000", "  port: [8000", 1)
    with pytest.raises(FleetConfigError) as info:
        parse_fleet_text(text, "broken.yaml")
    (err,) = info.value.errors
    assert str(err).startswith("YAML syntax error at line ")
    line = int(str(err).split("line ")[1].split(",")[0])
    assert line > 1


def test_duplicate_yaml_key_is_an_error_not_last_wins() -> None:
    with pytest.raises(FleetConfigError) as info:
        parse_fleet_text("project: a\nproject: b\n", "dup.yaml")
    assert "duplicate key 'project'" in str(info.value.errors[0])
    assert "line 2" in str(info.value.errors[0])


@pytest.mark.parametrize("field", ["cloud", "region", "gpu_type", "min_replicas", "max_replicas"])
def test_missing_required_region_field(field: str) -> None:
    data = copy.deepcopy(DEFAULT)
    del data["regions"][0][field]
    assert only_error(data) == f"regions[0].{field}: required field is missing"


def test_missing_required_top_level_field() -> None:
    data = copy.deepcopy(DEFAULT)
    del data["global"]
    assert only_error(data) == "global: required field is missing"


def test_top_level_not_a_mapping() -> None:
    assert only_error(["a", "b"]).startswith("top level must be a mapping")


def test_several_mistakes_are_all_reported() -> None:
    data = region_with(0, min_replicas=9, on_demand_base=7)
    data["regions"][1]["region"] = "mars-1"
    errors = errors_of(data)
    paths = [e.split(":")[0] for e in errors]
    assert paths == ["regions[0].min_replicas", "regions[0].on_demand_base", "regions[1].region"]


def test_gcp_region_needs_project() -> None:
    data = copy.deepcopy(DEFAULT)
    del data["gcp"]
    assert only_error(data) == "gcp.project: required because regions[2] is a gcp region"


def test_global_accelerator_only_for_aws_only_fleets() -> None:
    data = copy.deepcopy(DEFAULT)
    data["global"]["mode"] = "global-accelerator"
    assert only_error(data).startswith("global.mode: global-accelerator works for AWS-only fleets")


def test_domain_must_be_inside_hosted_zone() -> None:
    data = copy.deepcopy(DEFAULT)
    data["global"]["domain"] = "api.example.org"
    assert only_error(data).startswith("global.domain: 'api.example.org' is not inside hosted_zone")


def test_aws_capacity_reservation_ids_checked() -> None:
    msg = only_error(region_with(0, capacity_reservations=["res-1"]))
    assert msg.startswith("regions[0].capacity_reservations: 'res-1' is not an AWS capacity reservation id")
    fleet = parse_fleet(region_with(0, capacity_reservations=["cr-0123456789abcdef0"]))
    assert fleet.regions[0].capacity_reservations == ("cr-0123456789abcdef0",)


def test_two_canaries_rejected() -> None:
    assert only_error(region_with(1, canary=True)).startswith("regions[1].canary: only one canary region")


def test_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FleetConfigError) as info:
        load_fleet(tmp_path / "nope.yaml")
    assert str(info.value.errors[0]) == "file not found"


# --- catalogue consistency ------------------------------------------------------------------


def test_catalogue_is_consistent() -> None:
    for cloud, offerings in GPU_OFFERINGS.items():
        for gpu, offering in offerings.items():
            assert gpu in GPUS
            assert offering.instance_types
            if cloud == Cloud.AWS:
                assert len(offering.instance_types) >= 2, f"{gpu}: mixed-instances needs >= 2 types"
            else:
                assert offering.accelerator
    for info in GCP_REGIONS.values():
        assert len(info.zones) >= 2
        assert info.nearest_aws_region in AWS_REGIONS
        assert all(z.startswith(info.name + "-") for z in info.zones)
    assert not GPUS["v100"].int8
    assert all(GPUS[g].int8 for g in ("t4", "a10g", "l4"))


def test_odd_keys_are_quoted_on_one_line() -> None:
    msg = only_error(fleet_with(**{"a b\u2028c": 1}))
    assert msg.startswith('["a b\\u2028c"]: unknown key')
    assert len(msg.splitlines()) == 1
