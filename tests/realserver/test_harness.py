"""Smoke tests of the real-server harness itself, speaking the wire protocol with plain requests.

They check that the stand-in (standin_app.py) behaves as PROTOCOL.md describes on each Gradio
version, so that failures of the SDK's real-server tests can be blamed on the SDK.
"""

from __future__ import annotations

import json
import struct
import time
import uuid
import zlib

import requests

TIMEOUT = 30


def _prefix(server):
    return server.base_url + (server.config.get("api_prefix") or "")


def _fn_index(server):
    for index, dep in enumerate(server.config["dependencies"]):
        if dep.get("api_name") == "generate":
            return index
    raise AssertionError("no generate dependency in /config")


def _png(width, height):
    """A tiny valid RGB PNG, without Pillow."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _apply(value, diff):
    """Apply a process_generating diff for one text output (path [] ops only)."""
    for op, path, arg in diff:
        assert path == [], diff
        if op == "replace":
            value = arg
        elif op == "append":
            value = value + arg
        else:
            raise AssertionError("unexpected diff op %r" % op)
    return value


def queue_messages(server, data):
    """Join the queue with `data`; return the parsed messages of its /queue/data stream."""
    session = uuid.uuid4().hex
    join = requests.post(
        _prefix(server) + "/queue/join",
        timeout=TIMEOUT,
        json={
            "data": data,
            "fn_index": _fn_index(server),
            "session_hash": session,
            "event_data": None,
            "trigger_id": None,
        },
    )
    assert join.status_code == 200, join.text
    messages = []
    with requests.get(
        _prefix(server) + "/queue/data", params={"session_hash": session}, stream=True, timeout=TIMEOUT
    ) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith(b"data:"):
                msg = json.loads(line[5:].decode("utf-8"))
                messages.append(msg)
                if msg["msg"] == "close_stream":
                    break
    return messages


def queue_texts(messages):
    """(texts seen while generating, final text) from queue messages, diffs applied."""
    texts, current, final = [], None, None
    for msg in messages:
        if msg["msg"] == "process_generating":
            out = msg["output"]["data"][0]
            current = out if not texts else _apply(current, out)
            texts.append(current)
        elif msg["msg"] == "process_completed":
            assert msg["success"], msg
            final = msg["output"]["data"][0]
    return texts, final


def test_config_has_generate(gradio_server):
    config = requests.get(gradio_server.base_url + "/config", timeout=TIMEOUT).json()
    assert config["protocol"] == "sse_v3"
    assert config["version"] == gradio_server.version
    dep = config["dependencies"][_fn_index(gradio_server)]
    assert dep["queue"] is not False and dep["types"]["generator"] is True


def test_queue_protocol_words(gradio_server):
    messages = queue_messages(gradio_server, [None, "words 5"])
    kinds = [m["msg"] for m in messages]
    assert kinds[-2:] == ["process_completed", "close_stream"], kinds
    texts, final = queue_texts(messages)
    assert texts == ["w0", "w0 w1", "w0 w1 w2", "w0 w1 w2 w3", "w0 w1 w2 w3 w4"]
    assert final == "w0 w1 w2 w3 w4"


def test_queue_protocol_image_and_unicode(gradio_server):
    upload = requests.post(
        _prefix(gradio_server) + "/upload", timeout=TIMEOUT, files=[("files", ("test.png", _png(3, 2), "image/png"))]
    )
    assert upload.status_code == 200, upload.text
    path = upload.json()[0]
    image = {"path": path, "orig_name": "test.png", "meta": {"_type": "gradio.FileData"}}
    _, final = queue_texts(queue_messages(gradio_server, [image, "h\u00e9llo \U0001f600"]))
    assert final == "You said: h\u00e9llo \U0001f600 | image: 3x2"


def test_call_protocol(gradio_server):
    post = requests.post(_prefix(gradio_server) + "/call/generate", timeout=TIMEOUT, json={"data": [None, "words 3"]})
    assert post.status_code == 200, post.text
    events = []
    with requests.get(
        _prefix(gradio_server) + "/call/generate/" + post.json()["event_id"], stream=True, timeout=TIMEOUT
    ) as resp:
        event = None
        for line in resp.iter_lines():
            if line.startswith(b"event:"):
                event = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                events.append((event, json.loads(line[5:])))
                if event in ("complete", "error"):
                    break
    assert events == [
        ("generating", ["w0"]),
        ("generating", ["w0 w1"]),
        ("generating", ["w0 w1 w2"]),
        ("complete", ["w0 w1 w2"]),
    ]


def test_return_mode_sends_only_completion(gradio_return_server):
    messages = queue_messages(gradio_return_server, [None, "words 5"])
    assert [m["msg"] for m in messages if m["msg"] not in ("estimation", "heartbeat")] == [
        "process_starts",
        "process_completed",
        "close_stream",
    ]
    assert messages[-2]["output"]["data"] == ["w0 w1 w2 w3 w4"]


def test_slow_stops_when_the_stream_is_closed(gradio_server):
    record_id = "harness-" + uuid.uuid4().hex
    session = uuid.uuid4().hex
    requests.post(
        _prefix(gradio_server) + "/queue/join",
        timeout=TIMEOUT,
        json={
            "data": [None, "slow %s" % record_id],
            "fn_index": _fn_index(gradio_server),
            "session_hash": session,
            "event_data": None,
            "trigger_id": None,
        },
    ).raise_for_status()
    resp = requests.get(
        _prefix(gradio_server) + "/queue/data", stream=True, timeout=TIMEOUT, params={"session_hash": session}
    )
    generating = 0
    for line in resp.iter_lines():
        if b'"process_generating"' in line:
            generating += 1
            if generating == 3:
                break
    resp.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        lines = gradio_server.record_lines(record_id)
        if lines and lines[-1].startswith("stopped at"):
            break
        time.sleep(0.05)
    assert lines[-1].startswith("stopped at"), lines[-3:]
    assert len(lines) < 100  # far short of the 2000 ticks
