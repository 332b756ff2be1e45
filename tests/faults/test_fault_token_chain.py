"""No object reachable from a qvq-sdk error carries the token, over real sockets (urllib3 and
http.client really run, so their exceptions and objects are the real ones).

Error trackers walk an exception's ``__cause__``, ``__context__`` and ``args``, and show the
attributes of what they find (``error.__cause__.request.headers["Authorization"]``). The walk
here follows all of those, and every attribute (``__dict__`` and slots) of every object met,
through lists, tuples, sets and dicts, and checks every string and bytes it finds. Frames
and tracebacks are not followed (their locals are the program's, not the error's).
"""

from __future__ import annotations

import collections.abc
import socket
import types

import pytest
import requests
from faultspace import CLOSE, RESET, STALL, TOKEN, WIRES, event_stream, json_reply, redirect, stall, status

from qvq_sdk import QVQClient, QVQError

SPACE = "Qwen/QVQ-72B-preview"
LIMIT = 200_000  # objects walked at most per error (a walk that needs more is a failure too)


def _attributes(obj):
    values = []
    try:
        values += list(vars(obj).values())
    except TypeError:
        pass
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()) if isinstance(getattr(cls, "__slots__", ()), tuple) else ():
            if hasattr(obj, name):
                try:
                    values.append(getattr(obj, name))
                except Exception:
                    pass
    return values


def reachable(error):
    """Every object reachable from ``error`` as described above; (object, path) pairs."""
    seen = set()
    todo = [(error, "error")]
    found = []
    skip = (
        types.ModuleType,
        type,
        types.FunctionType,
        types.BuiltinFunctionType,
        types.MethodType,
        types.FrameType,
        types.TracebackType,
        types.CodeType,
        socket.socket,
    )
    while todo:
        obj, path = todo.pop()
        if id(obj) in seen or obj is None or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        found.append((obj, path))
        assert len(found) < LIMIT, "the walk from the error does not end: %s" % path
        if isinstance(obj, (str, bytes, bytearray, int, float, bool)):
            continue
        if isinstance(obj, BaseException):
            todo += [(obj.__cause__, path + ".__cause__"), (obj.__context__, path + ".__context__")]
            todo += [(arg, "%s.args[%d]" % (path, i)) for i, arg in enumerate(obj.args)]
        if isinstance(obj, collections.abc.Mapping):
            try:
                items = list(obj.items())
            except Exception:
                items = []
            todo += [(k, path + "{key}") for k, _ in items] + [(v, "%s[%r]" % (path, k)) for k, v in items]
        elif isinstance(obj, (list, tuple, set, frozenset, collections.deque)):
            todo += [(item, "%s[%d]" % (path, i)) for i, item in enumerate(list(obj))]
        todo += [(value, path + "." + type(value).__name__) for value in _attributes(obj)]
    return found


def assert_token_unreachable(error):
    for obj, path in reachable(error):
        if isinstance(obj, str):
            assert TOKEN not in obj, "the token is reachable at %s" % path
        elif isinstance(obj, (bytes, bytearray)):
            assert TOKEN.encode() not in obj, "the token is reachable at %s" % path
        elif isinstance(obj, requests.PreparedRequest):
            raise AssertionError("a request is reachable at %s" % path)


def fails(client, *args, **kwargs):
    with pytest.raises(QVQError) as info:
        client.complete(*args, **kwargs)
    return info.value


ECHO = "Invalid credentials: Bearer " + TOKEN


@pytest.mark.parametrize(
    "route, reply",
    [
        ("config", RESET),
        ("config", stall()),
        ("config", CLOSE),
        ("config", status(401, '{"detail": "%s"}' % ECHO, "application/json")),
        ("config", status(500, ECHO)),
        ("config", status(200, "<html>" + ECHO + "</html>", "text/html")),
        ("config", status(200, '{"nested": ' + "[" * 5000, "application/json")),
        ("config", redirect("/config-elsewhere")),
        ("join", RESET),
        ("join", json_reply({"detail": ECHO})),
        ("join", status(200, ECHO, "application/json")),
        ("upload", status(413, ECHO)),
        ("queue/data", event_stream(*WIRES["queue"].events(complete=False), CLOSE)),
        ("queue/data", event_stream(*WIRES["queue"].events(complete=False), RESET)),
        ("queue/data", event_stream(*WIRES["queue"].events(complete=False), STALL)),
        ("queue/data", event_stream(b"data: " + ECHO.encode() + b"\n\n")),
        ("queue/data", event_stream(b"data: \xff\xfe" + ECHO.encode() + b"\n\n")),
        ("queue/data", status(503, ECHO)),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_no_object_reachable_from_the_error_carries_the_token(space, make_client, route, reply):
    space.on(route, reply)
    image = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
    client = make_client(max_retries=0, timeout=(2, 0.5))
    assert_token_unreachable(fails(client, "hi", images=image if route == "upload" else None))


def test_a_refused_connection_leaves_no_token_reachable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    client = QVQClient(token=TOKEN, base_url="http://127.0.0.1:%d" % port, max_retries=0)
    assert_token_unreachable(fails(client, "hi"))


def test_a_deadline_met_in_a_request_leaves_no_token_reachable(space, make_client):
    space.on("config", stall())
    assert_token_unreachable(fails(make_client(max_retries=0), "hi", deadline=0.3))


def test_an_image_download_failure_leaves_no_token_reachable(space, make_client, other_host):
    other_host.on("other", RESET)
    client = make_client(max_retries=0)
    with pytest.raises(QVQError) as info:
        client.chat("hi", images=other_host.base_url + "/cat.png")
    assert_token_unreachable(info.value)
    other_host.on("other", status(404, ECHO))
    with pytest.raises(QVQError) as info:
        client.chat("hi", images=other_host.base_url + "/cat.png")
    assert_token_unreachable(info.value)


@pytest.mark.parametrize("hub_reply", ["refused", "reset", "echo"])
def test_a_failed_hub_lookup_leaves_no_token_reachable(space, other_host, monkeypatch, hub_reply):
    """The Hub's runtime lookup is made with the token (credentials="hub"); whatever it meets,
    nothing of it stays reachable from the Space's error."""
    space.on("config", status(503, "down"))
    if hub_reply == "refused":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            hub = "http://127.0.0.1:%d" % probe.getsockname()[1]
    else:
        other_host.on("other", RESET if hub_reply == "reset" else status(500, ECHO))
        hub = other_host.base_url
    monkeypatch.setenv("HF_ENDPOINT", hub)
    client = QVQClient(token=TOKEN, space=SPACE, base_url=space.base_url, max_retries=0, timeout=(2, 2))
    try:
        assert_token_unreachable(fails(client, "hi"))
    finally:
        client.close()


def test_the_walk_finds_a_token_where_there_is_one():
    """The walk itself: a requests error still holding its request is caught."""
    request = requests.Request("GET", "http://x", headers={"Authorization": "Bearer " + TOKEN}).prepare()
    error = QVQError("outer")
    error.__cause__ = requests.ConnectionError("refused", request=request)
    with pytest.raises(AssertionError, match=r"reachable at error\.__cause__"):
        assert_token_unreachable(error)
    error.__cause__ = ValueError("x", {"headers": ["Bearer " + TOKEN]})
    with pytest.raises(AssertionError, match="the token is reachable"):
        assert_token_unreachable(error)


@pytest.mark.parametrize("stage", ["PAUSED", "SLEEPING", "RUNNING"])
def test_an_explained_or_timed_out_outage_leaves_no_token_reachable(space, monkeypatch, stage):
    """A Space whose 503 echoes the token, and a Hub saying it needs its owner, sleeps for
    longer than the wait, or runs."""
    from hubkit import HubStandIn

    monkeypatch.setattr("qvq_sdk._waking.WAKE_POLL_SECONDS", 0.05)
    space.on("config", status(503, ECHO))
    with HubStandIn([stage]) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        client = QVQClient(token=TOKEN, space=SPACE, base_url=space.base_url, max_retries=0, wake_timeout=0.2)
        try:
            error = fails(client, "hi")
        finally:
            client.close()
    assert getattr(error, "space_stage", stage) == stage
    assert_token_unreachable(error)
