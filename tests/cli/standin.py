"""A local stand-in that speaks the OpenAI API (`/v1/models`, streamed `/v1/chat/completions`).

For the `llm-fleet smoke` and `chat` tests that need no engine: a `ThreadingHTTPServer` on
127.0.0.1 with one API key and one model. Answers are `echo: <last user message>`, streamed
as server-sent events word by word, optionally held after the first word until the test
releases them (to see tokens arrive before the answer is complete). Every request body is kept.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "standin-model"
API_KEY = "sk-standin-0123456789"
HOLD_TIMEOUT_S = 30.0


@dataclass
class StandIn:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    hold_after_first: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    holding: threading.Event = field(default_factory=threading.Event)


def _error(handler: BaseHTTPRequestHandler, status: int, message: str, kind: str) -> None:
    body = json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _chunk(content: str | None, finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    choices = [] if usage else [{"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}]
    doc: dict[str, Any] = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 0, "model": MODEL}
    doc["choices"] = choices
    if usage:
        doc["usage"] = usage
    return f"data: {json.dumps(doc)}\n\n".encode()


def make_handler(state: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                _error(self, 401, "invalid API key", "authentication_error")
                return False
            return True

        def do_GET(self) -> None:
            if not self._authorized():
                return
            if self.path != "/v1/models":
                _error(self, 404, f"no route {self.path}", "not_found")
                return
            body = json.dumps(
                {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "standin"}]}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            request = json.loads(self.rfile.read(length) or b"{}")
            state.requests.append(request)
            if not self._authorized():
                return
            if self.path != "/v1/chat/completions":
                _error(self, 404, f"no route {self.path}", "not_found")
                return
            if request.get("model") != MODEL:
                _error(self, 404, f"The model `{request.get('model')}` does not exist.", "not_found")
                return
            user = [m["content"] for m in request.get("messages", []) if m.get("role") == "user"]
            words = f"echo: {user[-1] if user else ''}".split(" ")
            if not request.get("stream"):
                _error(self, 400, "this stand-in streams only", "invalid_request_error")
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for i, word in enumerate(words):
                self.wfile.write(_chunk(word if i == 0 else " " + word))
                self.wfile.flush()
                if i == 0 and state.hold_after_first:
                    state.holding.set()
                    state.release.wait(HOLD_TIMEOUT_S)
                time.sleep(0.01)
            self.wfile.write(_chunk(None, "stop"))
            if (request.get("stream_options") or {}).get("include_usage"):
                self.wfile.write(_chunk(None, usage={"prompt_tokens": 5, "completion_tokens": len(words)}))
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return Handler


@contextmanager
def serve() -> Iterator[StandIn]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = StandIn(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = make_handler(state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
