"""Smoke tests of the real-server harness itself, speaking the wire protocol with plain requests.

They check that the stand-in (standin_app.py) behaves as PROTOCOL.md describes on each Gradio
version, so that failures of the SDK's real-server tests can be blamed on the SDK.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib

import pytest
import requests
import servers

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


# -- servers.py itself: run by hand, and what it leaves behind ---------------------------------

SERVERS_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "servers.py")
#: The version the tests of servers.py itself start (the first selected one: its venv is built).
HARNESS_VERSION = servers.selected_versions()[0]


def leftovers(directory):
    """The stand-in folders left in a temporary directory."""
    return sorted(glob.glob(os.path.join(str(directory), "qvq-gradio*")))


@pytest.fixture(scope="session")
def harness_venv(realserver_pool):
    """HARNESS_VERSION, its venv built (by the pool, as for every real-server test)."""
    realserver_pool.get(HARNESS_VERSION)
    return HARNESS_VERSION


@pytest.fixture
def own_tmp(monkeypatch, tmp_path):
    """tempfile's directory (where start_server makes its folders) is a fresh one."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


@pytest.fixture
def no_venvs(monkeypatch, tmp_path):
    """No venv built yet, and no Python that could build one: a build fails at once."""
    monkeypatch.setenv("QVQ_TEST_VENVS", str(tmp_path / "venvs"))
    monkeypatch.setenv("QVQ_GRADIO_PYTHON", str(tmp_path / "no-such-python"))
    return tmp_path / "venvs"


def test_a_busy_port_is_one_message_and_exit_1(tmp_path, no_venvs):
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        env = dict(os.environ, TMPDIR=str(tmp_path))
        run = subprocess.run(
            [sys.executable, SERVERS_PY, "--gradio", HARNESS_VERSION, "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert run.returncode == 1
    assert run.stderr == "servers.py: error: port %d on 127.0.0.1 is already in use: pick another with --port\n" % port
    assert run.stdout == ""  # checked before any venv is built: no "preparing"
    assert not no_venvs.exists()
    assert leftovers(tmp_path) == []


def test_preparing_the_venv_is_said_when_it_is_built(capsys, own_tmp, no_venvs):
    assert servers.main(["--gradio", HARNESS_VERSION, "--port", str(servers.free_port())]) == 1
    out, err = capsys.readouterr()
    venv = os.path.join(str(no_venvs), "gradio-" + HARNESS_VERSION)
    assert out.startswith("preparing the gradio %s venv in %s (first run only" % (HARNESS_VERSION, venv))
    assert err.startswith("servers.py: error: QVQ_GRADIO_PYTHON=") and err.count("\n") == 1
    assert "Traceback" not in err
    assert leftovers(own_tmp) == []


def test_nothing_is_said_of_a_venv_that_exists_and_a_failed_start_leaves_no_folder(
    capsys, own_tmp, monkeypatch, tmp_path
):
    # A "built" venv whose python has no gradio: the stand-in exits at once.
    venv = tmp_path / "venvs" / ("gradio-" + HARNESS_VERSION)
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / ".qvq-spec.json").write_text(json.dumps({"spec": servers.VENV_SPECS[HARNESS_VERSION]}))
    monkeypatch.setenv("QVQ_TEST_VENVS", str(tmp_path / "venvs"))
    assert servers.main(["--gradio", HARNESS_VERSION, "--port", str(servers.free_port())]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("servers.py: error: the gradio %s stand-in exited with 1 before serving" % HARNESS_VERSION)
    assert "No module named 'gradio'" in err  # the end of its log
    assert leftovers(own_tmp) == []


def test_a_server_removes_its_folder_when_it_stops(harness_venv, own_tmp):
    # As the fixtures' pool does: start_server entered on an ExitStack, closed at the end.
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(servers.start_server(HARNESS_VERSION))
        (folder,) = leftovers(own_tmp)
        assert server.log_path.startswith(folder + os.sep) and os.path.exists(server.log_path)
        assert queue_texts(queue_messages(server, [None, "words 2"]))[1] == "w0 w1"
        assert os.path.isdir(os.path.join(folder, "gradio-tmp"))
    assert server.process.poll() is not None
    assert leftovers(own_tmp) == []


def test_a_server_that_does_not_start_in_time_removes_its_folder(harness_venv, own_tmp):
    with pytest.raises(servers.HarnessError, match="did not answer /config within 0 s"):
        with servers.start_server(HARNESS_VERSION, startup_timeout=0.1):
            pass
    assert leftovers(own_tmp) == []


def lines_of(stream):
    """A queue of the stream's lines, read by a thread (None at its end): a test waits for a
    line with a timeout instead of blocking for ever on a server that says nothing."""
    lines = queue.Queue()

    def pump():
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, name="lines-of", daemon=True).start()
    return lines


def test_run_by_hand_with_its_venv_built_it_serves_says_nothing_of_preparing_and_cleans_up(harness_venv, tmp_path):
    port = servers.free_port()
    env = dict(os.environ, TMPDIR=str(tmp_path))
    process = subprocess.Popen(
        [sys.executable, "-u", SERVERS_PY, "--gradio", HARNESS_VERSION, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        out = lines_of(process.stdout)
        said = []
        while not said or "serving at" not in said[-1]:
            line = out.get(timeout=servers.STARTUP_TIMEOUT + 30)
            assert line is not None, "servers.py ended before serving: %r" % said
            said.append(line)
        (serving,) = said  # no "preparing the gradio ... venv" before it
        expected = "gradio %s stand-in (stream mode) serving at http://127.0.0.1:%d " % (HARNESS_VERSION, port)
        assert serving.startswith(expected), serving
        (folder,) = leftovers(tmp_path)
        assert "(log: %s/server.log;" % folder in serving
        assert requests.get("http://127.0.0.1:%d/config" % port, timeout=TIMEOUT).status_code == 200
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=60) == 0
        assert out.get(timeout=10) is None  # nothing more on stdout
        err = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert err == ""
    assert not os.path.exists(folder)
    assert leftovers(tmp_path) == []
