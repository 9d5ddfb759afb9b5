"""The request pipeline: what happens to a public API request between the route and the engine.

- `gateway`: `Gateway.handle`, the one entry: gate, authenticate, take the key's slot, read and
  validate the body, then the feature chain, then the engine (through `service.upstream`).
- `auth`: the one `Authorization: Bearer` parser and the API-key check.
- `request`: the validated request the steps pass along (`PreparedRequest`).
- `forward`: the engine call: time limit, client disconnects, errors, the relay, token counts.
- `chain`: the feature chain: rate limit -> pool -> language -> cache -> deadline -> store -> settle.
- `pools`: the model pools and the choice of one per request (explicit model or intent).
- `intent`, `language`: classifiers of the request's text (code / math / general; its language).
- `cache`, `fallback`: the response cache and the per-request deadline with a cached fallback.
- `ratelimit`, `keyslots`: per-key token buckets (region-wide with Redis) and in-flight slots.
"""
