"""An OpenAI-compatible chat server on 127.0.0.1 that streams exactly as vLLM frames it.

    python benchmarks/openai_stub.py     # prints "PORT STATS_PORT", serves until stdin closes

The ``openai`` scenario's server (``run.py --scenario openai`` starts it): standard library
only (asyncio), fast enough that the clients, not the server, set the pace. It serves
``POST /v1/chat/completions`` with ``"stream": true``; the last user message scripts the
answer: ``tokens N`` is N tokens of 4 characters (" 000", " 001", …), one per delta, and
``tokens N K`` sends them K per delta.

The framing is vLLM's (0.32, behind uvicorn), byte for byte but for the id and the time:

- ``HTTP/1.1 200 OK`` with ``content-type: text/event-stream; charset=utf-8`` and
  ``transfer-encoding: chunked``; the headers in one write, then each event in one write as
  one chunk, then ``0\\r\\n\\r\\n``. Connections are kept alive (HTTP/1.1), and reused.
- each event ``data: {json}\\n\\n``, a ``chat.completion.chunk``: first the role
  (``"delta":{"role":"assistant","content":""}``), then the text (``"delta":{"content":...}``),
  the last text chunk with ``"finish_reason":"stop"``; then, when the request asks for it with
  ``stream_options.include_usage``, a usage chunk (``"choices":[]`` and ``"usage"``); then
  ``data: [DONE]``.

The stats port answers each connection with ``"<connections> <bytes>\\n"``: the connections
the server has accepted and the bytes it has sent, so far (the worker reads it around each
chat, as it reads the shaper's in the network scenario).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import socket
import sys
import threading
import time
import uuid

#: the tokens of an answer, 4 characters each (like an average English token), in a cycle
TOKENS = "".join(" %03d" % i for i in range(1000))
SCRIPT = re.compile(r"tokens (\d+)(?: (\d+))?")
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


class Stub:
    def __init__(self):
        self.connections = 0
        self.sent = 0

    async def serve(self):
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        stats = await asyncio.start_server(self.answer_stats, "127.0.0.1", 0)
        ports = [s.sockets[0].getsockname()[1] for s in (server, stats)]
        sys.stdout.write("%d %d\n" % tuple(ports))
        sys.stdout.flush()
        # serves until its standard input closes: run.py closes it, and so does a parent that dies
        closed = asyncio.Event()
        loop = asyncio.get_running_loop()
        threading.Thread(target=lambda: (sys.stdin.buffer.read(), loop.call_soon_threadsafe(closed.set))).start()
        await closed.wait()

    async def answer_stats(self, reader, writer):
        writer.write(b"%d %d\n" % (self.connections, self.sent))
        writer.close()

    def write(self, writer, data):
        self.sent += len(data)
        writer.write(data)

    async def handle(self, reader, writer):
        self.connections += 1
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            keep_alive = True
            while keep_alive:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
                method, target, version = request_line.split(" ")
                headers = {}
                for line in header_lines:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip().lower()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                keep_alive = version == "HTTP/1.1" and headers.get("connection") != "close"
                if target.split("?")[0] != "/v1/chat/completions":
                    self.respond(writer, 404, {"detail": "Not Found"})
                elif method != "POST":
                    self.respond(writer, 405, {"detail": "Method Not Allowed"})
                else:
                    await self.chat(writer, body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass  # the client closed its connection, or sent what is not HTTP: close it
        finally:
            writer.close()

    def respond(self, writer, status, document):
        body = json.dumps(document, separators=(",", ":")).encode()
        self.write(writer, head(status, b"content-length: %d\r\ncontent-type: application/json\r\n" % len(body)) + body)

    async def chat(self, writer, body):
        try:
            request = json.loads(body)
            message = next(m for m in reversed(request["messages"]) if m["role"] == "user")
            content = message["content"]
            if not isinstance(content, str):
                content = " ".join(part["text"] for part in content if part.get("type") == "text")
            count, per_delta = SCRIPT.search(content).groups()
            if request.get("stream") is not True:
                raise ValueError("this server only streams")
            usage = (request.get("stream_options") or {}).get("include_usage")
        except (ValueError, KeyError, TypeError, AttributeError, StopIteration) as exc:
            said = "not a streamed chat: %s %s" % (type(exc).__name__, exc)
            error = {"message": said, "type": "BadRequestError", "param": None, "code": 400}
            self.respond(writer, 400, {"error": error})
            return
        count, per_delta = int(count), int(per_delta or 1)
        answer = TOKENS * (count // 1000 + 1)
        ends = [*range(4 * per_delta, 4 * count, 4 * per_delta), 4 * count]  # where each delta ends
        prompt_tokens = len(content.split())

        common = 'data: {"id":"chatcmpl-%s","object":"chat.completion.chunk","created":%d,"model":%s,"choices":' % (
            uuid.uuid4().hex,
            int(time.time()),
            json.dumps(request.get("model", "")),
        )
        before_text = common + '[{"index":0,"delta":{"content":'
        after_text = '},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        self.write(
            writer, head(200, b"content-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n")
        )
        await self.send(
            writer,
            common + '[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],'
            '"prompt_token_ids":null,"prompt_text":null}\n\n',
        )
        start = 0
        for end in ends[:-1]:
            await self.send(writer, before_text + json.dumps(answer[start:end]) + after_text)
            start = end
        last = '},"logprobs":null,"finish_reason":"stop","stop_reason":null,"token_ids":null}]}\n\n'
        await self.send(writer, before_text + json.dumps(answer[start : ends[-1]]) + last)
        if usage:
            tokens = (prompt_tokens, prompt_tokens + count, count)
            await self.send(
                writer,
                common + '[],"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d}}\n\n' % tokens,
            )
        await self.send(writer, "data: [DONE]\n\n")
        self.write(writer, b"0\r\n\r\n")

    async def send(self, writer, event):
        """One event in a write of its own, as one HTTP chunk, as uvicorn sends it."""
        data = event.encode()
        self.write(writer, b"%x\r\n%s\r\n" % (len(data), data))
        await writer.drain()


def head(status, headers):
    """A response's status line and headers: uvicorn's ``date`` and ``server``, then ``headers``."""
    return (
        b"HTTP/1.1 %d %s\r\ndate: %s\r\nserver: uvicorn\r\n"
        % (status, REASONS[status].encode(), email.utils.formatdate(usegmt=True).encode())
        + headers
        + b"\r\n"
    )


def main():
    asyncio.run(Stub().serve())


if __name__ == "__main__":
    main()
