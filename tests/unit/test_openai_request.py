"""qvq_sdk._request.prepare and qvq_sdk._openai.request_body for protocol="openai": the JSON a
chat sends. Roles kept, text and image parts in their place, every image a data: URI,
``images=`` in the last user message, the model and its aliases, the generation options, and
an InputError naming the input for each bad one; no network."""

from __future__ import annotations

import base64
import json

import pytest
from image_samples import BMP, GIF, JPEG, PNG, SAMPLES, WEBP

from qvq_sdk import InputError, QVQClient
from qvq_sdk._cancel import CancelToken
from qvq_sdk._deadline import Deadline
from qvq_sdk._gradio import RULES as SPACE_RULES
from qvq_sdk._openai import RULES, model_to_send, request_body
from qvq_sdk._request import check_generation, prepare


def no_fetch(url, where):
    raise AssertionError("nothing is fetched here (%s)" % url)


def body(messages, images=None, model=None, fetch=no_fetch, rules=RULES, **options):
    """The JSON body the chat would send (round-tripped through json, as on the wire)."""
    generation = check_generation(options.get("max_tokens"), options.get("temperature"), options.get("extra_body"))
    request = prepare(rules, messages, images, model, generation, Deadline(None), CancelToken(), fetch)
    return json.loads(json.dumps(request_body(request), allow_nan=False))


def data_uri(mime_type, data):
    return "data:%s;base64,%s" % (mime_type, base64.b64encode(data).decode("ascii"))


def image_part(mime_type, data):
    return {"type": "image_url", "image_url": {"url": data_uri(mime_type, data)}}


def text_part(text):
    return {"type": "text", "text": text}


# -- the body ---------------------------------------------------------------------------------------


def test_a_prompt_is_one_user_message_in_a_streaming_request_that_asks_for_usage():
    assert body("What is 2+2?") == {
        "model": "Qwen/QVQ-72B-Preview",
        "messages": [{"role": "user", "content": "What is 2+2?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_a_conversation_keeps_its_roles_and_its_order():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Again"},
    ]
    assert body(messages)["messages"] == messages


def test_text_parts_stay_parts_and_images_become_data_uris_in_their_place(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(JPEG)
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": str(path)}},
                {"type": "text", "text": "and"},
                {"type": "image_url", "image_url": data_uri("image/gif", GIF)},  # the bare-string form
                {"type": "text", "text": "which is larger?"},
            ],
        }
    ]
    assert body(messages)["messages"][0]["content"] == [
        image_part("image/jpeg", JPEG),
        text_part("and"),
        image_part("image/gif", GIF),
        text_part("which is larger?"),
    ]


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_each_format_gets_its_mime_type(kind):
    data, _, mime_type = SAMPLES[kind]
    (part,) = [p for p in body("x", images=data)["messages"][0]["content"] if p["type"] == "image_url"]
    assert part == image_part(mime_type, data)


def test_a_data_uri_given_is_sent_as_a_data_uri_of_the_same_bytes():
    quoted = "data:image/png," + "".join("%%%02X" % byte for byte in PNG)  # percent-encoded, not base64
    content = body("x", images=[quoted])["messages"][0]["content"]
    assert content[1] == image_part("image/png", PNG)


def test_a_pil_image_becomes_a_png_data_uri():
    image_module = pytest.importorskip("PIL.Image")
    content = body("x", images=image_module.new("RGB", (3, 2), "blue"))["messages"][0]["content"]
    url = content[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")


def test_an_image_url_is_fetched_and_sent_as_a_data_uri():
    fetched = []

    def fetch(url, where):
        fetched.append((url, where))
        return WEBP

    content = body("x", images=["https://example.com/a.webp"], fetch=fetch)["messages"][0]["content"]
    assert fetched == [("https://example.com/a.webp", "images[0]")]
    assert content[1] == image_part("image/webp", WEBP)


# -- images= ------------------------------------------------------------------------------------------


def test_images_go_after_the_text_of_a_prompt_in_order():
    assert body("Compare", images=[PNG, GIF, BMP])["messages"] == [
        {
            "role": "user",
            "content": [
                text_part("Compare"),
                image_part("image/png", PNG),
                image_part("image/gif", GIF),
                image_part("image/bmp", BMP),
            ],
        }
    ]


def test_one_image_may_be_given_on_its_own():
    assert body("x", images=PNG)["messages"][0]["content"][1] == image_part("image/png", PNG)


def test_images_go_into_the_last_user_message_even_before_an_assistant_one():
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
        {"role": "assistant", "content": "(prefill)"},
    ]
    sent = body(messages, images=[PNG])["messages"]
    assert sent[0] == messages[0] and sent[1] == messages[1] and sent[3] == messages[3]
    assert sent[2] == {"role": "user", "content": [text_part("second"), image_part("image/png", PNG)]}


def test_images_go_after_the_parts_of_a_last_user_message_that_has_parts():
    messages = [{"role": "user", "content": [text_part("this"), image_part("image/gif", GIF), text_part("vs")]}]
    assert body(messages, images=PNG)["messages"][0]["content"] == [
        text_part("this"),
        image_part("image/gif", GIF),
        text_part("vs"),
        image_part("image/png", PNG),
    ]


def test_images_without_a_user_message_make_one_at_the_end():
    sent = body([{"role": "system", "content": "Describe what you are shown."}], images=[PNG, GIF])["messages"]
    assert sent == [
        {"role": "system", "content": "Describe what you are shown."},
        {"role": "user", "content": [image_part("image/png", PNG), image_part("image/gif", GIF)]},
    ]


def test_no_images_leave_a_messages_content_a_string():
    assert body("x", images=[])["messages"] == [{"role": "user", "content": "x"}]


def test_many_images_are_fine_here_but_not_on_a_space():
    assert len(body("x", images=[PNG] * 5)["messages"][0]["content"]) == 6
    with pytest.raises(InputError) as info:
        body("x", images=[PNG, GIF], rules=SPACE_RULES)
    assert info.value.input == "images" and 'protocol="openai"' in str(info.value)


@pytest.mark.parametrize(
    "images, where",
    [([PNG, b"not an image"], "images[1]"), ([b""], "images[0]"), (["/no/such/file.png"], "images[0]")],
)
def test_a_bad_image_is_an_input_error_naming_it(images, where):
    with pytest.raises(InputError) as info:
        body("x", images=images)
    assert info.value.input == where


# -- model and options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, sent",
    [
        (None, "Qwen/QVQ-72B-Preview"),
        ("qvq-72b", "Qwen/QVQ-72B-Preview"),
        ("qwen-qvq-72b-preview", "Qwen/QVQ-72B-Preview"),
        ("qvq-max", "qvq-max"),
        ("Qwen/QVQ-72B-Preview", "Qwen/QVQ-72B-Preview"),
        ("my-lora", "my-lora"),
    ],
)
def test_the_model_sent(given, sent):
    assert model_to_send(given) == sent
    assert body("x", model=given)["model"] == sent


@pytest.mark.parametrize("model", ["", "   ", 3, b"qvq", ["qvq"]])
def test_a_bad_model_is_an_input_error(model):
    with pytest.raises(InputError) as info:
        body("x", model=model)
    assert info.value.input == "model"


def test_the_generation_options_go_into_the_body():
    sent = body("x", max_tokens=128, temperature=1, extra_body={"top_p": 0.8, "chat_template_kwargs": {"a": [1, None]}})
    assert sent["max_tokens"] == 128
    assert sent["temperature"] == 1.0 and isinstance(sent["temperature"], float)
    assert sent["top_p"] == 0.8 and sent["chat_template_kwargs"] == {"a": [1, None]}


def test_options_not_given_are_not_sent():
    sent = body("x")
    assert not {"max_tokens", "temperature", "top_p"} & set(sent)


def test_a_temperature_of_zero_is_sent():
    assert body("x", temperature=0.0)["temperature"] == 0.0


def test_extra_body_is_copied_when_checked():
    extra = {"top_p": 0.5}
    generation = check_generation(None, None, extra)
    extra["top_p"] = 0.9
    extra["seed"] = 1
    request = prepare(RULES, "x", None, None, generation, Deadline(None), CancelToken(), no_fetch)
    sent = request_body(request)
    assert sent["top_p"] == 0.5 and "seed" not in sent


@pytest.mark.parametrize(
    "option, value",
    [
        ("max_tokens", 0),
        ("max_tokens", -5),
        ("max_tokens", True),
        ("max_tokens", 1.5),
        ("max_tokens", "100"),
        ("temperature", -0.1),
        ("temperature", float("nan")),
        ("temperature", float("inf")),
        ("temperature", True),
        ("temperature", "0.7"),
        ("extra_body", ["top_p", 0.5]),
        ("extra_body", "top_p=0.5"),
        ("extra_body", {1: "a"}),
        ("extra_body", {"bad": {1, 2}}),
        ("extra_body", {"nan": float("nan")}),
        ("extra_body", {"bytes": b"x"}),
    ],
)
def test_a_bad_option_is_an_input_error_naming_it(option, value):
    with pytest.raises(InputError) as info:
        body("x", **{option: value})
    assert info.value.input == option
    assert option in str(info.value)


@pytest.mark.parametrize("option", [{"max_tokens": 5}, {"temperature": 0.5}, {"extra_body": {}}])
def test_generation_options_are_refused_by_the_space_rules(option):
    with pytest.raises(InputError) as info:
        body("x", rules=SPACE_RULES, **option)
    (name,) = option
    assert info.value.input == name


def test_messages_that_are_not_acceptable_are_an_input_error_naming_them():
    with pytest.raises(InputError) as info:
        body([{"role": "user", "content": "ok"}, {"role": "tool", "content": "x"}])
    assert info.value.input == "messages[1]"
    with pytest.raises(InputError) as info:
        body([{"role": "user", "content": [{"type": "audio", "audio": "x"}]}])
    assert info.value.input == "messages[0].content[0]"


# -- the client's own checks -------------------------------------------------------------------------


def test_the_openai_protocol_needs_a_base_url_and_takes_no_space():
    with pytest.raises(InputError) as info:
        QVQClient("t", protocol="openai")
    assert info.value.input == "base_url"
    with pytest.raises(InputError):
        QVQClient("t", protocol="openai", base_url="http://127.0.0.1:9/v1", space="Qwen/QVQ-72B-preview")


def test_the_protocol_cannot_change_between_a_space_and_a_server():
    client = QVQClient("t", protocol="openai", base_url="http://127.0.0.1:9/v1")
    try:
        with pytest.raises(InputError) as info:
            client.protocol = "queue"
        assert info.value.input == "protocol"
        assert client.protocol == "openai"
    finally:
        client.close()


def test_extra_body_merges_stream_options_instead_of_replacing_them():
    sent = body("hi", extra_body={"stream_options": {"continuous_usage_stats": True}, "top_p": 0.5})
    assert sent["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    assert sent["top_p"] == 0.5 and sent["stream"] is True


@pytest.mark.parametrize("key", ["messages", "stream"])
def test_extra_body_cannot_take_over_the_messages_or_the_stream(key):
    with pytest.raises(InputError) as info:
        check_generation(None, None, {key: False})
    assert info.value.input == "extra_body" and key in str(info.value)


def test_extra_body_stream_options_must_be_a_dict():
    with pytest.raises(InputError):
        check_generation(None, None, {"stream_options": True})
