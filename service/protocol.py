"""The part of the OpenAI request schema the gateway enforces before the engine sees it.

Only the fields the gateway relies on are typed; every other OpenAI parameter passes
through untouched (``extra="allow"``) so the engine stays the judge of what it supports.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class ChatMessage(_Lenient):
    role: StrictStr
    content: StrictStr | list[dict[str, Any]] | None = None


class StreamOptions(_Lenient):
    include_usage: StrictBool | None = None


class _GenerationRequest(_Lenient):
    model: StrictStr = Field(min_length=1)
    stream: StrictBool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    n: StrictInt | None = Field(default=None, ge=1)


class ChatCompletionRequest(_GenerationRequest):
    messages: list[ChatMessage] = Field(min_length=1)

    def prompt_chars(self) -> int:
        total = 0
        for message in self.messages:
            if isinstance(message.content, str):
                total += len(message.content)
            elif message.content is not None:
                for part in message.content:
                    text = part.get("text")
                    if isinstance(text, str):
                        total += len(text)
        return total


class CompletionRequest(_GenerationRequest):
    prompt: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]

    def prompt_chars(self) -> int:
        if isinstance(self.prompt, str):
            return len(self.prompt)
        total = 0
        for item in self.prompt:
            total += len(item) if isinstance(item, str | list) else 1
        return total


def first_error(exc: ValidationError) -> tuple[str, str]:
    """(param, message) of the first validation error, in the client's field names."""
    error = exc.errors(include_url=False)[0]
    param = ".".join(str(part) for part in error["loc"]) or "body"
    return param, f"{param}: {error['msg']}"
