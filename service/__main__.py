"""`python -m service`: settings, then the engine, then the gateway.

The engine is started before the web stack is imported (vLLM takes tens of seconds, the
gateway's imports about one), so the gateway is ready when vLLM is.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from service.config.cli import flagged, parse_settings, print_settings


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    settings = parse_settings(argv)
    if "--print-settings" in argv:
        return print_settings(settings)
    from service.observability.logs import configure_logging

    configure_logging(settings.log_level)
    try:
        settings.load_api_keys()  # an unusable key file stops us before anything starts
        if settings.supervised:
            from service.engine.process import check_model_context

            check_model_context(settings)  # a context the model cannot serve, before vLLM starts
    except ValueError as exc:
        print(f"error: {flagged(str(exc))}", file=sys.stderr)
        return 2
    engine = None
    if settings.supervised:
        # vLLM takes tens of seconds to start, the gateway's own imports about one: start the
        # engine first, so the gateway is ready when vLLM is (the supervisor adopts it).
        from service.engine.process import EngineProcess

        engine = EngineProcess(settings)
        engine.start()
    try:
        from service.http.server import serve

        return serve(settings, engine)
    except ValueError as exc:  # settings that only fail when used (an unreadable key file, ...)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if engine is not None:
            engine.kill()  # stopped already after a normal run; never left behind


if __name__ == "__main__":
    raise SystemExit(main())
