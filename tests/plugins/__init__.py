"""pytest plugins registered by tests/conftest.py: session fixtures shared by several tiers.

Fixtures live here, not in a tier's conftest.py, so that a heavy component (the moto
deployment of the AWS stacks, the session vLLM) starts once per test session however many
tiers use it.
"""
