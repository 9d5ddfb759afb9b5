"""docs/architecture.md matches the tree, and the imports follow the directions it states."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTS = ("contract", "infra", "service", "fleetcli", "devkit", "scripts")
PAGE = REPO / "docs" / "architecture.md"
# The service's layers, lowest first: each imports only the ones before it.
SERVICE_LAYERS = ("config", "observability", "api", "upstream", "engine", "lifecycle", "pipeline", "http")


def packages_in_tree() -> set[str]:
    """Every package directory (one with an __init__.py) under the product and devkit roots."""
    found = set()
    for root in ROOTS:
        for init in (REPO / root).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                found.add(init.parent.relative_to(REPO).as_posix())
    return found


def packages_on_page() -> set[str]:
    """The packages the page's "Packages" table names, one row each: | `path/` | role |."""
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("## Packages", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([\w/]+)/` \|", section, flags=re.MULTILINE))


def test_the_page_names_every_package() -> None:
    missing = packages_in_tree() - packages_on_page()
    assert not missing, f"docs/architecture.md omits these packages: {sorted(missing)}"


def test_the_page_names_no_package_that_does_not_exist() -> None:
    extra = packages_on_page() - packages_in_tree()
    assert not extra, f"docs/architecture.md names packages that do not exist: {sorted(extra)}"


def imports_of(root: str) -> list[tuple[str, str]]:
    """(file, imported module) for every absolute import in the .py files under `root`."""
    found = []
    for path in (REPO / root).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(path.relative_to(REPO).as_posix(), alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((path.relative_to(REPO).as_posix(), node.module))
    return found


@pytest.mark.parametrize(
    ("root", "forbidden"),
    [
        ("contract", ("infra", "service", "devkit", "scripts", "tests")),
        ("service", ("infra", "devkit", "scripts", "tests")),
        ("infra", ("service", "devkit", "scripts", "tests")),
        ("scripts/ops", ("devkit", "tests")),
        ("fleetcli", ("service", "devkit", "tests")),
    ],
)
def test_the_layers_import_in_one_direction(root: str, forbidden: tuple[str, ...]) -> None:
    wrong = [(f, m) for f, m in imports_of(root) if m.split(".")[0] in forbidden]
    assert not wrong, f"{root} must not import {forbidden}: {wrong}"


def test_the_contract_needs_only_the_standard_library_and_pydantic() -> None:
    allowed = set(sys.stdlib_module_names) | {"pydantic", "contract", "__future__"}
    wrong = [(f, m) for f, m in imports_of("contract") if m.split(".")[0] not in allowed]
    assert not wrong, wrong


def test_the_service_layers_import_only_downwards() -> None:
    wrong = []
    for file, module in imports_of("service"):
        parts = file.split("/")
        if len(parts) < 3 or not module.startswith("service.") or parts[1] not in SERVICE_LAYERS:
            continue
        layer, other = parts[1], module.split(".")[1]
        if other in SERVICE_LAYERS and SERVICE_LAYERS.index(other) > SERVICE_LAYERS.index(layer):
            wrong.append((file, module))
    assert not wrong, f"a service layer imports one above it: {wrong}"
