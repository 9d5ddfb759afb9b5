"""Session-wide test settings shared by every tier.

Session fixtures that more than one tier uses are plugins (tests/plugins/), registered here
so that each heavy component starts once per session: the moto deployment of the AWS stacks
(infra and delivery tiers) and the supervised vLLM engine (service and delivery tiers).
"""

from __future__ import annotations

from hypothesis import settings

pytest_plugins = ("tests.plugins.moto_fleet", "tests.plugins.engine")

# Deterministic property tests in CI: the same examples every run (no flaky red builds),
# no example database written into the checkout.
settings.register_profile("repo", derandomize=True, database=None, print_blob=True)
settings.load_profile("repo")
