"""The fleet file, with `--model` / `--quantization` applied through the fleet's own validation.

The file is validated as written (`infra.config.load_fleet`), then the overrides are applied
to the validated data and the result is validated again (`parse_fleet`), so an override the
fleet cannot run (`--quantization fp8` with a T4 region) fails with the same one line a file
saying so would, its source naming the override.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleetcli.errors import FleetFileError
from infra.config import Fleet, FleetConfigError, load_fleet, parse_fleet

DEFAULT_FILE = "regions.yaml"
FILE_ENV = "LLM_FLEET_FILE"


def _raise(exc: FleetConfigError) -> FleetFileError:
    return FleetFileError(exc.source, [str(e) for e in exc.errors])


def load(path: Path | str, *, model: str | None = None, quantization: str | None = None) -> Fleet:
    """The fleet of `path`, with the overrides applied; FleetFileError on any mistake."""
    try:
        fleet = load_fleet(path)
    except FleetConfigError as exc:
        raise _raise(exc) from None
    if model is None and quantization is None:
        return fleet
    data: dict[str, Any] = fleet.model_dump(mode="json", by_alias=True)
    spec: dict[str, Any] = data["model"]
    flags = []
    if model is not None:
        flags.append(f"--model {model}")
        # The served name follows the model when the file's is the model's own name (the default).
        if spec["served_name"] == own_served_name(spec["id"]):
            spec["served_name"] = own_served_name(model)
        spec["id"] = model
    if quantization is not None:
        flags.append(f"--quantization {quantization}")
        spec["quantization"] = quantization
    # A checkpoint named in the file is a build of the file's model and quantization: derive it again.
    spec["checkpoint"] = None
    try:
        return parse_fleet(data, f"{path} with {' '.join(flags)}")
    except FleetConfigError as exc:
        raise _raise(exc) from None


def own_served_name(model_id: str) -> str:
    """`Qwen/Qwen2.5-7B-Instruct` -> `qwen2.5-7b-instruct` (the fleet file's default served name)."""
    return model_id.rstrip("/").rsplit("/", 1)[-1].lower()


def exists(path: Path | str) -> bool:
    return Path(path).is_file()
