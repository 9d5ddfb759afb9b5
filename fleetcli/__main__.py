"""`python -m fleetcli` is `llm-fleet`."""

from fleetcli.main import run

run()
