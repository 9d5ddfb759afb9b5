"""Bearer API keys, compared in constant time against every configured key."""

from __future__ import annotations

import hmac

from service.errors import ApiError


class ApiKeyAuth:
    def __init__(self, keys: tuple[bytes, ...], *, disabled: bool = False) -> None:
        self._keys = keys
        self._disabled = disabled

    def check(self, authorization: str | None) -> None:
        """Raise a 401 ApiError unless the header carries a configured key."""
        if self._disabled:
            return
        if not authorization:
            raise ApiError(401, "Missing API key: send 'Authorization: Bearer <key>'.", code="missing_api_key")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "Malformed Authorization header: expected 'Bearer <key>'.", code="invalid_api_key")
        presented = token.strip().encode("utf-8")
        matched = False
        for key in self._keys:  # no early exit: the time does not depend on which key matched
            matched |= hmac.compare_digest(presented, key)
        if not matched:
            raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
