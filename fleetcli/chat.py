"""`llm-fleet chat`: a terminal chat with any endpoint of the fleet, streaming tokens as they come.

The official OpenAI SDK against `<endpoint>/v1`. On a terminal: a prompt loop (`/reset`
forgets the conversation, `/exit` or Ctrl-D quits, Ctrl-C stops an answer). With stdin piped:
each line is one user turn and only the answers are written, one per line, so
`echo "hi" | llm-fleet chat` works in scripts. Errors are one line; on a terminal the failed
turn is dropped and the loop goes on, piped the command exits 1.
"""

from __future__ import annotations

import re
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from rich.console import Console
from rich.markup import escape
from rich.prompt import Prompt

from fleetcli.errors import EXIT_OK, CliError, UsageError

if TYPE_CHECKING:
    import openai

PROMPT = "[bold cyan]you[/]"


@dataclass(frozen=True)
class ChatOptions:
    endpoint: str
    api_key: str
    model: str | None = None
    system: str | None = None
    max_tokens: int = 512
    temperature: float = 0.7
    ca_bundle: Path | None = None
    timeout_s: float = 120.0


def base_url(endpoint: str) -> str:
    """`https://host[:port]` (or with `/v1`) -> `https://host[:port]/v1`; one line if it is not a URL."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--endpoint {endpoint!r}: give an http:// or https:// origin, e.g. https://api.example.com")
    path = parts.path.rstrip("/")
    if path not in ("", "/v1"):
        raise UsageError(f"--endpoint {endpoint!r}: give the origin only (https://host[:port]); /v1 is added")
    return f"{parts.scheme}://{parts.netloc}/v1"


def sdk_error(exc: BaseException, timeout_s: float) -> str | None:
    """One line for the SDK's errors; None for anything else."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        text = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        return f"connection failed: {text}"
    if isinstance(exc, openai.APIStatusError):
        message = exc.message.splitlines()[0] if exc.message else ""
        message = re.sub(r"^Error code: \d+ - ", "", message)  # the SDK's own prefix repeats the status
        return f"HTTP {exc.status_code}: {message}"
    if isinstance(exc, openai.APIError):
        return f"API error: {exc.message}"
    return None


def make_client(options: ChatOptions) -> openai.OpenAI:
    import openai

    try:
        context = ssl.create_default_context(cafile=str(options.ca_bundle) if options.ca_bundle else None)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"--ca-bundle {options.ca_bundle}: not a readable PEM bundle ({exc})") from None
    http_client = openai.DefaultHttpxClient(verify=context, timeout=options.timeout_s)
    return openai.OpenAI(
        base_url=base_url(options.endpoint),
        api_key=options.api_key,
        max_retries=1,
        timeout=options.timeout_s,
        http_client=http_client,
    )


def resolve_model(client: openai.OpenAI, wanted: str | None, url: str, timeout_s: float) -> str:
    try:
        served = sorted(m.id for m in client.models.list())
    except Exception as exc:
        message = sdk_error(exc, timeout_s)
        if message is None:
            raise
        raise CliError(f"{url}: {message}") from None
    if wanted is None:
        if not served:
            raise CliError(f"{url}: serves no model")
        return served[0]
    if wanted not in served:
        raise CliError(f"{url}: model {wanted!r} is not served (serves: {', '.join(served) or 'none'}); pass --model")
    return wanted


@dataclass
class Chat:
    client: openai.OpenAI
    model: str
    options: ChatOptions
    out: TextIO
    err: Console

    def __post_init__(self) -> None:
        self.messages: list[dict[str, str]] = []
        self.reset()

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.options.system}] if self.options.system else []

    def turn(self, text: str) -> str:
        """Send one user turn; write the answer's tokens as they arrive; the answer."""
        self.messages.append({"role": "user", "content": text})
        parts: list[str] = []
        try:
            stream: Any = self.client.chat.completions.create(
                model=self.model,
                messages=self.messages,  # type: ignore[arg-type]
                max_tokens=self.options.max_tokens,
                temperature=self.options.temperature,
                stream=True,
            )
            for chunk in stream:
                delta = chunk.choices[0].delta.content if chunk.choices else None
                if delta:
                    parts.append(delta)
                    self.out.write(delta)
                    self.out.flush()
        except BaseException:
            self.messages.pop()
            if parts:
                self.out.write("\n")
            raise
        self.out.write("\n")
        self.out.flush()
        answer = "".join(parts)
        self.messages.append({"role": "assistant", "content": answer})
        return answer


def run(options: ChatOptions, *, stdin: TextIO, out: TextIO, err: Console) -> int:
    client = make_client(options)
    url = base_url(options.endpoint)
    model = resolve_model(client, options.model, url, options.timeout_s)
    chat = Chat(client, model, options, out, err)
    interactive = stdin.isatty()
    if interactive:
        err.print(
            f"chat with [bold]{escape(model)}[/] at {escape(url)} "
            "[dim](/reset forgets the conversation, /exit or Ctrl-D quits, Ctrl-C stops an answer)[/]"
        )
    try:
        while True:
            try:
                line = Prompt.ask(PROMPT, console=err) if interactive else stdin.readline()
            except (EOFError, KeyboardInterrupt):
                if interactive:
                    err.print()
                break
            if not interactive and not line:
                break  # end of the piped input
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit"):
                break
            if text == "/reset":
                chat.reset()
                err.print("[dim]conversation cleared[/]")
                continue
            try:
                chat.turn(text)
            except KeyboardInterrupt:
                err.print("[dim](answer stopped)[/]")
            except Exception as exc:
                message = sdk_error(exc, options.timeout_s)
                if message is None:
                    raise
                if not interactive:
                    raise CliError(f"{url}: {message}") from None
                print(f"llm-fleet: error: {url}: {message}", file=sys.stderr, flush=True)
    finally:
        client.close()
    return EXIT_OK
