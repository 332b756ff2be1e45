"""qvq-sdk against real Gradio servers (5.9.1 and the newest 6.x) running the Space's stand-in.

Every test runs on both versions (the ``gradio_version`` fixture) and, where it applies,
both protocols. The stand-in's commands are documented in standin_app.py.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from PIL import Image

from qvq_sdk import (
    APIConnectionError,
    AppError,
    Done,
    InputError,
    ProcessingStarted,
    QueuePosition,
    QuotaExceededError,
    QVQClient,
    TextUpdate,
)

PROTOCOLS = ["queue", "call"]
WAIT_LIMIT = 20.0  # seconds a test waits for the app to record something, at most


def wait_for(condition, what, limit=WAIT_LIMIT):
    """Polls ``condition`` until true; fails (with ``what``) after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {limit} s for {what}")
        time.sleep(0.02)


def image_bytes(fmt, size=(7, 5)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(params=PROTOCOLS)
def client(request, gradio_server):
    with QVQClient(base_url=gradio_server.base_url, protocol=request.param, timeout=(5, 30)) as client:
        yield client


@pytest.fixture(scope="module")
def image_host():
    """A plain HTTP server on 127.0.0.1 serving a PNG at /cat.png, text at /page, 404 elsewhere."""
    png = image_bytes("PNG", (9, 4))
    seen_headers = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen_headers.append(dict(self.headers))
            if self.path == "/cat.png":
                body, kind, status = png, "image/png", 200
            elif self.path == "/page":
                body, kind, status = b"<html>not an image</html>", "text/html", 200
            else:
                body, kind, status = b"nope", "text/plain", 404
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.seen_headers = seen_headers
    server.url = "http://127.0.0.1:%d" % server.server_address[1]
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


# -- text ------------------------------------------------------------------------------------


def test_text_chat_streams_chunks_that_join_to_the_answer(client):
    chunks = list(client.chat("hello there"))
    assert "".join(chunks) == "You said: hello there | image: none"
    assert len(chunks) > 1, "the echo is streamed word by word"
    assert all(isinstance(chunk, str) and chunk for chunk in chunks)


def test_complete_returns_the_final_output(client):
    assert client.complete("hello there") == "You said: hello there | image: none"


def test_conversation_is_sent_as_role_lines(client):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": [{"type": "text", "text": "Bye"}]},
    ]
    expected = "You said: System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: Bye\nAssistant: | image: none"
    assert client.complete(messages) == expected


def test_non_ascii_text_round_trips(client):
    text = "héllo ☃ 你好 🙂 ‮"
    assert "".join(client.chat(text)) == f"You said: {text} | image: none"


def test_long_answer_of_20000_words_is_complete_and_in_order(client):
    expected = " ".join(f"w{i}" for i in range(20000))
    chunks = list(client.chat("words 20000 400"))
    assert "".join(chunks) == expected
    assert len(chunks) == 400


def test_events_report_queue_start_text_and_done(client):
    events = list(client.events("words 5"))
    assert isinstance(events[-1], Done) and events[-1].text == "w0 w1 w2 w3 w4"
    texts = [e for e in events if isinstance(e, TextUpdate)]
    assert "".join(t.delta for t in texts) == "w0 w1 w2 w3 w4"
    assert [t.text for t in texts] == ["w0", "w0 w1", "w0 w1 w2", "w0 w1 w2 w3", "w0 w1 w2 w3 w4"]
    assert not any(t.replaced for t in texts)
    if client.protocol == "queue":
        assert isinstance(events[0], QueuePosition) and events[0].rank == 0
        assert any(isinstance(e, ProcessingStarted) for e in events)
    else:
        assert not any(isinstance(e, (QueuePosition, ProcessingStarted)) for e in events)


def test_rewrite_yields_the_new_text_whole_and_is_marked(client):
    assert list(client.chat("rewrite")) == ["Thinking...", "Answer: 42"]
    texts = [e for e in client.events("rewrite") if isinstance(e, TextUpdate)]
    assert [(t.delta, t.replaced, t.text) for t in texts] == [
        ("Thinking...", False, "Thinking..."),
        ("Answer: 42", True, "Answer: 42"),
    ]
    assert client.complete("rewrite") == "Answer: 42"


@pytest.mark.parametrize("command", ["empty", "none"])
def test_empty_answer_yields_nothing_and_completes_empty(client, command):
    assert list(client.chat(command)) == []
    assert client.complete(command) == ""
    assert list(client.events(command))[-1] == Done("")


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("command, expected", [("hi", "You said: hi | image: none"), ("words 300", None)])
def test_non_streaming_endpoint_still_yields_its_text(gradio_return_server, protocol, command, expected):
    expected = expected or " ".join(f"w{i}" for i in range(300))
    with QVQClient(base_url=gradio_return_server.base_url, protocol=protocol) as client:
        assert list(client.chat(command)) == [expected]
        assert client.complete(command) == expected


# -- images ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP"])
def test_each_image_format_reaches_the_app(client, fmt):
    assert client.complete("look", images=[image_bytes(fmt)]) == "You said: look | image: 7x5"


def _sources(tmp_path, image_host):
    png = image_bytes("PNG")
    path = tmp_path / "photo.png"
    path.write_bytes(png)
    return {
        "str path": str(path),
        "pathlib path": path,
        "bytes": png,
        "bytearray": bytearray(png),
        "memoryview": memoryview(png),
        "file object": open(path, "rb"),
        "data URI": "data:image/png;base64," + base64.b64encode(png).decode(),
        "PIL image": Image.new("RGB", (7, 5)),
        "http URL": image_host.url + "/cat.png",
    }


@pytest.mark.parametrize(
    "kind",
    [
        "str path",
        "pathlib path",
        "bytes",
        "bytearray",
        "memoryview",
        "file object",
        "data URI",
        "PIL image",
        "http URL",
    ],
)
def test_each_image_kind_reaches_the_app(client, tmp_path, image_host, kind):
    source = _sources(tmp_path, image_host)[kind]
    size = "9x4" if kind == "http URL" else "7x5"
    try:
        assert client.complete("look", images=[source]) == f"You said: look | image: {size}"
    finally:
        if hasattr(source, "close"):
            source.close()


def test_image_part_in_messages_counts_as_the_image(client):
    uri = "data:image/png;base64," + base64.b64encode(image_bytes("PNG")).decode()
    messages = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "what"}, {"type": "image_url", "image_url": {"url": uri}}],
        }
    ]
    assert client.complete(messages) == "You said: what | image: 7x5"


def test_image_url_is_fetched_without_the_token(gradio_server, image_host):
    with QVQClient("hf_secret_token", base_url=gradio_server.base_url) as client:
        before = len(image_host.seen_headers)
        assert client.complete("look", images=[image_host.url + "/cat.png"]).endswith("9x4")
    headers = image_host.seen_headers[before]
    assert not any("hf_secret_token" in value for value in headers.values())
    assert "Authorization" not in headers and "X-HF-Authorization" not in headers


@pytest.mark.parametrize("path", ["/missing", "/page"])
def test_bad_image_url_is_an_input_error_at_the_call(client, image_host, path):
    with pytest.raises(InputError) as info:
        client.chat("look", images=[image_host.url + path])
    assert "images[0]" in str(info.value)


class RecordingSession(requests.Session):
    """A caller's own session that records what it sends."""

    def __init__(self):
        super().__init__()
        self.sent = []

    def request(self, method, url, *args, **kwargs):
        self.sent.append((method, url))
        return super().request(method, url, *args, **kwargs)


def test_image_over_the_space_limit_fails_before_upload(realserver_pool, gradio_version):
    server = realserver_pool.get(gradio_version, max_file_size="1kb")
    big = image_bytes("BMP", (40, 40))  # ~4.8 KB
    assert len(big) > 1024
    session = RecordingSession()
    with QVQClient(base_url=server.base_url, session=session) as client:
        chunks = client.chat("look", images=[big])
        with pytest.raises(InputError) as info:
            next(chunks)
    assert "1024 bytes" in str(info.value)
    assert session.sent == [("GET", server.base_url + "/config")]


# -- errors ----------------------------------------------------------------------------------


def test_app_error_message_is_kept(client, gradio_version):
    with pytest.raises(AppError) as info:
        list(client.chat("error Boom é 😀"))
    if client.protocol == "call" and gradio_version.startswith("5"):
        assert info.value.message is None
        assert 'protocol="queue"' in str(info.value)
    else:
        assert info.value.message == "Boom é 😀"
        assert "Boom é 😀" in str(info.value)


@pytest.mark.parametrize("command, retry_after", [("quota", 192.0), ("quota-html", None)])
def test_quota_error_is_typed_with_retry_after(client, gradio_version, command, retry_after):
    if client.protocol == "call" and gradio_version.startswith("5"):
        with pytest.raises(AppError) as info:
            client.complete(command)
        assert not isinstance(info.value, QuotaExceededError)  # Gradio 5's call protocol hides it
        return
    with pytest.raises(QuotaExceededError) as info:
        client.complete(command)
    assert info.value.retry_after == retry_after
    assert "<a" not in str(info.value) and "<a" not in info.value.message
    assert info.value.message.startswith("You have exceeded your GPU quota")


def test_hidden_crash_is_an_app_error_without_message(client):
    with pytest.raises(AppError) as info:
        client.complete("crash")
    assert info.value.message is None
    assert "internal detail" not in str(info.value)


# -- cancelling ------------------------------------------------------------------------------


def _record_id(request, suffix):
    return "%s-%s-%d" % (request.node.name.replace("[", "-").replace("]", ""), suffix, os.getpid())


@pytest.mark.parametrize("how", ["break", "close"])
def test_cancelling_stops_the_app(client, gradio_server, request, how):
    record_id = _record_id(request, client.protocol)
    chunks = client.chat(f"slow {record_id} 2000")
    received = []
    if how == "break":
        for chunk in chunks:
            received.append(chunk)
            if len(received) == 3:
                break
        del chunks  # the loop's generator is gone: CPython closes it now
    else:
        received = [next(chunks) for _ in range(3)]
        chunks.close()
    wait_for(lambda: gradio_server.app_stopped(record_id), "the app to record that it stopped")
    # It stopped long before its 2000 ticks (100 s); allow for ticks in flight at the cancel.
    assert gradio_server.ticks(record_id) < 100
    assert "".join(received).startswith("tick 0 ")


def test_client_close_from_another_thread_aborts_the_stream(gradio_server, request):
    record_id = _record_id(request, "close")
    client = QVQClient(base_url=gradio_server.base_url)
    errors = []
    first_text = threading.Event()

    def chat():
        try:
            for _ in client.chat(f"slow {record_id} 2000"):
                first_text.set()
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=chat)
    thread.start()
    assert first_text.wait(WAIT_LIMIT)
    client.close()
    thread.join(WAIT_LIMIT)
    assert not thread.is_alive(), "close() did not end the blocked read"
    assert len(errors) == 1 and isinstance(errors[0], APIConnectionError)
    assert "closed" in str(errors[0])
    wait_for(lambda: gradio_server.app_stopped(record_id), "the app to record that it stopped")


# -- threads ---------------------------------------------------------------------------------


def test_eight_threads_chat_at_once_through_one_client(client):
    results = {}

    def chat(i):
        results[i] = ("".join(client.chat(f"words {50 + i}")), client.complete(f"thread {i}"))

    threads = [threading.Thread(target=chat, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == list(range(8))
    for i, (streamed, completed) in results.items():
        assert streamed == " ".join(f"w{n}" for n in range(50 + i))
        assert completed == f"You said: thread {i} | image: none"


def test_queueing_reports_positions(gradio_queue_server):
    """With one worker, a second chat waits in the queue and says where."""
    with QVQClient(base_url=gradio_queue_server.base_url) as client:
        first = client.events("sleep 1")
        assert isinstance(next(first), QueuePosition)  # the first job is queued and running
        positions = [e for e in client.events("hi") if isinstance(e, QueuePosition)]
        assert list(first)[-1] == Done("slept")
    assert positions and positions[0].rank is not None and positions[0].rank >= 0
    assert positions[0].queue_size is not None and positions[0].queue_size >= 1


# -- the qvq command -------------------------------------------------------------------------


def run_qvq(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "qvq_sdk", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_qvq_command_streams_the_answer(gradio_server, protocol):
    result = run_qvq("héllo", "--base-url", gradio_server.base_url, "--protocol", protocol)
    assert (result.returncode, result.stdout, result.stderr) == (0, "You said: héllo | image: none\n", "")


def test_qvq_command_reads_stdin_and_takes_an_image(gradio_server, tmp_path):
    image = tmp_path / "a.jpg"
    image.write_bytes(image_bytes("JPEG"))
    result = run_qvq("-", "-i", str(image), "--system", "sys", "--base-url", gradio_server.base_url, stdin="question\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "You said: System: sys\nUser: question\nAssistant: | image: 7x5\n"


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["error Bad thing"], 1, "Bad thing"),
        (["hi", "-i", "/no/such/file.png"], 2, "no such image file"),
        (["hi", "--protocol", "smoke"], 2, "invalid choice"),
    ],
)
def test_qvq_command_errors_are_one_line_with_exit_codes(gradio_server, args, code, message):
    result = run_qvq(*args, "--base-url", gradio_server.base_url)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    if code == 1:
        assert result.stderr.count("\n") == 1


def test_qvq_command_fails_cleanly_when_nothing_listens():
    result = run_qvq("hi", "--base-url", "http://127.0.0.1:9", "--timeout", "2")
    assert result.returncode == 1
    assert result.stderr.startswith("qvq: error: ") and "refused" in result.stderr
