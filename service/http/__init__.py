"""The gateway's HTTP face: the app, its routes and middleware, and the server it runs under.

- `app`: `create_app(settings, engine=...)`: the wiring of one gateway (`lifespan` starts and
  stops what it runs, `handlers` answer the framework's own errors in the OpenAI envelope).
- `routes`: thin routes: health, the three public API paths, token-protected metrics.
- `middleware`: request id, in-flight count, latency metric, access log, the last-resort 500.
- `server`, `header_timeout`: uvicorn with the gateway's own signal handling and a bound on
  the time a client takes to send its headers.

The wire format itself (endpoints, request schema, error envelope) is `service.api`.
"""
