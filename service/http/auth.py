"""Bearer API keys, compared in constant time against every configured key."""

from __future__ import annotations

import hmac

from service.http.errors import ApiError

ANONYMOUS_KEY = "anonymous"  # the identity of every request when auth is disabled


class ApiKeyAuth:
    def __init__(self, keys: tuple[bytes, ...], *, disabled: bool = False) -> None:
        self._keys = keys
        self._disabled = disabled

    def check(self, authorization: str | None) -> str:
        """The caller's identity (its key; `anonymous` when auth is disabled), or a 401 ApiError
        unless the header carries a configured key."""
        if self._disabled:
            return ANONYMOUS_KEY
        if not authorization:
            raise ApiError(401, "Missing API key: send 'Authorization: Bearer <key>'.", code="missing_api_key")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "Malformed Authorization header: expected 'Bearer <key>'.", code="invalid_api_key")
        key = token.strip()
        # Header values arrive decoded as latin-1: these are the bytes the client sent.
        presented = key.encode("latin-1", "replace")
        matched = False
        for candidate in self._keys:  # no early exit: the time does not depend on which key matched
            matched |= hmac.compare_digest(presented, candidate)
        if not matched:
            raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
        return key
