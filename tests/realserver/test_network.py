"""The SDK on a real network's parts, against real Gradio stand-ins: Gradio's own TLS with
certificates made in the run (trustme), a real forward proxy (proxy.py: plain forwarding,
CONNECT tunnels, and an HTTPS proxy for TLS in TLS), and a latency shaper (40 ms RTT, every
new connection counted)."""

from __future__ import annotations

import os
import threading
import time

import certifi
import pytest
import requests
import servers
from netkit.proxy import start_proxy
from netkit.shaper import Shaper

from qvq_sdk import APIConnectionError, APITimeoutError, QVQClient, TextUpdate

PROTOCOLS = ["queue", "call"]
# The network is the client's: the first selected Gradio version (the Space's 5.9.1 by default)
# shows it. Whether Gradio ends a stream at once, which connection reuse needs, is checked on
# every selected version (test_eight_sequential_chats_over_tls_use_one_connection).
ALL_VERSIONS = servers.selected_versions()


@pytest.fixture(scope="session", params=ALL_VERSIONS[:1], ids=["gradio" + v for v in ALL_VERSIONS[:1]])
def gradio_version(request):
    return request.param


WAIT_LIMIT = 30.0
RTT = 0.04
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
    b"\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00IEND\xaeB`\x82"
)


def wait_for(condition, what, limit=WAIT_LIMIT):
    ends = time.monotonic() + limit
    while not condition():
        if time.monotonic() > ends:
            pytest.fail("timed out waiting for " + what)
        time.sleep(0.05)


def trusting(certs):
    session = requests.Session()
    session.verify = certs.ca_pem
    return session


def record_id(request, suffix):
    return "%s-%s-%d" % (request.node.name.replace("[", "-").replace("]", ""), suffix, os.getpid())


# -- HTTPS -----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_chat_over_https_with_the_ca_in_the_session(gradio_tls_server, certs, protocol, monkeypatch):
    # A system bundle in the environment (which requests would let win) does not hide the session's.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    assert gradio_tls_server.base_url.startswith("https://")
    session = trusting(certs)
    with QVQClient(base_url=gradio_tls_server.base_url, protocol=protocol, session=session) as client:
        assert "".join(client.chat("words 30")) == " ".join("w%d" % i for i in range(30))
        assert client.complete("hi", images=PNG) == "You said: hi | image: 1x1"
    session.close()


def test_a_chat_over_https_with_requests_ca_bundle(gradio_tls_server, certs, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certs.ca_pem)
    with QVQClient(base_url=gradio_tls_server.base_url) as client:
        assert client.complete("hi") == "You said: hi | image: none"


def test_an_untrusted_certificate_is_a_tls_error_not_retried(gradio_tls_server, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with Shaper("127.0.0.1", gradio_tls_server.port, rtt=0) as shaper:
        with QVQClient(base_url=shaper.url_for("https")) as client:
            with pytest.raises(APIConnectionError) as info:
                client.complete("hi")
        assert "certificate" in str(info.value).lower()
        assert shaper.connections == 1  # no retry: a certificate does not get better


# -- connections, through the counting shaper ------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=["gradio" + v for v in ALL_VERSIONS])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_eight_sequential_chats_over_tls_use_one_connection(realserver_pool, certs, version, protocol):
    server = realserver_pool.get(version, tls=certs)
    with Shaper("127.0.0.1", server.port, rtt=0) as shaper:
        session = trusting(certs)
        with QVQClient(base_url=shaper.url_for("https"), protocol=protocol, session=session) as client:
            for i in range(8):
                image = PNG if i % 2 else None
                expected = "You said: chat %d | image: %s" % (i, "1x1" if image else "none")
                assert client.complete("chat %d" % i, images=image) == expected
        session.close()
        assert shaper.connections == 1


def test_eight_sequential_chats_over_plain_http_use_one_connection(gradio_server):
    with Shaper("127.0.0.1", gradio_server.port, rtt=0) as shaper:
        with QVQClient(base_url=shaper.url_for("http")) as client:
            for i in range(8):
                assert "".join(client.chat("chat %d" % i)) == "You said: chat %d | image: none" % i
        assert shaper.connections == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_idle_connections_closed_under_the_client_are_not_errors(gradio_tls_server, certs, protocol):
    with Shaper("127.0.0.1", gradio_tls_server.port, rtt=RTT) as shaper:
        session = trusting(certs)
        with QVQClient(base_url=shaper.url_for("https"), protocol=protocol, session=session) as client:
            for round_number in range(1, 4):
                assert client.complete("hi") == "You said: hi | image: none"
                shaper.close_idle()
                wait_for(lambda: not [c for c in shaper.connection_info() if c.is_open], "the relay to close")
                assert shaper.connections == round_number
            assert client.complete("hi") == "You said: hi | image: none"
        session.close()


# -- stalls, deadlines and cancel over TLS at 40 ms RTT ---------------------------------------


@pytest.fixture
def shaped_tls(gradio_tls_server, certs):
    """(base URL through a 40 ms RTT shaper, session trusting the CA)."""
    with Shaper("127.0.0.1", gradio_tls_server.port, rtt=RTT) as shaper:
        session = trusting(certs)
        yield shaper.url_for("https"), session
        session.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_stall_over_tls_is_a_read_timeout(shaped_tls, protocol):
    url, session = shaped_tls
    with QVQClient(base_url=url, protocol=protocol, session=session, timeout=(5, 1)) as client:
        with pytest.raises(APITimeoutError) as info:
            client.complete("sleep 4")
    assert "read timeout" in str(info.value)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_deadline_over_tls_ends_a_slow_chat(shaped_tls, gradio_tls_server, request, protocol):
    url, session = shaped_tls
    record = record_id(request, "deadline")
    with QVQClient(base_url=url, protocol=protocol, session=session) as client:
        with pytest.raises(APITimeoutError) as info:
            client.complete("slow %s 2000" % record, deadline=1.5)
    assert "deadline" in str(info.value)
    wait_for(lambda: gradio_tls_server.app_stopped(record), "the app to stop")
    assert gradio_tls_server.ticks(record) < 100


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_cancel_over_tls_stops_the_app(shaped_tls, gradio_tls_server, request, protocol):
    url, session = shaped_tls
    record = record_id(request, "cancel")
    with QVQClient(base_url=url, protocol=protocol, session=session) as client:
        chunks = client.chat("slow %s 2000" % record)
        assert next(chunks).startswith("tick 0")
        chunks.close()
        wait_for(lambda: gradio_tls_server.app_stopped(record), "the app to stop")
        assert gradio_tls_server.ticks(record) < 100
        assert client.complete("hi") == "You said: hi | image: none"  # the client goes on


# -- through a real proxy --------------------------------------------------------------------


@pytest.fixture(scope="module")
def http_proxy():
    with start_proxy() as proxy:
        yield proxy


@pytest.fixture(scope="module")
def https_proxy(certs):
    with start_proxy(tls_certs=certs) as proxy:
        yield proxy


def seen_by(proxy, since):
    return proxy.requests()[since:]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_plain_http_forwarding_through_a_proxy(gradio_server, http_proxy, protocol):
    before = len(http_proxy.requests())
    proxies = {"http": http_proxy.url}
    with QVQClient(base_url=gradio_server.base_url, protocol=protocol, proxies=proxies) as client:
        assert "".join(client.chat("words 20")) == " ".join("w%d" % i for i in range(20))
    paths = [r.path for r in seen_by(http_proxy, before)]
    stream = "/gradio_api/queue/data" if protocol == "queue" else "/gradio_api/call/generate/"
    assert any(path.startswith(stream) for path in paths), paths  # the stream went through it


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_https_through_a_connect_tunnel(gradio_tls_server, certs, http_proxy, protocol):
    before = len(http_proxy.requests())
    session = trusting(certs)
    proxies = {"https": http_proxy.url}
    with QVQClient(base_url=gradio_tls_server.base_url, protocol=protocol, proxies=proxies, session=session) as c:
        for _ in range(3):
            assert c.complete("hi", images=PNG) == "You said: hi | image: 1x1"
    session.close()
    seen = seen_by(http_proxy, before)
    assert [r.method for r in seen] == ["CONNECT"]  # one tunnel for the three chats
    assert seen[0].target.endswith(":%d" % gradio_tls_server.port)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_https_through_an_https_proxy_tls_in_tls(gradio_tls_server, certs, https_proxy, protocol):
    assert https_proxy.url.startswith("https://")
    before = len(https_proxy.requests())
    session = trusting(certs)
    proxies = {"https": https_proxy.url}
    with QVQClient(base_url=gradio_tls_server.base_url, protocol=protocol, proxies=proxies, session=session) as c:
        assert "".join(c.chat("words 40")) == " ".join("w%d" % i for i in range(40))
    session.close()
    assert [r.method for r in seen_by(https_proxy, before)] == ["CONNECT"]


def test_close_aborts_a_stream_through_an_https_proxy_at_once(gradio_tls_server, certs, https_proxy, request):
    """TLS in TLS has no plain socket on top: close() still ends the blocked read at once."""
    record = record_id(request, "tlsintls")
    session = trusting(certs)
    client = QVQClient(base_url=gradio_tls_server.base_url, proxies={"https": https_proxy.url}, session=session)
    errors = []
    first_text = threading.Event()
    texts = []

    def chat():
        try:
            for event in client.events("slow %s 2000" % record):
                if isinstance(event, TextUpdate):
                    texts.append(event)
                    first_text.set()
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=chat)
    thread.start()
    assert first_text.wait(WAIT_LIMIT)
    client.close()
    thread.join(WAIT_LIMIT)
    assert not thread.is_alive(), "close() did not end the blocked read"
    assert len(errors) == 1 and isinstance(errors[0], APIConnectionError), errors
    assert "was closed" in str(errors[0])
    wait_for(lambda: gradio_tls_server.app_stopped(record), "the app to stop")
    assert gradio_tls_server.ticks(record) < 100
    session.close()
