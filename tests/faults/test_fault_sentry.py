"""What an error tracker records of a failed chat holds no token.

Sentry, with its default options (no DSN: an in-memory transport keeps what it would send),
records an exception with the local variables of every frame its traceback passed through
(``include_local_variables``, on by default) and of every error in its chain; its default
scrubber only hides top-level variables with names such as ``token`` or ``authorization``,
not a ``headers`` dict holding ``Authorization: Bearer hf_...`` (requests' and urllib3's
frames have such locals). So these tests capture the errors of failed chats, over real
sockets, and search the whole serialized event for the token, with and without its ``hf_``
prefix: a refused connection, a 401, the app's failure message, a stream that broke. The
same for ``traceback.TracebackException(err, capture_locals=True)``, which also shows the
locals of every frame.

Each test also checks that frame locals do reach the event (a local variable of the test
itself), so that a token in a local would be found.
"""

from __future__ import annotations

import json
import socket
import traceback
import uuid

import pytest
from faultspace import EVENT_ID, RESET, TOKEN, WIRES, call_event, event_stream, queue_event, status

from qvq_sdk import APIConnectionError, AppError, AuthenticationError, QVQClient, QVQError

sentry_sdk = pytest.importorskip("sentry_sdk")
from sentry_sdk.transport import Transport  # noqa: E402

SECRET = TOKEN[len("hf_") :]  # the token's value without its prefix
ECHO = "Invalid credentials: Bearer " + TOKEN  # what a server that echoes the token says


class MemoryTransport(Transport):
    """Keeps every envelope the SDK would send."""

    def __init__(self, options=None):
        super().__init__(options)
        self.envelopes = []

    def capture_envelope(self, envelope):
        self.envelopes.append(envelope)

    def flush(self, timeout, callback=None):
        pass

    def kill(self):
        pass


@pytest.fixture
def sentry():
    """Sentry with its default options, recording into a MemoryTransport; off again after."""
    transport = MemoryTransport()
    sentry_sdk.init(transport=transport)
    try:
        assert sentry_sdk.get_client().options["include_local_variables"] is True  # the default
        yield transport
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)


def captured(sentry, error):
    """The serialized event Sentry records for ``error``, as text."""
    sentry.envelopes.clear()
    sentry_sdk.capture_exception(error)
    sentry_sdk.flush()
    assert len(sentry.envelopes) == 1, "Sentry recorded no event"
    envelope = sentry.envelopes[0]
    event = envelope.get_event()
    assert event is not None and event["exception"]["values"]
    return envelope.serialize().decode("utf-8", "replace")


def assert_no_token(text, where):
    for secret in (TOKEN, SECRET, json.dumps(TOKEN)[1:-1]):
        assert secret not in text, "the token is in %s" % where


def check(sentry, error, marker):
    """The token is nowhere in what Sentry records, nor in a traceback with locals; the
    test's own local ``marker`` is (so locals are recorded at all)."""
    event = captured(sentry, error)
    assert marker in event, "Sentry recorded no frame locals: the test could not find a token in one"
    assert_no_token(event, "the Sentry event")
    formatted = "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())
    assert marker in formatted
    assert_no_token(formatted, "traceback.TracebackException(capture_locals=True)")


def new_marker():
    return "locals-are-recorded-" + uuid.uuid4().hex


def app_failure(wire):
    """The Space's app failed, with a message that echoes the token."""
    if wire.protocol == "queue":
        message = {"msg": "process_completed", "event_id": EVENT_ID, "output": {"error": ECHO}, "success": False}
        return event_stream(queue_event({"msg": "process_starts", "event_id": EVENT_ID}), queue_event(message))
    return event_stream(call_event("error", {"error": ECHO}))


def echo_then_reset(wire):
    """Text, then half an event (the blank line that ends it never comes) echoing the token,
    then a reset: the half event is in the locals of the frames that were reading it. (Made
    here: a local of the test holding the token would be recorded with the test's frame.)"""
    half = wire.raw_event(json.dumps({"msg": "not_a_known_message", "detail": ECHO}).encode(), b"not_known")
    return event_stream(wire.text_event("Hel"), half[: -len(b"\n")], RESET)


@pytest.mark.parametrize("protocol", ["queue", "call"])
def test_a_refused_connection_sends_no_token_to_sentry(sentry, protocol):
    marker = new_marker()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    client = QVQClient(token=TOKEN, base_url="http://127.0.0.1:%d" % port, protocol=protocol, max_retries=0)
    try:
        with pytest.raises(APIConnectionError, match="refused") as info:
            client.complete("hi")
    finally:
        client.close()
    check(sentry, info.value, marker)


@pytest.mark.parametrize("route", ["config", "start"])
@pytest.mark.parametrize("protocol", ["queue", "call"])
def test_a_401_sends_no_token_to_sentry(sentry, space, make_client, protocol, route):
    marker = new_marker()
    wire = WIRES[protocol]
    space.on(wire.start if route == "start" else route, status(401, '{"detail": "%s"}' % ECHO, "application/json"))
    with pytest.raises(AuthenticationError) as info:
        make_client(protocol, max_retries=0).complete("hi")
    check(sentry, info.value, marker)


@pytest.mark.parametrize("protocol", ["queue", "call"])
def test_the_apps_failure_message_sends_no_token_to_sentry(sentry, space, make_client, protocol):
    marker = new_marker()
    wire = WIRES[protocol]
    space.on(wire.stream, app_failure(wire))
    with pytest.raises(AppError, match="Invalid credentials") as info:
        make_client(protocol).complete("hi")
    assert TOKEN not in (info.value.message or "")
    check(sentry, info.value, marker)


@pytest.mark.parametrize("how", ["complete", "chat"])
@pytest.mark.parametrize("protocol", ["queue", "call"])
def test_a_broken_stream_sends_no_token_to_sentry(sentry, space, make_client, protocol, how):
    """The stream broke in the middle of an event that echoes the token."""
    marker = new_marker()
    wire = WIRES[protocol]
    space.on(wire.stream, echo_then_reset(wire))
    client = make_client(protocol)
    with pytest.raises(APIConnectionError, match="broke in the middle") as info:
        if how == "complete":
            client.complete("hi")
        else:
            for _ in client.chat("hi"):
                pass
    check(sentry, info.value, marker)


def test_the_check_finds_a_token_in_a_local_variable(sentry):
    """The check itself: an error whose finished frame holds the token's header in a local
    (as requests' frames do before qvq-sdk clears them) is caught."""
    marker = new_marker()

    def send():
        headers = {"Authorization": "Bearer " + TOKEN}
        raise QVQError("failed: %d headers" % len(headers))

    with pytest.raises(QVQError) as info:
        send()
    with pytest.raises(AssertionError, match="the token is in the Sentry event"):
        check(sentry, info.value, marker)
    headers = {"X-Other": SECRET}  # without its prefix too
    with pytest.raises(AssertionError, match="the token is in"):
        assert_no_token(json.dumps(headers), "a dict")
