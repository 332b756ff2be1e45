"""qvq_sdk._messages.parse_messages: messages → one prompt and the images they carry."""

from collections import OrderedDict

import pytest

from qvq_sdk._messages import flatten, parse_messages
from qvq_sdk.errors import InputError

URL = "https://example.com/cat.png"


def text_part(text):
    return {"type": "text", "text": text}


def image_part(url=URL):
    return {"type": "image_url", "image_url": {"url": url}}


@pytest.mark.parametrize(
    "messages, prompt, images",
    [
        pytest.param("What is this?", "What is this?", [], id="str"),
        pytest.param("  padded  ", "  padded  ", [], id="str-kept-as-is"),
        pytest.param([{"role": "user", "content": "Hi"}], "Hi", [], id="one-message"),
        pytest.param([{"role": "system", "content": "Only this"}], "Only this", [], id="one-system-message"),
        pytest.param(({"role": "user", "content": "Hi"},), "Hi", [], id="tuple"),
        pytest.param([OrderedDict([("role", "user"), ("content", "Hi")])], "Hi", [], id="mapping"),
        pytest.param(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "What is 2+2?"},
            ],
            "System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: What is 2+2?\nAssistant:",
            [],
            id="conversation",
        ),
        pytest.param(
            [{"role": "user", "content": [text_part("Describe"), image_part(), text_part("briefly")]}],
            "Describe\nbriefly",
            [URL],
            id="parts",
        ),
        pytest.param(
            [{"role": "user", "content": [image_part("data:image/png;base64,AAAA"), text_part("What?")]}],
            "What?",
            ["data:image/png;base64,AAAA"],
            id="data-uri-part",
        ),
        pytest.param(
            [
                {"role": "user", "content": [image_part()]},
                {"role": "user", "content": "What is it?"},
            ],
            "User: What is it?\nAssistant:",
            [URL],
            id="image-only-message-in-conversation",
        ),
        pytest.param(
            [
                {"role": "system", "content": [text_part("Be brief.")]},
                {"role": "user", "content": [text_part("Look"), image_part()]},
            ],
            "System: Be brief.\nUser: Look\nAssistant:",
            [URL],
            id="conversation-with-parts",
        ),
        pytest.param(
            [{"role": "user", "content": "line one\nline two", "name": "ignored"}],
            "line one\nline two",
            [],
            id="extra-keys",
        ),
    ],
)
def test_parse_messages(messages, prompt, images):
    assert flatten(parse_messages(messages)) == (prompt, images)


def test_two_image_parts_are_both_returned():
    # Refusing more than one image is the client's job, which names both.
    prompt, images = flatten(
        parse_messages([{"role": "user", "content": [image_part("a.png"), text_part("Compare"), image_part("b.png")]}])
    )
    assert prompt == "Compare"
    assert images == ["a.png", "b.png"]


@pytest.mark.parametrize(
    "messages, where",
    [
        pytest.param(None, "messages", id="none"),
        pytest.param("", "messages", id="empty-str"),
        pytest.param("  \n ", "messages", id="blank-str"),
        pytest.param([], "messages", id="empty-list"),
        pytest.param((), "messages", id="empty-tuple"),
        pytest.param({"role": "user", "content": "Hi"}, "messages", id="one-dict-not-in-a-list"),
        pytest.param(42, "messages", id="number"),
        pytest.param(["Hi"], "messages[0]", id="str-message"),
        pytest.param([{"role": "user", "content": "Hi"}, None], "messages[1]", id="none-message"),
        pytest.param([{"role": "robot", "content": "Hi"}], "messages[0]", id="bad-role"),
        pytest.param([{"role": "User", "content": "Hi"}], "messages[0]", id="capitalised-role"),
        pytest.param([{"content": "Hi"}], "messages[0]", id="no-role"),
        pytest.param([{"role": "user"}], "messages[0]", id="missing-content"),
        pytest.param([{"role": "user", "content": None}], "messages[0].content", id="none-content"),
        pytest.param([{"role": "user", "content": 42}], "messages[0].content", id="number-content"),
        pytest.param([{"role": "user", "content": b"Hi"}], "messages[0].content", id="bytes-content"),
        pytest.param([{"role": "user", "content": ""}], "messages[0].content", id="empty-content"),
        pytest.param([{"role": "user", "content": "   "}], "messages[0].content", id="blank-content"),
        pytest.param([{"role": "user", "content": []}], "messages[0].content", id="no-parts"),
        pytest.param([{"role": "user", "content": [text_part(" ")]}], "messages[0].content", id="only-blank-text-part"),
        pytest.param([{"role": "user", "content": ["Hi"]}], "messages[0].content[0]", id="str-part"),
        pytest.param([{"role": "user", "content": [None]}], "messages[0].content[0]", id="none-part"),
        pytest.param(
            [{"role": "user", "content": [text_part("a"), {"text": "b"}]}],
            "messages[0].content[1]",
            id="part-without-type",
        ),
        pytest.param(
            [{"role": "user", "content": [{"type": "audio", "audio": "x.wav"}]}],
            "messages[0].content[0]",
            id="unknown-part-type",
        ),
        pytest.param(
            [{"role": "user", "content": [{"type": "text", "text": 5}]}], "messages[0].content[0]", id="text-not-str"
        ),
        pytest.param(
            [{"role": "user", "content": [{"type": "text"}]}], "messages[0].content[0]", id="text-part-without-text"
        ),
        pytest.param(
            [{"role": "user", "content": [{"type": "image_url"}]}], "messages[0].content[0]", id="image-without-url"
        ),
        pytest.param(
            [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
            "messages[0].content[0]",
            id="image-url-without-url",
        ),
        pytest.param(
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": ""}}]}],
            "messages[0].content[0]",
            id="image-empty-url",
        ),
        pytest.param(
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 5}}]}],
            "messages[0].content[0]",
            id="image-url-not-str",
        ),
        pytest.param(
            [{"role": "user", "content": "ok"}, {"role": "user", "content": [text_part("a"), 7]}],
            "messages[1].content[1]",
            id="second-message-bad-part",
        ),
    ],
)
def test_bad_messages(messages, where):
    with pytest.raises(InputError) as info:
        parse_messages(messages)
    assert info.value.input == where
    assert where.split(".")[0] in str(info.value)  # the message names the message at fault
    assert isinstance(info.value, ValueError)
