"""The public surface of qvq_sdk: __all__, __version__, QVQClient's contract, and what
a client checks before it sends anything (nothing here may touch the network)."""

import base64
import configparser
import importlib
import inspect
import os
import re
import socket
import types

import pytest
import requests
from image_samples import GIF, PNG

import qvq_sdk
from qvq_sdk import InputError, QVQClient
from qvq_sdk._space import space_url

SETUP_CFG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "setup.cfg")
TOKEN = "hf_SECRETtokenVALUE0123456789"
SESSION_REQUEST = requests.Session.request  # before no_network replaces it


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to send a request or open a connection fails the test."""
    sent = []

    def refuse(*args, **kwargs):
        sent.append((args, kwargs))
        raise AssertionError("a request was sent: %r %r" % (args[1:3], kwargs))

    monkeypatch.setattr(requests.Session, "request", refuse)
    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return sent


# -- __all__ and __version__ ------------------------------------------------------------------


def public_names():
    return sorted(
        name
        for name in dir(qvq_sdk)
        if not name.startswith("_") and not isinstance(getattr(qvq_sdk, name), types.ModuleType)
    )


def test_all_is_sorted():
    assert qvq_sdk.__all__ == sorted(qvq_sdk.__all__)


def test_all_has_no_duplicates():
    assert len(set(qvq_sdk.__all__)) == len(qvq_sdk.__all__)


def test_all_is_complete():
    assert sorted(set(qvq_sdk.__all__) - {"__version__"}) == public_names()
    assert "__version__" in qvq_sdk.__all__


@pytest.mark.parametrize("module", ["qvq_sdk.errors", "qvq_sdk._events"])
def test_all_exports_every_public_module_export(module):
    exported = importlib.import_module(module).__all__
    assert set(exported) <= set(qvq_sdk.__all__)


@pytest.mark.parametrize("name", qvq_sdk.__all__)
def test_every_name_in_all_is_importable(name):
    namespace = {}
    exec("from qvq_sdk import %s" % name, namespace)
    assert namespace[name] is getattr(qvq_sdk, name)


def test_star_import_gives_exactly_all():
    namespace = {}
    exec("from qvq_sdk import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(qvq_sdk.__all__)


def test_version_is_setup_cfg_attr():
    parser = configparser.ConfigParser()
    assert parser.read(SETUP_CFG) == [SETUP_CFG]
    declared = parser.get("metadata", "version")
    match = re.match(r"^attr:\s*([\w.]+)\.(\w+)$", declared)
    assert match, declared
    module, attribute = match.groups()
    version = getattr(importlib.import_module(module), attribute)
    assert version == qvq_sdk.__version__
    assert isinstance(qvq_sdk.__version__, str)
    assert re.match(r"^\d+\.\d+\.\d+([ab]|rc|\.dev|\.post)?\d*$", qvq_sdk.__version__)


# -- QVQClient's contract -------------------------------------------------------------------


def test_client_signature():
    parameters = list(inspect.signature(QVQClient).parameters.values())
    assert [(p.name, p.kind, p.default) for p in parameters] == [
        ("token", inspect.Parameter.POSITIONAL_OR_KEYWORD, None),
        ("space", inspect.Parameter.KEYWORD_ONLY, "Qwen/QVQ-72B-preview"),
        ("base_url", inspect.Parameter.KEYWORD_ONLY, None),
        ("protocol", inspect.Parameter.KEYWORD_ONLY, None),
        ("model", inspect.Parameter.KEYWORD_ONLY, None),
        ("timeout", inspect.Parameter.KEYWORD_ONLY, (10, 60)),
        ("max_retries", inspect.Parameter.KEYWORD_ONLY, 2),
        ("proxies", inspect.Parameter.KEYWORD_ONLY, None),
        ("session", inspect.Parameter.KEYWORD_ONLY, None),
        ("deadline", inspect.Parameter.KEYWORD_ONLY, None),
        ("wake_timeout", inspect.Parameter.KEYWORD_ONLY, 300.0),
    ]


@pytest.mark.parametrize("method", ["chat", "complete", "events"])
def test_call_signatures(method):
    parameters = list(inspect.signature(getattr(QVQClient, method)).parameters.values())
    assert [(p.name, p.kind, p.default) for p in parameters[1:]] == [
        ("messages", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("images", inspect.Parameter.POSITIONAL_OR_KEYWORD, None),
        ("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, None),
        ("deadline", inspect.Parameter.KEYWORD_ONLY, None),
        ("max_tokens", inspect.Parameter.KEYWORD_ONLY, None),
        ("temperature", inspect.Parameter.KEYWORD_ONLY, None),
        ("extra_body", inspect.Parameter.KEYWORD_ONLY, None),
    ]


def test_only_token_is_positional():
    with pytest.raises(TypeError):
        QVQClient(None, "Qwen/QVQ-72B-preview")


def test_class_attributes():
    assert QVQClient.label == "Qwen QVQ-72B"
    assert QVQClient.default_model == "qwen-qvq-72b-preview"
    assert QVQClient.default_vision_model == "qwen-qvq-72b-preview"
    assert QVQClient.model_aliases == {"qvq-72b": "qwen-qvq-72b-preview"}


@pytest.mark.parametrize(
    "kwargs, base_url",
    [
        pytest.param({}, "https://qwen-qvq-72b-preview.hf.space", id="default"),
        pytest.param({"token": TOKEN}, "https://qwen-qvq-72b-preview.hf.space", id="token"),
        pytest.param({"space": "someone/QVQ-copy"}, "https://someone-qvq-copy.hf.space", id="space"),
        pytest.param({"base_url": "http://127.0.0.1:7860/"}, "http://127.0.0.1:7860", id="base-url"),
        pytest.param(
            {"protocol": "call", "timeout": 5, "max_retries": 0, "proxies": {"https": "http://proxy:3128"}},
            "https://qwen-qvq-72b-preview.hf.space",
            id="options",
        ),
        pytest.param({"session": requests.Session()}, "https://qwen-qvq-72b-preview.hf.space", id="session"),
    ],
)
def test_constructing_a_client_sends_nothing(no_network, kwargs, base_url):
    client = QVQClient(**kwargs)
    assert client.base_url == base_url
    assert no_network == []


def test_client_options_are_kept():
    client = QVQClient(protocol="call", timeout=(3, 30.5), max_retries=0)
    assert (client.protocol, client.timeout, client.max_retries) == ("call", (3.0, 30.5), 0)
    assert QVQClient(timeout=7).timeout == (7.0, 7.0)


@pytest.mark.parametrize("source", ["argument", "HF_TOKEN", "file"])
def test_repr_never_contains_the_token(monkeypatch, clean_environment, source):
    if source == "HF_TOKEN":
        monkeypatch.setenv("HF_TOKEN", TOKEN)
    elif source == "file":
        path = clean_environment / ".cache" / "huggingface" / "token"
        path.parent.mkdir(parents=True)
        path.write_text(TOKEN)
    client = QVQClient(TOKEN if source == "argument" else None)
    assert "SECRET" not in repr(client)
    assert "SECRET" not in str(client)
    assert repr(client) == "QVQClient(base_url='https://qwen-qvq-72b-preview.hf.space', protocol='queue')"


class NotASession:
    def request(self, *args, **kwargs):
        raise AssertionError("used")


@pytest.mark.parametrize(
    "kwargs, where",
    [
        pytest.param({"protocol": "sse"}, "protocol", id="unknown-protocol"),
        pytest.param({"protocol": "QUEUE"}, "protocol", id="protocol-case"),
        pytest.param({"protocol": ""}, "protocol", id="protocol-empty"),
        pytest.param({"protocol": "openai"}, "base_url", id="openai-without-base-url"),
        pytest.param({"timeout": -1}, "timeout", id="negative-timeout"),
        pytest.param({"timeout": 0}, "timeout", id="zero-timeout"),
        pytest.param({"timeout": (10, -1)}, "timeout", id="negative-read-timeout"),
        pytest.param({"timeout": (10,)}, "timeout", id="one-item-tuple"),
        pytest.param({"timeout": (1, 2, 3)}, "timeout", id="three-item-tuple"),
        pytest.param({"timeout": "10"}, "timeout", id="str-timeout"),
        pytest.param({"timeout": True}, "timeout", id="bool-timeout"),
        pytest.param({"timeout": float("inf")}, "timeout", id="infinite-timeout"),
        pytest.param({"timeout": float("nan")}, "timeout", id="nan-timeout"),
        pytest.param({"timeout": None}, "timeout", id="none-timeout"),
        pytest.param({"max_retries": -1}, "max_retries", id="negative-retries"),
        pytest.param({"max_retries": 1.5}, "max_retries", id="float-retries"),
        pytest.param({"max_retries": True}, "max_retries", id="bool-retries"),
        pytest.param({"max_retries": "2"}, "max_retries", id="str-retries"),
        pytest.param({"base_url": "127.0.0.1:7860"}, "base_url", id="base-url-without-scheme"),
        pytest.param({"base_url": "ftp://example.com"}, "base_url", id="base-url-ftp"),
        pytest.param({"space": "QVQ-72B-preview"}, "space", id="space-without-owner"),
        pytest.param({"space": "https://huggingface.co/spaces/Qwen/QVQ-72B-preview"}, "space", id="space-url"),
        pytest.param({"token": "hf_abc\ndef"}, "token", id="token-with-newline"),
        pytest.param({"token": True}, "token", id="token-true"),
        pytest.param({"proxies": ["http://proxy:3128"]}, "proxies", id="proxies-list"),
        pytest.param({"proxies": "http://proxy:3128"}, "proxies", id="proxies-str"),
        pytest.param({"proxies": {"https": 3128}}, "proxies", id="proxies-bad-value"),
        pytest.param({"session": NotASession()}, "session", id="session-not-a-session"),
        pytest.param({"session": requests}, "session", id="session-module"),
    ],
)
def test_bad_options(no_network, kwargs, where):
    with pytest.raises(InputError) as info:
        QVQClient(**kwargs)
    assert info.value.input == where
    assert no_network == []


def test_bad_token_is_not_echoed():
    with pytest.raises(InputError) as info:
        QVQClient(TOKEN + "\n" + TOKEN)
    assert "SECRET" not in str(info.value)
    assert "SECRET" not in repr(info.value)


@pytest.mark.parametrize("variable", ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"])
def test_false_token_ignores_the_environment(monkeypatch, variable):
    monkeypatch.setenv(variable, "hf_abc\ndef")  # would be refused if it were read
    QVQClient(False)
    monkeypatch.setenv(variable, TOKEN)  # a good one: still not sent
    from qvq_sdk.testing import FakeSpace

    monkeypatch.setattr(requests.Session, "request", SESSION_REQUEST)  # the fake's adapter only: no socket
    space = FakeSpace().answer("ok")
    assert space.client(token=False).complete("hi") == "ok"
    assert [request.method for request in space.requests] == ["GET", "POST", "GET"]
    for request in space.requests:
        assert not {"Authorization", "X-HF-Authorization"} & set(request.headers)
        assert "SECRET" not in str(request.headers)
    space.answer("ok")
    assert space.client(token=None).complete("hi") == "ok"  # a Hugging Face token goes to Hugging Face only
    assert "Authorization" not in space.requests[-1].headers
    space.answer("ok")
    hf_space = space_url(space.space_id)  # the fake answers there too: a Hugging Face host
    assert space.client(token=None, base_url=hf_space).complete("hi") == "ok"  # for contrast
    assert space.requests[-1].headers["Authorization"] == "Bearer " + TOKEN


# -- QVQ_BASE_URL ---------------------------------------------------------------------------


def test_qvq_base_url_used_when_nothing_else_is_given(monkeypatch):
    monkeypatch.setenv("QVQ_BASE_URL", "http://127.0.0.1:7860/")
    client = QVQClient()
    assert client.base_url == "http://127.0.0.1:7860"


def test_qvq_base_url_ignored_with_a_space(monkeypatch):
    monkeypatch.setenv("QVQ_BASE_URL", "http://127.0.0.1:7860")
    assert QVQClient(space="someone/QVQ-copy").base_url == "https://someone-qvq-copy.hf.space"


def test_qvq_base_url_ignored_with_a_base_url(monkeypatch):
    monkeypatch.setenv("QVQ_BASE_URL", "http://127.0.0.1:7860")
    assert QVQClient(base_url="http://localhost:9000").base_url == "http://localhost:9000"


def test_empty_qvq_base_url_is_unset(monkeypatch):
    monkeypatch.setenv("QVQ_BASE_URL", "")
    assert QVQClient().base_url == "https://qwen-qvq-72b-preview.hf.space"


def test_bad_qvq_base_url_is_an_input_error(monkeypatch):
    monkeypatch.setenv("QVQ_BASE_URL", "localhost:7860")
    with pytest.raises(InputError) as info:
        QVQClient()
    assert info.value.input == "base_url"


# -- checks at the call, before anything is sent --------------------------------------------

CALLS = ["chat", "complete", "events"]


@pytest.fixture
def client():
    return QVQClient(False)


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(
    "messages, images, where",
    [
        pytest.param("", None, "messages", id="empty-prompt"),
        pytest.param(None, None, "messages", id="no-messages"),
        pytest.param([{"role": "bot", "content": "hi"}], None, "messages[0]", id="bad-role"),
        pytest.param("hi", b"not an image", "images[0]", id="bad-image-bytes"),
        pytest.param("hi", [b""], "images[0]", id="empty-image"),
        pytest.param("hi", "ftp://example.com/cat.png", "images[0]", id="bad-image-scheme"),
        pytest.param(
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}]}],
            None,
            "messages (image part)",
            id="bad-image-part",
        ),
    ],
)
def test_bad_input_raises_at_the_call(no_network, client, call, messages, images, where):
    with pytest.raises(InputError) as info:
        getattr(client, call)(messages, images=images)
    assert info.value.input == where
    assert no_network == []


def test_missing_image_file_raises_at_the_call(no_network, client, tmp_path):
    with pytest.raises(InputError) as info:
        client.chat("hi", images=[str(tmp_path / "missing.png")])
    assert info.value.input == "images[0]"
    assert no_network == []


@pytest.mark.parametrize("model", [None, "qwen-qvq-72b-preview", "qvq-72b"])
@pytest.mark.parametrize("call", ["chat", "events"])
def test_listed_models_are_accepted(no_network, client, call, model):
    stream = getattr(client, call)("hi", model=model)
    stream.close()  # never started: nothing is sent
    assert no_network == []


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("model", ["gpt-4o", "QVQ-72B", "", "qwen-qvq-72b"])
def test_other_models_are_refused_with_the_list(no_network, client, call, model):
    with pytest.raises(InputError) as info:
        getattr(client, call)("hi", model=model)
    assert info.value.input == "model"
    assert "qwen-qvq-72b-preview" in str(info.value)
    assert "qvq-72b" in str(info.value)
    assert no_network == []


def test_models_lists_the_default_and_aliases():
    assert set(QVQClient.models) == {"qwen-qvq-72b-preview", "qvq-72b"}
    assert QVQClient.default_model in QVQClient.models


def image_part(url):
    return {"type": "image_url", "image_url": {"url": url}}


PNG_URI = "data:image/png;base64," + base64.b64encode(PNG).decode("ascii")


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(
    "messages, images, named",
    [
        pytest.param("compare", [PNG, GIF], ["images[0]", "images[1]"], id="two-in-images"),
        pytest.param("compare", (PNG, PNG), ["images[0]", "images[1]"], id="tuple-of-two"),
        pytest.param(
            [{"role": "user", "content": [{"type": "text", "text": "compare"}, image_part(PNG_URI)]}],
            [PNG],
            ["images[0]", "messages (image part)"],
            id="images-and-message-part",
        ),
        pytest.param(
            [{"role": "user", "content": [image_part(PNG_URI), image_part(PNG_URI)]}],
            None,
            ["messages (image part)"],
            id="two-message-parts",
        ),
        pytest.param(
            [
                {"role": "user", "content": [image_part(PNG_URI), {"type": "text", "text": "this"}]},
                {"role": "user", "content": [image_part(PNG_URI), {"type": "text", "text": "and this"}]},
            ],
            None,
            ["messages (image part)"],
            id="parts-in-two-messages",
        ),
        pytest.param("broken", [b"", b""], ["images[0]", "images[1]"], id="counted-before-loading"),
    ],
)
def test_more_than_one_image_is_refused(no_network, client, call, messages, images, named):
    with pytest.raises(InputError) as info:
        getattr(client, call)(messages, images=images)
    assert info.value.input == "images"
    for where in named:
        assert where in str(info.value)
    assert no_network == []


@pytest.mark.parametrize(
    "images",
    [
        pytest.param(PNG, id="bytes-alone"),
        pytest.param([PNG], id="list-of-one"),
        pytest.param((PNG,), id="tuple-of-one"),
        pytest.param(bytearray(PNG), id="bytearray-alone"),
        pytest.param([], id="empty-list"),
        pytest.param(None, id="none"),
    ],
)
def test_zero_or_one_image_is_accepted(no_network, client, images):
    client.chat("what is this?", images=images).close()
    assert no_network == []


def test_one_image_as_a_message_part_is_accepted(no_network, client):
    client.chat([{"role": "user", "content": [{"type": "text", "text": "what?"}, image_part(PNG_URI)]}]).close()
    assert no_network == []


def test_chat_returns_an_iterator_without_sending(no_network, client):
    stream = client.chat("hello")
    assert iter(stream) is stream
    assert no_network == []
    stream.close()


def test_closed_client_refuses_new_chats(no_network):
    client = QVQClient(False)
    client.close()
    with pytest.raises(qvq_sdk.QVQError):
        client.chat("hi")
    assert no_network == []


def test_context_manager_closes(no_network):
    with QVQClient(False) as client:
        assert isinstance(client, QVQClient)
    with pytest.raises(qvq_sdk.QVQError):
        client.complete("hi")
    assert no_network == []
