"""The gateway's guards, checked without an engine."""

from __future__ import annotations

import pytest

from service.protocol import (
    MAX_JSON_DEPTH,
    InvalidJsonError,
    parse_json_object,
)

# --- strict JSON ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 5000 + b"]" * 5000, f"nested deeper than {MAX_JSON_DEPTH} levels"),
        (b'{"a": ' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1), "nested deeper"),
        (b'{"n": ' + b"7" * 5000 + b"}", "an integer does not fit in 64 bits"),
        (b'{"n": 9223372036854775808}', "an integer does not fit in 64 bits"),
        (b'{"x": NaN}', "NaN is not a JSON value"),
        (b'{"x": -Infinity}', "-Infinity is not a JSON value"),
        (b'{"x": 1e400}', "a number is out of range"),
        (b'{"x": ["\\udfff"]}', "lone UTF-16 surrogate"),
        (b'{"\\ud800": 1}', "lone UTF-16 surrogate"),
        (b"\xc3\x28", "not UTF-8"),
        (b'["a"]', "expected a JSON object"),
        (b'{"a": ', "Expecting value"),
    ],
)
def test_pathological_json_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(InvalidJsonError, match=message):
        parse_json_object(body)


def test_ordinary_json_passes() -> None:
    nested = b'{"a": ' * (MAX_JSON_DEPTH - 1) + b"1" + b"}" * (MAX_JSON_DEPTH - 1)
    assert parse_json_object(nested)["a"]["a"]
    assert parse_json_object(b'{"emoji": "\\ud83d\\ude00", "n": -9223372036854775808, "f": 1.5e300}') == {
        "emoji": "\U0001f600",
        "n": -(1 << 63),
        "f": 1.5e300,
    }
