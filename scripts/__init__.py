"""Setup, the tiny test model, the demo, the benches (`bench*.py`) and the operator tools (`ops/`)."""
