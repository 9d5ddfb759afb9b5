"""The gateway's side of the engine connection: everything between a validated request and the
engine's bytes.

- `pool`: the hot-path HTTP/1.1 client (asyncio protocol + httptools, LIFO keep-alive pool).
- `client`: `EngineClient`, the interface a pool's engine is reached through, and
  `HttpEngineClient` (forwarded requests through the pool; probes and warm-up through httpx).
- `relay`: pure-ASGI responses that pass the engine's bytes on unchanged (streams piece by
  piece, with the usage tap and the aborts on disconnect and on the time limit).
"""
