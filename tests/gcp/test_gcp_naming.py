"""GCP labels and names: the rules GCP enforces, for any fleet-file input."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from infra.tagging import LABEL_MAX, fleet_labels, gcp_name, label_key, label_value

NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
TAG = st.text(alphabet="ABCXYZabcxyz0189_.:/=+@ -", min_size=1, max_size=63)


def test_convention_labels_and_fleet_tags() -> None:
    labels = fleet_labels("llm-fleet", "gcp-asia-southeast1", {"Team": "ML Infra", "9Lives": "Yes/No"})
    assert labels == {
        "project": "llm-fleet",
        "stack": "gcp-asia-southeast1",
        "managed-by": "cdktf",
        "team": "ml-infra",
        "lives": "yes-no",
    }


def test_convention_labels_win_over_same_named_tags() -> None:
    assert fleet_labels("p-one", "gcp-x", {"Project": "other"})["project"] == "p-one"


@given(key=TAG, value=TAG)
def test_any_tag_becomes_a_valid_label(key: str, value: str) -> None:
    assert KEY.match(label_key(key))
    assert VALUE.match(label_value(value))


@given(parts=st.lists(st.text(alphabet="abcz09-_.", min_size=1, max_size=40), min_size=1, max_size=4))
def test_names_are_valid_and_bounded(parts: list[str]) -> None:
    name = gcp_name(*parts)
    assert len(name) <= LABEL_MAX
    assert NAME.match(name), name


def test_long_names_stay_distinct() -> None:
    a = gcp_name("x" * 40, "alpha", "y" * 40)
    b = gcp_name("x" * 40, "bravo", "y" * 40)
    assert a != b
    assert len(a) == len(b) == LABEL_MAX
