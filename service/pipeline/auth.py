"""Bearer credentials: the one parser of `Authorization: Bearer <token>`, and the API-key check.

Tokens are compared in constant time against every configured value, so the time taken does
not tell which one (if any) matched.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from service.api.errors import ApiError

ANONYMOUS_KEY = "anonymous"  # the identity of every request when auth is disabled


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization` header value: the scheme `Bearer` in any case, one
    space, the token (spaces around it ignored). None for no header, another scheme or no token."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def token_matches(token: str, accepted: Iterable[bytes]) -> bool:
    """Whether `token` is one of `accepted`, in a time that does not depend on which one."""
    # Header values arrive decoded as latin-1: these are the bytes the client sent.
    presented = token.encode("latin-1", "replace")
    matched = False
    for candidate in accepted:  # no early exit
        matched |= hmac.compare_digest(presented, candidate)
    return matched


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
        key = bearer_token(authorization)
        if key is None:
            raise ApiError(401, "Malformed Authorization header: expected 'Bearer <key>'.", code="invalid_api_key")
        if not token_matches(key, self._keys):
            raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
        return key
