"""The gateway that runs in every instance's container and supervises its vLLM engine.

Layers, lowest first; each imports only the ones before it (docs/service.md, "Layout"):
`config`, `observability`, `api` -> `upstream` -> `engine` -> `lifecycle` -> `pipeline` -> `http`.
`python -m service` (`__main__`) reads the settings, starts the engine, then serves.

Nothing is imported here: `python -m service` starts the engine before the web stack loads.
"""
