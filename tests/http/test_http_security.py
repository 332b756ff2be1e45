"""Security: where the token may go and where it must never show; TLS verification; and
nothing the server sends is evaluated, unpickled or opened as a local file.

- The token is not in ``str()``/``repr()`` of the client or of any error (nor anywhere
  in the error's chain of causes), not in any log record at DEBUG, and not in any part of
  a request to a host other than the Space (URL, headers or body) — even when the
  Space echoes the token back in an error.
- TLS verification is on for every request, unless the caller's own session turns it off.
- No server data is evaluated or unpickled (the package does not import the means to),
  and no path the server names is opened locally.
"""

from __future__ import annotations

import ast
import base64
import builtins
import io
import json
import logging
import os
import pickle
import sys
import threading
from urllib.parse import urlsplit

import pytest
import requests
import responses
from httpkit import (
    ANSWER,
    BASE,
    PNG,
    PREFIX,
    TOKEN,
    FakeSpace,
    call_events,
    queue_error_sse,
    sse_data_lines,
)

import qvq_sdk
from qvq_sdk import (
    APIStatusError,
    QVQClient,
    QVQError,
    StreamError,
)

SPACE_HOST = urlsplit(BASE).netloc
IMAGE_URL = "https://images.example.org/cat.png"
ELSEWHERE = "https://mirror.example.net"


def every_exception_in(error):
    """The error, its causes and contexts, and any exception held in their args."""
    seen, todo = [], [error]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__]
        todo += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
    return seen


def assert_no_token_in_error(error):
    for exc in every_exception_in(error):
        for text in (str(exc), repr(exc), repr(getattr(exc, "args", ()))):
            assert TOKEN not in text, "%s shows the token" % type(exc).__name__
        for attribute in ("body", "url", "message", "input"):
            assert TOKEN not in str(getattr(exc, attribute, "") or "")


def requests_elsewhere(rsps):
    return [call.request for call in rsps.calls if urlsplit(call.request.url).netloc != SPACE_HOST]


def assert_no_token_elsewhere(rsps):
    for request in requests_elsewhere(rsps):
        assert TOKEN not in request.url
        assert all(TOKEN not in str(value) for value in request.headers.values())
        body = request.body or b""
        assert TOKEN.encode() not in (body if isinstance(body, bytes) else body.encode("utf-8"))


# -- the client -------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["argument", "HF_TOKEN", "token-file"])
@pytest.mark.parametrize("where", ["space", "base_url"])
def test_the_token_is_not_in_the_clients_str_or_repr(monkeypatch, tmp_path, source, where):
    if source == "HF_TOKEN":
        monkeypatch.setenv("HF_TOKEN", TOKEN)
    elif source == "token-file":
        (tmp_path / "hf-home").mkdir(exist_ok=True)
        (tmp_path / "hf-home" / "token").write_text(TOKEN + "\n")
    # a Hugging Face host: a token found in the environment goes there
    options = {"space": "Qwen/QVQ-72B-preview"} if where == "space" else {"base_url": "https://someone-qvq.hf.space"}
    client = QVQClient(token=TOKEN if source == "argument" else None, **options)
    assert client._transport.authenticated  # the token was found...
    for text in (str(client), repr(client), format(client), "%s %r" % (client, client)):
        assert TOKEN not in text  # ...and is not shown


# -- errors -----------------------------------------------------------------------------------


def space_failing_with(rsps, kind):
    """Arranges a Space that fails in one way; returns (protocol, images)."""
    space = FakeSpace(rsps)
    if kind == "connection":
        rsps.add(responses.GET, BASE + "/config", body=requests.exceptions.ConnectionError("refused"))
        return "queue", None
    if kind == "timeout":
        rsps.add(responses.GET, BASE + "/config", body=requests.exceptions.ReadTimeout("read timed out"))
        return "queue", None
    if kind.isdigit():
        rsps.add(responses.GET, BASE + "/config", status=int(kind), json={"detail": "Not allowed"})
        return "queue", None
    space.config()
    if kind == "upload":
        rsps.add(responses.POST, PREFIX + "/upload", json=[])
        return "queue", PNG
    if kind == "image-url-404":
        rsps.add(responses.GET, IMAGE_URL, status=404)
        return "queue", IMAGE_URL
    if kind == "app-error":
        space.queue(lambda event_id: queue_error_sse(event_id, "The image is too dark."))
        return "queue", None
    if kind == "quota":
        space.queue(lambda event_id: queue_error_sse(event_id, "You have exceeded your GPU quota. Retry in 0:01:00"))
        return "queue", None
    if kind == "bad-json":
        space.queue(lambda event_id: b"data: {nope\n\n")
        return "queue", None
    if kind == "cut-off":
        space.call(call_events([("generating", ["Hel"])]))
        return "call", None
    if kind == "call-error":
        space.call(call_events([("error", None)]))
        return "call", None
    raise AssertionError(kind)


FAILURES = [
    "connection",
    "timeout",
    "401",
    "403",
    "404",
    "410",
    "429",
    "500",
    "503",
    "upload",
    "image-url-404",
    "app-error",
    "quota",
    "bad-json",
    "cut-off",
    "call-error",
]


@pytest.mark.parametrize("kind", FAILURES)
def test_the_token_is_in_no_error_nor_its_causes(rsps, kind):
    protocol, images = space_failing_with(rsps, kind)
    client = QVQClient(token=TOKEN, base_url=BASE, protocol=protocol, max_retries=1)
    with pytest.raises(QVQError) as info:
        client.complete("hi", images=images)
    assert_no_token_in_error(info.value)
    assert_no_token_elsewhere(rsps)


def echo_cases():
    """Spaces (or proxies) that repeat the token back in what they send."""
    detail = "Invalid credentials: Bearer " + TOKEN
    return {
        "401-json": lambda rsps: rsps.add(responses.GET, BASE + "/config", status=401, json={"detail": detail}),
        "500-text": lambda rsps: rsps.add(responses.GET, BASE + "/config", status=500, body=detail),
        "app-error": lambda rsps: FakeSpace(rsps).config().queue(lambda e: queue_error_sse(e, detail)),
        "bad-event": lambda rsps: FakeSpace(rsps).config().queue(lambda e: ("data: " + detail + "\n\n").encode()),
        "not-json": lambda rsps: rsps.add(responses.GET, BASE + "/config", body="<html>" + detail + "</html>"),
        "no-event-id": lambda rsps: (
            FakeSpace(rsps).config(),
            rsps.add(responses.POST, PREFIX + "/queue/join", json={"detail": detail}),
        ),
    }


@pytest.mark.parametrize("case", sorted(echo_cases()))
def test_a_space_echoing_the_token_does_not_put_it_in_the_error(rsps, case):
    echo_cases()[case](rsps)
    client = QVQClient(token=TOKEN, base_url=BASE, max_retries=0)
    with pytest.raises(QVQError) as info:
        client.complete("hi")
    assert_no_token_in_error(info.value)


# -- logs ---------------------------------------------------------------------------------------


def test_the_token_is_in_no_log_record_at_debug(rsps, caplog):
    caplog.set_level(logging.DEBUG)  # every logger: qvq_sdk, urllib3, requests
    rsps.add(responses.GET, IMAGE_URL, body=PNG, content_type="image/png")
    rsps.add(responses.GET, BASE + "/config", body=requests.exceptions.ConnectionError("refused"))
    rsps.add(responses.GET, BASE + "/config", status=307, headers={"Location": ELSEWHERE + "/config"})
    rsps.add(responses.GET, ELSEWHERE + "/config", status=503, body="waking up")
    rsps.add(responses.GET, BASE + "/config", status=307, headers={"Location": ELSEWHERE + "/config"})
    FakeSpace(rsps, base=ELSEWHERE).config()
    FakeSpace(rsps).upload().queue()
    client = QVQClient(token=TOKEN, base_url=BASE, max_retries=3)
    assert client.complete("hi", images=IMAGE_URL) == ANSWER
    with pytest.raises(APIStatusError):  # and a failure, logged too
        rsps.add(responses.POST, PREFIX + "/queue/join", status=401, json={"detail": "no"})
        client.complete("hi")

    assert any(record.name == "qvq_sdk" for record in caplog.records)
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in repr(record.args)
    assert TOKEN not in caplog.text
    assert_no_token_elsewhere(rsps)


# -- where the token goes -----------------------------------------------------------------------

STAGES = [("GET", "/config"), ("POST", "/gradio_api/upload"), ("POST", "/gradio_api/queue/join")]


@pytest.mark.parametrize("method, path", STAGES, ids=[path for _, path in STAGES])
def test_the_token_goes_to_the_space_and_nowhere_else(rsps, method, path):
    """The image host and a redirect target get nothing of the token; the Space gets it."""
    rsps.add(responses.GET, IMAGE_URL, body=PNG, content_type="image/png")
    rsps.add(method, BASE + path, status=307, headers={"Location": ELSEWHERE + path})
    elsewhere = FakeSpace(rsps, base=ELSEWHERE).config().upload()
    elsewhere.queue()
    FakeSpace(rsps).config().upload().queue()
    assert QVQClient(token=TOKEN, base_url=BASE).complete("hi", images=IMAGE_URL) == ANSWER

    assert len(requests_elsewhere(rsps)) == 2  # the image, and the redirected request
    assert_no_token_elsewhere(rsps)
    space_requests = [c.request for c in rsps.calls if urlsplit(c.request.url).netloc == SPACE_HOST]
    assert len(space_requests) == 4
    assert all(request.headers["Authorization"] == "Bearer " + TOKEN for request in space_requests)


def test_the_token_is_never_in_a_url_or_a_body(rsps):
    rsps.add(responses.GET, IMAGE_URL, body=PNG, content_type="image/png")
    for protocol in ("queue", "call"):
        FakeSpace(rsps).config().upload().queue().call()
        QVQClient(token=TOKEN, base_url=BASE, protocol=protocol).complete("hi", images=IMAGE_URL)
    for call in rsps.calls:
        assert TOKEN not in call.request.url
        body = call.request.body or b""
        assert TOKEN.encode() not in (body if isinstance(body, bytes) else body.encode())


# -- TLS ------------------------------------------------------------------------------------------


def test_tls_verification_is_on_for_every_request(rsps):
    rsps.add(responses.GET, IMAGE_URL, body=PNG, content_type="image/png")
    FakeSpace(rsps, base="https://qwen-qvq-72b-preview.hf.space").config().upload().queue()
    assert QVQClient(token=TOKEN).complete("hi", images=IMAGE_URL) == ANSWER
    assert len(rsps.calls) == 5
    assert all(call.request.req_kwargs["verify"] is True for call in rsps.calls)


def test_a_ca_bundle_from_the_environment_still_verifies(rsps, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/my-company-ca.pem")
    FakeSpace(rsps).config().queue()
    assert QVQClient(base_url=BASE).complete("hi") == ANSWER
    assert {call.request.req_kwargs["verify"] for call in rsps.calls} == {"/etc/my-company-ca.pem"}


@pytest.mark.parametrize("verify", [False, "/etc/my-ca.pem"])
def test_only_the_callers_own_session_changes_verification(rsps, verify):
    FakeSpace(rsps).config().queue()
    session = requests.Session()
    session.verify = verify
    assert QVQClient(base_url=BASE, session=session).complete("hi") == ANSWER
    assert {call.request.req_kwargs["verify"] for call in rsps.calls} == {verify}


# -- no evaluation, no unpickling, no local paths ----------------------------------------------------

FORBIDDEN_BUILTINS = {"eval", "exec", "compile", "__import__"}  # called by bare name
FORBIDDEN_ATTRIBUTES = {"literal_eval", "eval", "exec"}  # called as x.name
FORBIDDEN_MODULES = {"pickle", "cPickle", "marshal", "shelve", "dill", "yaml", "subprocess", "importlib"}


def package_sources():
    root = os.path.dirname(qvq_sdk.__file__)
    for name in sorted(os.listdir(root)):
        if name.endswith(".py"):
            with open(os.path.join(root, name), encoding="utf-8") as f:
                yield name, ast.parse(f.read())


def test_the_package_has_no_means_to_evaluate_or_unpickle():
    found = []
    for name, tree in package_sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(name, a.name) for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
                found.append((name, node.module))
            elif isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id in FORBIDDEN_BUILTINS:
                    found.append((name, func.id))
                elif isinstance(func, ast.Attribute) and func.attr in FORBIDDEN_ATTRIBUTES:
                    found.append((name, func.attr))
            elif isinstance(node, ast.keyword) and node.arg == "verify":
                found.append((name, "verify= (only the caller's session may change TLS verification)"))
    assert found == []


def test_code_and_pickles_in_an_answer_are_returned_as_text(rsps):
    payloads = [
        "__import__('os').system('echo pwned')",
        base64.b64encode(pickle.dumps({"x": 1})).decode(),
        pickle.dumps("x", protocol=0).decode("latin-1"),
        '{"__class__": "os.system", "py/object": "subprocess.Popen"}',
    ]
    text = "\n".join(payloads)
    FakeSpace(rsps).config().queue(
        lambda event_id: sse_data_lines(
            [
                {"msg": "process_completed", "event_id": event_id, "output": {"data": [text]}, "success": True},
            ]
        )
    )
    assert QVQClient(base_url=BASE).complete("hi") == text


class OpenedPaths:
    """Records the paths opened in this process while active (a permanent audit hook, so
    every way of opening a file is seen: open(), io.open, os.open, pathlib).

    CPython 3.7 has no audit hooks (``sys.addaudithook`` is 3.8+): there, while active,
    ``open``/``io.open`` (which pathlib calls too) and ``os.open`` are wrapped instead.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.paths = None
        self._patches = []
        if hasattr(sys, "addaudithook"):
            sys.addaudithook(self._hook)
        else:
            self._patches = [(builtins, "open"), (io, "open"), (os, "open")]

    def _hook(self, event, args):
        if event == "open" and self.paths is not None and args and isinstance(args[0], (str, bytes)):
            with self._lock:
                self.paths.append(os.fsdecode(args[0]))

    def _wrap(self, real):
        def recording_open(file, *args, **kwargs):
            if isinstance(file, (str, bytes, os.PathLike)):
                self._hook("open", (os.fspath(file),))
            return real(file, *args, **kwargs)

        return recording_open

    def __enter__(self):
        self.paths = []
        self._saved = [(owner, name, getattr(owner, name)) for owner, name in self._patches]
        for owner, name, real in self._saved:
            setattr(owner, name, self._wrap(real))
        return self

    def __exit__(self, *exc_info):
        for owner, name, real in self._saved:
            setattr(owner, name, real)
        self.paths, self.recorded = None, list(self.paths)


OPENED = OpenedPaths()


def test_paths_the_server_names_are_never_opened_locally(rsps, tmp_path):
    secret = tmp_path / "server-side-secret.png"  # exists here, as /etc/passwd would
    secret.write_bytes(PNG)
    named = str(secret)
    space = FakeSpace(rsps).config()
    rsps.add(responses.POST, PREFIX + "/upload", json=[named])
    file_output = {"path": named, "url": "file://" + named, "meta": {"_type": "gradio.FileData"}}
    space.queue(
        lambda event_id: sse_data_lines(
            [
                {"msg": "process_generating", "event_id": event_id, "output": {"data": [file_output]}, "success": True},
            ]
        )
    )
    with OPENED:
        with pytest.raises(StreamError):
            QVQClient(base_url=BASE).complete("hi", images=PNG)
    assert named not in OPENED.recorded
    assert json.loads(rsps.calls[-2].request.body)["data"][0]["path"] == named  # sent back as a name only


def test_the_audit_hook_does_see_a_local_image_being_opened(tmp_path, rsps):
    """The control for the test above: an image path given by the caller is opened."""
    image = tmp_path / "mine.png"
    image.write_bytes(PNG)
    FakeSpace(rsps).config().upload().queue()
    with OPENED:
        assert QVQClient(base_url=BASE).complete("hi", images=str(image)) == ANSWER
    assert str(image) in OPENED.recorded
