"""Session-wide test settings shared by every tier."""

from __future__ import annotations

from hypothesis import settings

# Deterministic property tests in CI: the same examples every run (no flaky red builds),
# no example database written into the checkout.
settings.register_profile("repo", derandomize=True, database=None, print_blob=True)
settings.load_profile("repo")
