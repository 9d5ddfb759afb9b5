"""The instance contract: what a GPU instance needs from the fleet file, and the facts that
more than one layer relies on.

- `contract.facts`: paths, ports, metric names and the cloud timing facts (notices, drain
  windows, load-balancer checks and idle timeouts), each defined once.
- `contract.instance`: `InstanceContract`, the typed object `infra` renders per region into
  the instance's boot settings and the service container's environment, and that the
  service reads back as its settings (`LLM_SERVICE_*`).

Only the standard library and pydantic: the service image carries this package next to
`service/`, and never the IaC package.
"""
