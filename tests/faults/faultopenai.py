"""A fault-injecting OpenAI-compatible server on 127.0.0.1, framed as vLLM frames its replies,
for the tests of ``protocol="openai"`` (the approach of faultspace.py, without its Gradio routes).

This module holds what is vLLM's own: its routes, its healthy answers, its events and error
shapes, the head as uvicorn writes it (``server: uvicorn``, lower-case header names). The
HTTP/1.1 server, the request record, the waits and the reply primitives are rawhttp.py's
(shared with faultspace.py); the replies a test needs are importable from here as well.

Raw sockets, one thread per connection, HTTP/1.1 keep-alive (a connection serves request
after request, as uvicorn does under vLLM) unless a request says ``Connection: close``, or a
reply has no framing or breaks the connection. Every byte is written by hand, so a test
controls the framing, the timing and how a connection ends (FIN, or RST via ``SO_LINGER`` 0).

Routes, by the name a test uses:

    "chat"    POST /v1/chat/completions
    "models"  GET  /v1/models
    "other"   anything else (FastAPI's 404 ``{"detail": "Not Found"}``)

The healthy chat reply is vLLM's stream: ``Content-Type: text/event-stream``, chunked, each
event ``data: {json}\\n\\n`` in one chunk: the role chunk (``delta {"role": "assistant",
"content": ""}``), the content deltas ("Hel", "lo", " world"), the last one carrying
``finish_reason: "stop"``, a usage chunk (``"choices": []``, ``"usage": {...}``) only when the
request's body asks for it (``stream_options.include_usage``), then ``data: [DONE]``.

A test scripts a reply with ``server.on(route, reply, times=n)``: the next ``n`` requests to
the route (all, if None) get ``reply``. Replies:

    answer(pieces, reasoning_pieces=..., field=..., finish_reason=..., done=..., usage=...)
                         a whole stream (``field``: "reasoning_content" or "reasoning")
    sse(*parts)          a 200 event stream of parts: bytes (one chunk each) or callables
                         acting in place: STALL, RESET, CLOSE, gate(event), USAGE (the usage
                         chunk if the request asked for it)
    error_status(code, message), UNAUTHORIZED (vLLM's 401 ``{"error": "Unauthorized"}``),
    too_many_requests(retry_after), unavailable(), echo() (answers the last user message's text);
    rawhttp's status(...), json_reply(...), redirect(...), stall() / reset() (before any header)

Event builders: ``ROLE``, ``content(text, finish_reason)``, ``reasoning(text, field)``,
``finish(reason)``, ``usage_chunk()``, ``error_event(message)`` (vLLM's error after the
headers), ``llamacpp_error(message)`` (llama.cpp's ``error:`` line), ``openrouter_error_chunk(message)``
(OpenRouter's), ``DONE``.

What the server saw and did, for a test to check or to wait for (bounded, no sleeps):

    server.requests           every request read: ``Request`` (method, path, headers (lower-case
                              names), body, ``.json``, the ``connection`` it came on: 1, 2, ...)
    server.requests_to(route), server.chats (those to "chat")
    server.connections        connections accepted so far
    server.idle_connections   kept-alive connections waiting for their next request
    server.stalled            requests whose reply sent all it sends before a stall, in order
    server.client_closed      numbers of the connections the client closed (FIN or RST seen
                              by the server), in order: how vLLM learns to abort a generation
    server.wait_for(condition, timeout), server.wait_requests(route, count, timeout),
    server.wait_stalled(route, count, timeout), server.wait_client_closed(connection, timeout)

``server.close_idle()`` closes the kept-alive connections waiting for a request, as a server
does at its keep-alive timeout. Images for requests: ``PNG``, ``GIF``, ``make_png(w, h)``.

Anything that waits (a stall, a gate) wakes as soon as the client hangs up or the server
stops, and never lasts longer than ``MAX_WAIT``. ``stop()`` joins every thread and closes
every socket. The pytest fixtures ``openai_server`` and ``make_openai`` (a client of it, with
the token and short timeouts; ``QVQ_API_KEY`` and ``QVQ_PROTOCOL`` removed from the
environment) are defined at the end: a test module imports ``openai_server_fixture`` and
``make_openai_fixture``.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any, Dict, List, Optional, Sequence, Union

import pytest
from rawhttp import Exchange, Part, RawHTTPServer, Reply, Request, event_stream, json_reply

# isort: split
# Only re-exported: the tests import these from here.
from rawhttp import CLOSE, MAX_WAIT, RESET, STALL, gate, redirect, reset, stall, status  # noqa: F401

from qvq_sdk import QVQClient

TOKEN = "hf_OpenAIFaultTokenDoNotLeak0123456789"  # what the tests' clients send
MODEL = "Qwen/QVQ-72B-Preview"
COMPLETION_ID = "chatcmpl-fa17fa17fa17fa17"
CREATED = 1735000000
ANSWER_PIECES = ("Hel", "lo", " world")
ANSWER = "".join(ANSWER_PIECES)
REASONING_PIECES = ("Let me ", "look at it.")
REASONING = "".join(REASONING_PIECES)
USAGE_COUNTS = {"prompt_tokens": 21, "total_tokens": 33, "completion_tokens": 12}


# -- images a chat may carry ---------------------------------------------------------------------


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def make_png(width: int = 1, height: int = 1) -> bytes:
    """An RGB PNG, every pixel black (a different size, different bytes)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


PNG = make_png()
GIF = bytes.fromhex("47494638376101000100810000ff00000000000000000000002c000000000100010000080400010404003b")


# -- events, as vLLM writes them ----------------------------------------------------------------


def event(document: Any) -> bytes:
    """One server-sent event: ``data: {json}`` and a blank line (UTF-8, as pydantic writes it)."""
    return b"data: " + json.dumps(document, ensure_ascii=False).encode("utf-8") + b"\n\n"


DONE = b"data: [DONE]\n\n"


def chunk(delta: Optional[Dict[str, Any]] = None, finish_reason: Optional[str] = None) -> bytes:
    """A ``chat.completion.chunk`` with one choice."""
    choice = {"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}
    return event(
        {
            "id": COMPLETION_ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "choices": [choice],
        }
    )


ROLE = chunk({"role": "assistant", "content": ""})


def content(text: str, finish_reason: Optional[str] = None) -> bytes:
    return chunk({"content": text}, finish_reason)


def reasoning(text: str, field: str = "reasoning_content") -> bytes:
    """A reasoning delta: ``reasoning_content`` (DashScope, older vLLM) or ``reasoning`` (vLLM 0.17+)."""
    return chunk({field: text})


def finish(reason: str = "stop") -> bytes:
    """A chunk that only says why the model stopped."""
    return chunk({"content": ""}, reason)


def usage_chunk(usage: Optional[Dict[str, Any]] = None) -> bytes:
    """The last chunk before ``[DONE]`` when the request asked for usage: no choices."""
    return event(
        {
            "id": COMPLETION_ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "choices": [],
            "usage": USAGE_COUNTS if usage is None else usage,
        }
    )


def error_event(message: str, type: str = "BadRequestError", code: int = 400) -> bytes:
    """What vLLM sends when generation fails after the headers (then ``[DONE]``)."""
    return event({"error": {"message": message, "type": type, "param": None, "code": code}})


def llamacpp_error(message: str, type: str = "server_error", code: int = 500) -> bytes:
    """What llama.cpp's server (``server_sent_event(sink, "error", ...)``) sends when generation
    fails after the headers: an ``error:`` field, not ``data:`` (then ``[DONE]``)."""
    return b"error: " + json.dumps({"code": code, "message": message, "type": type}).encode("utf-8") + b"\n\n"


def openrouter_error_chunk(message: str, code: Any = "server_error") -> bytes:
    """OpenRouter's mid-stream error: a chunk with the error at its top level and a choice that
    finishes with ``finish_reason: "error"``."""
    return event(
        {
            "id": COMPLETION_ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "provider": "openai",
            "error": {"code": code, "message": message},
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
        }
    )


def answer_events(
    pieces: Sequence[str] = ANSWER_PIECES,
    reasoning_pieces: Sequence[str] = (),
    field: str = "reasoning_content",
    finish_reason: Optional[str] = "stop",
) -> List[bytes]:
    """The role chunk, reasoning deltas, content deltas, the last one with ``finish_reason``."""
    events = [ROLE, *(reasoning(piece, field) for piece in reasoning_pieces)]
    if not pieces:
        return [*events, finish(finish_reason)] if finish_reason is not None else events
    events += [content(piece) for piece in pieces[:-1]]
    events.append(content(pieces[-1], finish_reason))
    return events


# -- the head as uvicorn writes it, and what a request asks for -----------------------------------


class UvicornExchange(Exchange):
    """rawhttp's Exchange, writing the head as uvicorn does under vLLM: ``server: uvicorn`` first,
    and every header name in lower case (Starlette lower-cases them)."""

    preamble = ("server: uvicorn",)
    lower_case = True


def include_usage(request: Request) -> bool:
    """Whether a chat request asks for the usage chunk (``stream_options.include_usage``)."""
    document = request.json
    options = document.get("stream_options") if isinstance(document, dict) else None
    return isinstance(options, dict) and options.get("include_usage") is True


# -- replies (rawhttp has the generic ones) ----------------------------------------------------------


def error_status(code: int, message: str, type: str = "BadRequestError", headers: Any = ()) -> Reply:
    """An error status with the OpenAI error body ``{"error": {"message": ...}}`` (vLLM's)."""
    return json_reply({"error": {"message": message, "type": type, "param": None, "code": code}}, code, headers)


#: vLLM's answer to a missing or wrong API key (``--api-key``): not the OpenAI error shape.
UNAUTHORIZED = json_reply({"error": "Unauthorized"}, 401)


def too_many_requests(retry_after: Union[int, float, str, None] = 1, message: str = "Rate limit exceeded") -> Reply:
    """A 429 with ``Retry-After: retry_after`` (no header if None)."""
    headers = {} if retry_after is None else {"Retry-After": "%s" % retry_after}
    return error_status(429, message, "RateLimitError", headers)


def unavailable(message: str = "The model is loading") -> Reply:
    return error_status(503, message, "ServiceUnavailableError")


sse = event_stream  # rawhttp's: a 200 event stream of parts (bytes, or callables acting in place)


def USAGE(exchange: Exchange) -> None:
    """The usage chunk, if the request asked for it (``stream_options.include_usage``)."""
    if include_usage(exchange.request):
        exchange.body(usage_chunk())


def answer(
    pieces: Sequence[str] = ANSWER_PIECES,
    reasoning_pieces: Sequence[str] = (),
    field: str = "reasoning_content",
    finish_reason: Optional[str] = "stop",
    done: bool = True,
    usage: bool = True,
    byte_by_byte: bool = False,
) -> Reply:
    """A whole stream as vLLM sends it (see the module); ``done=False`` leaves out ``[DONE]``,
    ``usage=False`` the usage chunk even when asked for, ``finish_reason=None`` the finish."""
    parts: List[Part] = [*answer_events(pieces, reasoning_pieces, field, finish_reason)]
    if usage:
        parts.append(USAGE)
    if done:
        parts.append(DONE)
    return sse(*parts, byte_by_byte=byte_by_byte)


def last_user_text(document: Any) -> str:
    """The text of the last user message of a chat request's body."""
    for message in reversed(document.get("messages", [])):
        if message.get("role") == "user":
            value = message.get("content")
            if isinstance(value, str):
                return value
            return "".join(part.get("text", "") for part in value if part.get("type") == "text")
    return ""


def echo() -> Reply:
    """Answers with the text of the last user message, in three pieces (for threads: no cross-talk)."""

    def reply(exchange: Exchange) -> None:
        text = last_user_text(exchange.request.json or {})
        third = max(1, len(text) // 3)
        pieces = [text[:third], text[third : 2 * third], text[2 * third :]]
        answer([piece for piece in pieces if piece])(exchange)

    return reply


def models_document() -> Dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": MODEL, "object": "model", "created": CREATED, "owned_by": "vllm", "max_model_len": 32768}],
    }


ROUTES = ("chat", "models", "other")


def route_of(request: Request) -> str:
    if request.method == "POST" and request.path == "/v1/chat/completions":
        return "chat"
    if request.method == "GET" and request.path == "/v1/models":
        return "models"
    return "other"


def healthy(route: str) -> Reply:
    """What a working vLLM answers."""
    if route == "chat":
        return answer()
    if route == "models":
        return json_reply(models_document())
    return json_reply({"detail": "Not Found"}, code=404)


# -- the server -------------------------------------------------------------------------------------


class OpenAIServer(RawHTTPServer):
    """The server: rawhttp's HTTP/1.1 server with vLLM's routes, keeping connections alive by
    default. Use as a context manager, or start() and stop()."""

    thread_name = "faultopenai"
    routes = ROUTES
    exchange_class = UvicornExchange

    def __init__(self, keep_alive: bool = True) -> None:
        super().__init__(keep_alive)
        self.base_url = self.origin + "/v1"

    def route_of(self, request: Request) -> str:
        return route_of(request)

    def healthy(self, route: str, request: Request) -> Reply:
        return healthy(route)

    @property
    def chats(self) -> List[Request]:
        """The chat requests read so far."""
        return self.requests_to("chat")

    def wait_requests(self, route: Optional[str] = "chat", count: int = 1, timeout: float = 10.0) -> bool:
        """Until ``count`` requests to ``route`` (any if None) have been read whole."""
        return super().wait_requests(route, count, timeout)

    def wait_stalled(self, route: Optional[str] = "chat", count: int = 1, timeout: float = 10.0) -> bool:
        """Until ``count`` replies to ``route`` (any if None) have sent all they send before a stall."""
        return super().wait_stalled(route, count, timeout)

    def wait_client_closed(self, connection: Optional[int] = None, timeout: float = 10.0) -> bool:
        """Until the client has closed ``connection`` (the last chat's if None): the server saw
        its FIN or RST, as vLLM does when it aborts the generation."""
        if connection is None:
            chats = self.chats
            if not chats:
                return False
            connection = chats[-1].connection
        return self.wait_for(lambda: connection in self.client_closed, timeout)


# -- pytest fixtures (import them by these names; tests ask for "openai_server", "make_openai") ---


@pytest.fixture(name="openai_server")
def openai_server_fixture():
    """An OpenAIServer, healthy until the test scripts a fault; stopped (and checked) at the end."""
    with OpenAIServer() as server:
        yield server
    assert server.errors == [], "the OpenAIServer itself failed: %r" % server.errors


@pytest.fixture(name="make_openai")
def make_openai_fixture(openai_server, monkeypatch):
    """``make_openai(**options)``: a ``protocol="openai"`` client of ``openai_server`` with the
    token and short timeouts, closed at the end. ``QVQ_API_KEY`` and ``QVQ_PROTOCOL`` are
    removed from the environment (the faults conftest removes the Hugging Face ones)."""
    for name in ("QVQ_API_KEY", "QVQ_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    clients: List[QVQClient] = []

    def make(**options: Any) -> QVQClient:
        options.setdefault("token", TOKEN)
        options.setdefault("timeout", (2, 5))
        options.setdefault("base_url", openai_server.base_url)
        client = QVQClient(protocol="openai", **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
