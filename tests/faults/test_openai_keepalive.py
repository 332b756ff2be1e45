"""protocol="openai" over real sockets: connection reuse on a server that keeps connections
alive (as uvicorn does under vLLM). Sequential chats share one connection; a chat that did not
complete (stopped, failed) closes its own and the next chat opens another; a connection the
server closed while idle is not a failure. The kit itself is checked first: it honours
``Connection: close``, so a client that sent it could not pass these tests."""

from __future__ import annotations

import json
import socket
import time

import pytest
from faultopenai import (
    ANSWER,
    DONE,
    ROLE,
    STALL,
    USAGE,
    answer,
    answer_events,
    content,
    error_event,
    error_status,
    make_openai_fixture,  # noqa: F401  (pytest fixture)
    openai_server_fixture,  # noqa: F401  (pytest fixture)
    sse,
)

from qvq_sdk import AppError, AuthenticationError, Done, StreamError

CHAT_BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True})


def raw_request(body=CHAT_BODY, connection=""):
    data = body.encode("utf-8")
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: %d\r\n%s\r\n" % (len(data), connection)
    )
    return head.encode("latin-1") + data


def read_chunked_reply(sock):
    """One chunked reply, read by hand: (head, the chunks' data)."""
    file = sock.makefile("rb")
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = file.readline()
        assert line, "the server closed the connection within the head"
        head += line
    chunks = []
    while True:
        size = int(file.readline().split(b";")[0], 16)
        if size == 0:
            assert file.readline() == b"\r\n"
            return head.decode("latin-1").lower(), chunks
        chunks.append(file.read(size))
        assert file.read(2) == b"\r\n"


def test_the_kit_frames_each_event_as_one_chunk_and_keeps_the_connection(openai_server):
    with socket.create_connection(("127.0.0.1", openai_server.port), timeout=5) as sock:
        sock.sendall(raw_request())
        head, chunks = read_chunked_reply(sock)
        assert "content-type: text/event-stream" in head and "transfer-encoding: chunked" in head
        assert "connection: close" not in head
        assert chunks == [*answer_events(), DONE]  # no usage chunk: not asked for
        assert json.loads(chunks[0][6:])["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert json.loads(chunks[-2][6:])["choices"][0]["finish_reason"] == "stop"

        asked = json.dumps({**json.loads(CHAT_BODY), "stream_options": {"include_usage": True}})
        sock.sendall(raw_request(asked))  # the same connection serves another
        _, chunks = read_chunked_reply(sock)
        usage = json.loads(chunks[-2][6:])
        assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 33
    assert openai_server.connections == 1


def test_the_kit_honours_connection_close(openai_server):
    with socket.create_connection(("127.0.0.1", openai_server.port), timeout=5) as sock:
        sock.sendall(raw_request(connection="Connection: close\r\n"))
        head, _ = read_chunked_reply(sock)
        assert "connection: close" in head
        assert sock.recv(1) == b""  # and closes it


def test_eight_sequential_chats_share_one_connection(openai_server, make_openai):
    client = make_openai()
    for index in range(8):
        call = ("chat", "complete", "events")[index % 3]
        result = getattr(client, call)("question %d" % index)
        if call == "chat":
            assert "".join(result) == ANSWER
        elif call == "complete":
            assert result == ANSWER
        else:
            assert list(result)[-1].text == ANSWER
    assert openai_server.connections == 1
    assert [request.connection for request in openai_server.chats] == [1] * 8
    assert not any("close" in request.headers.get("connection", "").lower() for request in openai_server.requests)


def test_after_a_stop_the_next_chat_works_on_a_new_connection(openai_server, make_openai):
    openai_server.on("chat", sse(ROLE, content("Hel"), STALL), times=1)
    client = make_openai()
    chat = client.chat("first")
    assert next(chat) == "Hel"
    chat.stop()
    assert list(chat) == [] and chat.stopped
    assert openai_server.wait_client_closed(1)
    assert client.complete("second") == ANSWER
    assert client.complete("third") == ANSWER
    assert [request.connection for request in openai_server.chats] == [1, 2, 2]


@pytest.mark.parametrize(
    "reply, error_type",
    [
        (sse(ROLE, content("Hel"), error_event("boom"), DONE), AppError),
        (sse(ROLE, content("Hel")), StreamError),
        (error_status(401, "bad key"), AuthenticationError),
    ],
    ids=["app-error", "cut", "status"],
)
def test_after_a_failed_chat_the_next_chat_works(openai_server, make_openai, reply, error_type):
    openai_server.on("chat", reply, times=1)
    client = make_openai()
    with pytest.raises(error_type):
        client.complete("first")
    assert client.complete("second") == ANSWER


def test_a_stream_with_a_finish_reason_but_no_done_leaves_a_reusable_connection(openai_server, make_openai):
    openai_server.on("chat", answer(done=False), times=1)
    client = make_openai()
    assert client.complete("first") == ANSWER
    assert client.complete("second") == ANSWER
    assert openai_server.connections == 1


def test_a_body_held_open_after_done_is_closed_not_reused(openai_server, make_openai):
    openai_server.on("chat", sse(*answer_events(), USAGE, DONE, STALL), times=1)
    client = make_openai()
    started = time.monotonic()
    chat = client.events("first")
    assert list(chat)[-1] == chat.done and isinstance(chat.done, Done)
    assert time.monotonic() - started < 2  # the rest of the body is waited for briefly
    assert openai_server.wait_client_closed(1)
    assert client.complete("second") == ANSWER
    assert [request.connection for request in openai_server.chats] == [1, 2]


def test_a_connection_the_server_closed_while_idle_is_not_a_failure(openai_server, make_openai):
    client = make_openai()
    assert client.complete("first") == ANSWER
    assert openai_server.wait_for(lambda: openai_server.idle_connections == 1)
    assert openai_server.close_idle() == 1
    assert openai_server.wait_for(lambda: openai_server.idle_connections == 0)
    assert client.complete("second") == ANSWER
    assert [request.connection for request in openai_server.chats] == [1, 2]
