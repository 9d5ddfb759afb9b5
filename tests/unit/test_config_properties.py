"""Property tests: random mutations of the default fleet file either validate or fail with
exit 2 and one line per problem naming a field path, never a traceback."""

from __future__ import annotations

import contextlib
import copy
import io
import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.cli import main
from infra.config import DEFAULT_FLEET_FILE, Fleet, FleetConfigError, parse_fleet

DEFAULT: dict[str, Any] = yaml.safe_load(DEFAULT_FLEET_FILE.read_text())

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=10_000),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=12),
    st.sampled_from(["aws", "gcp", "azure", "t4", "l4", "a10g", "v100", "us-west-2", "asia-southeast1", "int8", "fp8"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


ALL_PATHS = [p for p in _paths(DEFAULT) if p]


@st.composite
def mutated_fleets(draw: st.DrawFn) -> dict[str, Any]:
    data = copy.deepcopy(DEFAULT)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent: Any = data
        try:
            for part in path[:-1]:
                parent = parent[part]
            key = path[-1]
            parent[key]  # still there after an earlier mutation?
        except (KeyError, IndexError, TypeError):
            continue
        action = draw(st.sampled_from(["replace", "delete", "add_key", "duplicate"]))
        if action == "replace":
            parent[key] = draw(values)
        elif action == "delete":
            del parent[key]
        elif action == "add_key" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_fleets())
def test_mutations_validate_or_name_a_field(data: dict[str, Any]) -> None:
    outcome: Fleet | FleetConfigError
    try:
        outcome = parse_fleet(data, "mutated.yaml")
    except FleetConfigError as exc:
        outcome = exc
    if isinstance(outcome, FleetConfigError):
        assert outcome.errors
        for err in outcome.errors:
            assert err.path or err.message.startswith(("top level", "file is empty")), err
            assert "\n" not in str(err)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(data=mutated_fleets())
def test_cli_exit_code_and_no_traceback(tmp_path_factory: Any, data: dict[str, Any]) -> None:
    path = Path(tmp_path_factory.mktemp("fleet")) / "regions.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["check", str(path)])
        except SystemExit as exc:
            code = int(exc.code or 0)
    assert "Traceback" not in err.getvalue() + out.getvalue()
    if code == 0:
        assert "(valid)" in out.getvalue()
    else:
        assert code == 2
        lines = err.getvalue().strip().splitlines()
        assert lines[-1].endswith(")")
        assert "invalid fleet file" in lines[-1]
        for line in lines[:-1]:
            assert line.startswith(f"{path}: "), line
            rest = line[len(str(path)) + 2 :]
            # "<field path>: <message>" or a file-level problem
            assert re.match(r'^[A-Za-z_\[][^:]*?(\[".*"\])?: \S', rest) or rest.startswith(
                ("top level", "file is empty")
            ), line
