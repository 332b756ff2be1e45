"""qvq_sdk._transport.failures and the errors built from it: what a failed request or read is called,
and whether it may have reached the server (no network: exceptions built as requests and
urllib3 raise them)."""

from __future__ import annotations

import socket
import ssl
import types

import requests
import urllib3

from qvq_sdk._transport.failures import before_sending, certificate_rejected, is_read_timeout, reason, request_error
from qvq_sdk._transport.streamed_body import StreamedBody


def wrapped(inner):
    """``inner`` as requests raises it: a ConnectionError around urllib3's MaxRetryError."""
    return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", inner))


def raised_in(function_name, exc):
    """``exc`` with a traceback through a function of that name (where urllib3 raised it)."""
    namespace = {}
    exec(f"def {function_name}(exc):\n    raise exc\n", namespace)
    try:
        namespace[function_name](exc)
    except BaseException as caught:
        return caught
    raise AssertionError("not raised")


def test_a_refused_connection_was_not_sent():
    refused = urllib3.exceptions.NewConnectionError(None, "Connection refused")
    assert before_sending(wrapped(refused))
    assert "refused" in reason(wrapped(ConnectionRefusedError(111, "Connection refused")))


def test_a_reset_after_sending_may_have_reached_the_server():
    reset = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    assert not before_sending(requests.exceptions.ConnectionError(reset))


def test_a_reset_during_the_tls_handshake_was_not_sent():
    reset = raised_in("do_handshake", ConnectionResetError(104, "reset"))
    assert before_sending(requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError("aborted", reset)))


def test_an_untrusted_certificate_is_not_worth_retrying():
    error = requests.exceptions.SSLError(
        urllib3.exceptions.MaxRetryError(None, "/", ssl.SSLCertVerificationError(1, "certificate verify failed"))
    )
    assert certificate_rejected(error) and before_sending(error)
    assert not certificate_rejected(wrapped(urllib3.exceptions.NewConnectionError(None, "refused")))


def test_a_read_timeout_is_one_wherever_it_is_wrapped():
    assert is_read_timeout(requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError("x", socket.timeout())))
    assert not is_read_timeout(wrapped(ConnectionResetError()))


def test_the_read_timeout_named_is_the_one_the_request_was_sent_with():
    error = request_error(requests.exceptions.ReadTimeout("read timed out"), "http://h:1/x", (10.0, 2.5), "the Space")
    assert "2.5 s" in str(error)


def test_a_stream_names_its_own_read_timeout():
    response = types.SimpleNamespace(url="http://space.example/stream", headers={})
    deadline = types.SimpleNamespace(expired=lambda: False)
    stream = StreamedBody(response, deadline, read_timeout=0.25)  # type: ignore[arg-type]
    error = stream._failure(socket.timeout("timed out"), None)
    assert "sent nothing for 0.25 s" in str(error)
