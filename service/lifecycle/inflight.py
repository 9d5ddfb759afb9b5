"""What is in flight on this instance: the count of API requests (the drain waits for it to reach
0, the gateway sheds load above its limit), and work that waits for a response to be fully sent.

The middleware counts every API request and, once its response's last byte is sent (or it
failed), runs the callbacks registered on the request's scope with `after_response` (a key's
in-flight slot goes back).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

_AFTER_RESPONSE = "after_response"


class InFlight:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        return self.count


def after_response(state: MutableMapping[str, Any], callback: Callable[[], None]) -> None:
    """Run `callback` once the middleware is done with this request (`state`: its scope's
    "state"), after the last byte of the response or an error."""
    state.setdefault(_AFTER_RESPONSE, []).append(callback)


def after_response_callbacks(state: MutableMapping[str, Any]) -> Iterable[Callable[[], None]]:
    """The callbacks registered for this request, handed over once (the middleware runs them)."""
    callbacks: list[Callable[[], None]] = state.pop(_AFTER_RESPONSE, [])
    return callbacks
