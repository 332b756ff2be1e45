"""The bad-input table: every row is an InputError naming the bad input, raised before any
request reaches the Space.

The same table is in docs/reliability.md (a test below keeps the two in step). Each call
row runs through ``chat()``, ``complete()`` and ``events()``, inside a ``responses`` mock
where only the image host's URLs are registered: the test then checks that every request
that was made went to the image host, and none to the Space. (Option rows fail in the
constructor, which never sends anything; the mock shows that too.)
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import pytest
import responses
from image_samples import PNG

from qvq_sdk import APIConnectionError, InputError, QVQClient

TOKEN = "hf_BadInputTableToken0123456789"
IMAGE_HOST = "http://127.0.0.1:9"  # only ever answered by the responses mock
DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "reliability.md")


@dataclass(frozen=True)
class Bad:
    """One row: ``call`` (a chat's arguments) or ``options`` (the client's) holds the bad input."""

    id: str
    input: str  # what InputError.input must be
    messages: Any = "hi"
    images: Any = None  # a value, or a function of the files fixture
    call: Dict[str, Any] = field(default_factory=dict)
    options: Optional[Dict[str, Any]] = None


def text_part(text):
    return {"type": "text", "text": text}


def user(content):
    return [{"role": "user", "content": content}]


BAD_INPUTS = [
    # messages
    Bad("messages-none", "messages", messages=None),
    Bad("messages-empty-string", "messages", messages=""),
    Bad("messages-blank-string", "messages", messages=" \n\t"),
    Bad("messages-empty-list", "messages", messages=[]),
    Bad("messages-a-dict-not-a-list", "messages", messages={"role": "user", "content": "hi"}),
    Bad("messages-bytes", "messages", messages=b"hi"),
    Bad("message-none", "messages[0]", messages=[None]),
    Bad("message-a-string", "messages[0]", messages=["hi"]),
    Bad("message-wrong-role", "messages[0]", messages=[{"role": "robot", "content": "hi"}]),
    Bad("message-no-role", "messages[0]", messages=[{"content": "hi"}]),
    Bad("message-no-content", "messages[0]", messages=[{"role": "user"}]),
    Bad("second-message-wrong-role", "messages[1]", messages=[*user("hi"), {"role": "tool", "content": "x"}]),
    Bad("content-none", "messages[0].content", messages=user(None)),
    Bad("content-a-number", "messages[0].content", messages=user(42)),
    Bad("content-empty", "messages[0].content", messages=user("   ")),
    Bad("content-no-parts", "messages[0].content", messages=user([])),
    Bad("part-a-string", "messages[0].content[0]", messages=user(["hi"])),
    Bad("part-unknown-type", "messages[0].content[0]", messages=user([{"type": "audio", "audio": "x"}])),
    Bad("text-part-without-text", "messages[0].content[0]", messages=user([{"type": "text"}])),
    Bad("text-part-text-not-a-string", "messages[0].content[0]", messages=user([{"type": "text", "text": 5}])),
    Bad("image-part-without-url", "messages[0].content[1]", messages=user([text_part("hi"), {"type": "image_url"}])),
    Bad(
        "image-part-empty-url",
        "messages[0].content[1]",
        messages=user([text_part("hi"), {"type": "image_url", "image_url": {"url": ""}}]),
    ),
    # images
    Bad("image-missing-file", "images[0]", images=lambda files: files["missing"]),
    Bad("image-a-directory", "images[0]", images=lambda files: files["directory"]),
    Bad("image-empty-bytes", "images[0]", images=b""),
    Bad("image-empty-file", "images[0]", images=lambda files: files["empty"]),
    Bad("image-a-text-file", "images[0]", images=lambda files: files["text"]),
    Bad("image-truncated-header", "images[0]", images=PNG[:20]),
    Bad("image-text-mode-file", "images[0]", images=lambda files: open(files["png"])),
    Bad("image-a-number", "images[0]", images=42),
    Bad("two-images", "images", images=[PNG, PNG]),
    Bad(
        "image-argument-and-image-part",
        "images",
        images=PNG,
        messages=user([text_part("hi"), {"type": "image_url", "image_url": {"url": IMAGE_HOST + "/cat.png"}}]),
    ),
    Bad("image-url-404", "images[0]", images=IMAGE_HOST + "/missing.png"),
    Bad("image-url-not-an-image", "images[0]", images=IMAGE_HOST + "/page.html"),
    Bad(
        "image-part-url-404",
        "messages (image part)",
        messages=user([text_part("hi"), {"type": "image_url", "image_url": {"url": IMAGE_HOST + "/missing.png"}}]),
    ),
    Bad("image-url-unsupported-scheme", "images[0]", images="ftp://127.0.0.1/cat.png"),
    Bad("data-uri-without-comma", "images[0]", images="data:image/png;base64"),
    Bad("data-uri-bad-base64", "images[0]", images="data:image/png;base64,iVBORw0K!!!"),
    Bad("data-uri-not-an-image", "images[0]", images="data:text/plain;base64," + base64.b64encode(b"hi").decode()),
    # options of one call
    Bad("unknown-model", "model", call={"model": "gpt-4o"}),
    Bad("negative-deadline", "deadline", call={"deadline": -1}),
    Bad("zero-deadline", "deadline", call={"deadline": 0}),
    # options of the client
    Bad("unknown-protocol", "protocol", options={"protocol": "websocket"}),
    Bad("negative-timeout", "timeout", options={"timeout": -1}),
    Bad("zero-read-timeout", "timeout", options={"timeout": (5, 0)}),
    Bad("timeout-a-string", "timeout", options={"timeout": "10"}),
    Bad("negative-retries", "max_retries", options={"max_retries": -1}),
    Bad("retries-a-float", "max_retries", options={"max_retries": 1.5}),
    Bad("base-url-without-scheme", "base_url", options={"base_url": "127.0.0.1:7860"}),
    Bad("base-url-ftp", "base_url", options={"base_url": "ftp://127.0.0.1"}),
    Bad("base-url-with-credentials", "base_url", options={"base_url": "http://user:pw@127.0.0.1:7860"}),
    Bad("space-id-without-owner", "space", options={"space": "QVQ-72B-preview"}),
    Bad("space-id-with-spaces", "space", options={"space": "Qwen/QVQ 72B"}),
    Bad("space-id-three-parts", "space", options={"space": "Qwen/QVQ/72B"}),
    Bad("token-with-a-newline", "token", options={"token": "hf_abc\ndef"}),
    Bad("token-true", "token", options={"token": True}),
    Bad("negative-client-deadline", "deadline", options={"deadline": -5}),
    Bad("proxies-a-string", "proxies", options={"proxies": "http://127.0.0.1:3128"}),
    Bad("session-not-a-session", "session", options={"session": object()}),
]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "directory").mkdir()
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("these are my notes, not a picture\n")
    (tmp_path / "real.png").write_bytes(PNG)
    return {
        "missing": str(tmp_path / "missing.png"),
        "directory": str(tmp_path / "directory"),
        "empty": str(tmp_path / "empty.png"),
        "text": tmp_path / "notes.png",  # a Path, for once
        "png": str(tmp_path / "real.png"),
    }


@pytest.fixture
def image_host():
    """The only URLs that answer: a PNG, a 404 and an HTML page on the image host."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.GET, IMAGE_HOST + "/cat.png", body=PNG, content_type="image/png")
        mock.add(responses.GET, IMAGE_HOST + "/missing.png", status=404, body="no such file")
        mock.add(responses.GET, IMAGE_HOST + "/page.html", body="<html>hello</html>", content_type="text/html")
        yield mock


def space_requests(mock):
    return [call.request.url for call in mock.calls if not call.request.url.startswith(IMAGE_HOST + "/")]


def check(error: InputError, row: Bad) -> None:
    assert error.input == row.input
    assert row.input.split("[")[0].split(" ")[0] in str(error)  # the message names the input
    assert TOKEN not in str(error) and TOKEN not in repr(error)


CALL_ROWS = [pytest.param(row, id=row.id) for row in BAD_INPUTS if row.options is None]
OPTION_ROWS = [pytest.param(row, id=row.id) for row in BAD_INPUTS if row.options is not None]


@pytest.mark.parametrize("method", ["chat", "complete", "events"])
@pytest.mark.parametrize("row", CALL_ROWS)
def test_a_bad_call_is_an_input_error_before_any_request(row, method, files, image_host):
    images = row.images(files) if callable(row.images) else row.images
    client = QVQClient(token=TOKEN, space="Qwen/QVQ-72B-preview", max_retries=0)
    try:
        with pytest.raises(InputError) as info:
            getattr(client, method)(row.messages, images, **row.call)
    finally:
        client.close()
        if hasattr(images, "close"):
            images.close()
    check(info.value, row)
    assert space_requests(image_host) == []


@pytest.mark.parametrize("row", OPTION_ROWS)
def test_a_bad_option_is_an_input_error_in_the_constructor(row, image_host):
    options = dict(row.options)
    options.setdefault("token", TOKEN)
    with pytest.raises(InputError) as info:
        QVQClient(**options)
    check(info.value, row)
    assert len(image_host.calls) == 0


def test_the_table_has_at_least_30_rows_of_each_kind_it_promises():
    assert len(BAD_INPUTS) >= 30
    assert len({row.id for row in BAD_INPUTS}) == len(BAD_INPUTS)
    kinds = {row.input.split("[")[0].split(".")[0].split(" ")[0] for row in BAD_INPUTS}
    assert {"messages", "images", "protocol", "timeout", "max_retries", "base_url", "space", "token"} <= kinds


def test_the_table_is_in_the_docs():
    with open(DOCS, encoding="utf-8") as f:
        docs = f.read()
    rows = dict(re.findall(r"^\| `([a-z0-9-]+)` \| `([^`]+)` \|", docs, flags=re.M))
    missing = [row.id for row in BAD_INPUTS if row.id not in rows]
    assert missing == [], "rows missing from docs/reliability.md"
    wrong = [row.id for row in BAD_INPUTS if rows[row.id] != row.input]
    assert wrong == [], "rows whose input differs in docs/reliability.md"
    assert set(rows) == {row.id for row in BAD_INPUTS}, "rows in the docs that the test does not have"


def test_a_good_call_through_the_same_set_up_reaches_the_space(files, image_host):
    """The control: the same harness does see a request to the Space when the input is good."""
    client = QVQClient(token=TOKEN, space="Qwen/QVQ-72B-preview", max_retries=0)
    with pytest.raises(APIConnectionError):  # the mock refuses the Space
        client.complete("hi", images=IMAGE_HOST + "/cat.png")
    client.close()
    assert space_requests(image_host) == ["https://qwen-qvq-72b-preview.hf.space/config"]
