"""The OpenAI API the gateway speaks, as data: no I/O, no framework but the response type.

- `protocol`: the public endpoints (path, method, body schema) and the validated part of the
  OpenAI request schema (strict JSON, the fields the gateway relies on; the rest passes through).
- `errors`: the OpenAI error envelope (`ApiError`), and errors the engine answered mapped to it.
"""
