"""The gateway's settings: one pydantic-settings model, its feature sections, its command line.

- `settings`: `ServiceSettings`; every field is a flag and an `LLM_SERVICE_*` variable.
- `features`: the nested feature sections (cache, fallback, rate limits, routing, languages).
- `cli`: flags generated from the model, one-line errors, `--print-settings`.

On an instance the environment is the instance contract (`contract.instance.ServiceContract`).
"""
