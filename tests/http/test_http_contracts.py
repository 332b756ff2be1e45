"""Contracts of the client that a review found broken (issue 10, section 4), and the Space's
messages reaching chat() and complete() users through logging (section 1):

- a chunk that replaces the text so far (``Rewrite``) is told from one that extends it;
- explicit arguments beat ``$QVQ_BASE_URL``;
- every public attribute set after construction takes effect (checked), or is refused;
- ``models``, ``vision_models`` and ``model_aliases`` cannot be changed in place;
- a closed client refuses a chat with one error and one message, wherever it is noticed;
- gr.Warning / gr.Info / gr.Success / error-level logs go to the ``qvq_sdk`` logger at
  WARNING / INFO / INFO / ERROR; nothing is printed.
"""

from __future__ import annotations

import logging

import pytest
import responses
from httpkit import ANSWER, BASE, HF_BASE, FakeSpace, calls_to, sse_data_lines

from qvq_sdk import APIConnectionError, InputError, QVQClient, Rewrite, ServiceUnavailableError, TextUpdate


def queue_stream(*outputs, final=None, extra=()):
    """A queue stream whose outputs are whole values (a str) or diffs (a list of edits)."""

    def body(event_id):
        messages = [{"msg": "process_starts", "event_id": event_id, "eta": None}, *extra]
        for output in outputs:
            messages.append(
                {"msg": "process_generating", "event_id": event_id, "output": {"data": [output]}, "success": True}
            )
        text = final if final is not None else outputs[-1]
        messages.append({"msg": "process_completed", "event_id": event_id, "output": {"data": [text]}, "success": True})
        messages.append({"msg": "close_stream", "event_id": None})
        return sse_data_lines(messages)

    return body


def answer_of(chunks):
    """What the README says the answer is: the last Rewrite and the chunks after it."""
    text = ""
    for chunk in chunks:
        text = chunk if isinstance(chunk, Rewrite) else text + chunk
    return text


# -- rewrites ----------------------------------------------------------------------------------------


def test_a_rewriting_chunk_is_a_rewrite_and_the_documented_join_gives_the_answer(rsps):
    FakeSpace(rsps).config().queue(queue_stream("Thinking...", [["replace", [], "Answer: 42"]]))
    chunks = list(QVQClient(base_url=BASE).chat("hi"))
    assert chunks == ["Thinking...", "Answer: 42"]
    assert [type(chunk) for chunk in chunks] == [str, Rewrite]
    assert answer_of(chunks) == "Answer: 42"
    assert repr(chunks[1]) == "Rewrite('Answer: 42')"


def test_an_appending_answer_has_no_rewrite_and_joins_to_the_answer(rsps):
    FakeSpace(rsps).config().queue()
    chunks = list(QVQClient(base_url=BASE).chat("hi"))
    assert not any(isinstance(chunk, Rewrite) for chunk in chunks)
    assert "".join(chunks) == ANSWER == answer_of(chunks)


def test_a_rewrite_that_extends_nothing_still_says_so_on_the_call_protocol(rsps):
    from httpkit import call_events

    FakeSpace(rsps).config().call(
        call_events(
            [
                ("generating", ["Thinking..."]),
                ("generating", ["Answer"]),
                ("generating", ["Answer: 42"]),
                ("complete", ["Answer: 42"]),
            ]
        )
    )
    chunks = list(QVQClient(base_url=BASE, protocol="call").chat("hi"))
    assert chunks == ["Thinking...", "Answer", ": 42"]
    assert [isinstance(chunk, Rewrite) for chunk in chunks] == [False, True, False]
    assert answer_of(chunks) == "Answer: 42"


def test_a_rewrite_to_nothing_is_an_empty_rewrite(rsps):
    FakeSpace(rsps).config().queue(queue_stream("Thinking...", [["replace", [], ""]], final=""))
    chunks = list(QVQClient(base_url=BASE).chat("hi"))
    assert chunks == ["Thinking...", ""] and isinstance(chunks[1], Rewrite)
    assert answer_of(chunks) == ""


def test_rewrite_is_a_plain_str_to_everything_else():
    chunk = Rewrite("Answer: 42")
    assert isinstance(chunk, str) and chunk == "Answer: 42" and str(chunk) == "Answer: 42"
    assert type(str(chunk)) is str and "x" + chunk == "xAnswer: 42"


# -- explicit arguments beat the environment ------------------------------------------------------------


def test_an_explicit_space_beats_qvq_base_url_even_the_default_id(monkeypatch):
    monkeypatch.setenv("QVQ_BASE_URL", "http://127.0.0.1:9")
    assert QVQClient().base_url == "http://127.0.0.1:9"  # neither given: the environment
    explicit = QVQClient(space="Qwen/QVQ-72B-preview")
    assert explicit.base_url == HF_BASE and explicit.space == "Qwen/QVQ-72B-preview"
    assert QVQClient(space="someone/copy").base_url == "https://someone-copy.hf.space"
    assert QVQClient(base_url="http://127.0.0.1:7860").base_url == "http://127.0.0.1:7860"


def test_space_and_base_url_together_keep_both(monkeypatch):
    monkeypatch.setenv("QVQ_BASE_URL", "http://127.0.0.1:9")
    client = QVQClient(space="someone/copy", base_url="http://127.0.0.1:7860")
    assert (client.base_url, client.space) == ("http://127.0.0.1:7860", "someone/copy")
    assert QVQClient(base_url="http://127.0.0.1:7860").space is None
    with pytest.raises(InputError):
        QVQClient(space="not a space id", base_url="http://127.0.0.1:7860")


# -- attributes set later take effect, or are refused ------------------------------------------------


def test_max_retries_set_later_takes_effect(rsps, sleeps):
    rsps.add(responses.GET, BASE + "/config", status=503, body="busy")
    client = QVQClient(base_url=BASE)
    client.max_retries = 0
    with pytest.raises(ServiceUnavailableError):
        client.complete("hi")
    assert len(calls_to(rsps, "GET", "/config")) == 1 and sleeps == []
    client.max_retries = 3
    with pytest.raises(ServiceUnavailableError):
        client.complete("hi")
    assert len(calls_to(rsps, "GET", "/config")) == 1 + 4


def test_timeout_set_later_takes_effect_on_every_request(rsps):
    FakeSpace(rsps).config().queue()
    client = QVQClient(base_url=BASE)
    client.timeout = (3, 7.5)
    assert client.timeout == (3.0, 7.5)
    assert client.complete("hi") == ANSWER
    assert [call.request.req_kwargs["timeout"] for call in rsps.calls] == [(3.0, 7.5)] * 3
    client.timeout = 12
    assert client.timeout == (12.0, 12.0)


def test_protocol_and_deadline_set_later_apply_to_the_next_chat(rsps):
    FakeSpace(rsps).config().call()
    client = QVQClient(base_url=BASE)
    client.protocol = "call"
    client.deadline = 30
    client.wake_timeout = None
    assert (client.protocol, client.deadline, client.wake_timeout) == ("call", 30.0, None)
    assert client.complete("hi") == ANSWER
    assert calls_to(rsps, "POST", "/gradio_api/call/generate")


@pytest.mark.parametrize(
    "name, value",
    [
        ("timeout", 0),
        ("timeout", (1, 2, 3)),
        ("timeout", "10"),
        ("max_retries", -1),
        ("max_retries", 1.5),
        ("max_retries", True),
        ("deadline", 0),
        ("deadline", float("inf")),
        ("wake_timeout", -1),
        ("wake_timeout", "5"),
        ("protocol", "websocket"),
    ],
)
def test_a_bad_value_set_later_is_refused_and_the_old_one_kept(name, value):
    client = QVQClient(base_url=BASE)
    before = getattr(client, name)
    with pytest.raises(InputError) as info:
        setattr(client, name, value)
    assert info.value.input == name
    assert getattr(client, name) == before


@pytest.mark.parametrize("name", ["base_url", "space"])
def test_the_address_cannot_change_once_the_client_is_made(name):
    client = QVQClient(space="someone/copy")
    with pytest.raises(AttributeError) as info:
        setattr(client, name, "http://elsewhere.example")
    assert "new QVQClient" in str(info.value)
    assert (client.base_url, client.space) == ("https://someone-copy.hf.space", "someone/copy")


# -- immutable class attributes --------------------------------------------------------------------


def test_the_model_lists_and_aliases_cannot_be_changed_in_place():
    assert QVQClient.models == ("qwen-qvq-72b-preview", "qvq-72b")
    assert QVQClient.vision_models == QVQClient.models
    for listed in (QVQClient.models, QVQClient.vision_models):
        with pytest.raises((TypeError, AttributeError)):
            listed.append("gpt-4")  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        QVQClient.model_aliases["gpt-4"] = "qwen-qvq-72b-preview"  # type: ignore[index]
    assert dict(QVQClient.model_aliases) == {"qvq-72b": "qwen-qvq-72b-preview"}


# -- a closed client: one error, one message -------------------------------------------------------


def test_a_closed_client_refuses_with_one_error_and_one_message(rsps):
    FakeSpace(rsps).config().queue()
    client = QVQClient(base_url=BASE)
    made_before = client.chat("made before close")
    client.close()
    with pytest.raises(APIConnectionError) as at_the_call:
        client.chat("made after close")
    with pytest.raises(APIConnectionError) as when_iterated:
        list(made_before)
    with pytest.raises(APIConnectionError) as complete:
        client.complete("hi")
    assert type(at_the_call.value) is type(when_iterated.value) is type(complete.value) is APIConnectionError
    assert str(at_the_call.value) == str(when_iterated.value) == str(complete.value)
    assert "closed" in str(at_the_call.value)
    assert len(rsps.calls) == 0


# -- the Space's messages through logging ----------------------------------------------------------

LOGS = [
    {"msg": "log", "log": "Image was resized to 1024 px", "level": "warning", "title": "Warning"},
    {"msg": "log", "log": "Model loaded", "level": "info", "title": "Info"},
    {"msg": "log", "log": "Saved", "level": "success", "title": "Done!"},
    {"msg": "log", "log": "Tool failed, going on", "level": "error", "title": "Error"},
]


def with_logs(event_id):
    messages = [dict(m, event_id=event_id) for m in LOGS]
    return queue_stream("Hel", [["append", [], "lo world"]], final=ANSWER, extra=messages)(event_id)


@pytest.mark.parametrize("call", ["chat", "complete"])
def test_the_spaces_messages_reach_the_qvq_sdk_logger(rsps, caplog, capsys, call):
    caplog.set_level(logging.DEBUG, logger="qvq_sdk")
    FakeSpace(rsps).config().queue(with_logs)
    client = QVQClient(base_url=BASE)
    answer = "".join(client.chat("hi")) if call == "chat" else client.complete("hi")
    assert answer == ANSWER
    said = [(r.levelno, r.getMessage()) for r in caplog.records if getattr(r, "qvq_event", None) is not None]
    assert said == [
        (logging.WARNING, "the Space's warning: Image was resized to 1024 px"),
        (logging.INFO, "the Space's info: Model loaded"),
        (logging.INFO, "the Space's success: Done!: Saved"),
        (logging.ERROR, "the Space's error: Tool failed, going on"),
    ]
    assert all(r.name == "qvq_sdk" for r in caplog.records)
    assert capsys.readouterr() == ("", "")  # nothing printed by the library


def test_events_users_get_the_messages_as_events_not_log_lines(rsps, caplog):
    caplog.set_level(logging.DEBUG, logger="qvq_sdk")
    FakeSpace(rsps).config().queue(with_logs)
    events = list(QVQClient(base_url=BASE).events("hi"))
    assert [e.level for e in events if type(e).__name__ == "SpaceLog"] == ["warning", "info", "success", "error"]
    assert not [r for r in caplog.records if getattr(r, "qvq_event", None) is not None]
    assert any(isinstance(e, TextUpdate) for e in events)


def test_a_space_message_echoing_the_token_is_logged_without_it(rsps, caplog):
    token = "hf_LoggedTokenMustNotAppear0123456789"
    caplog.set_level(logging.DEBUG)
    echo = [{"msg": "log", "log": "token " + token + " is wrong", "level": "warning", "title": None}]

    def body(event_id):
        return queue_stream("Hello world", extra=[dict(m, event_id=event_id) for m in echo])(event_id)

    FakeSpace(rsps).config().queue(body)
    assert QVQClient(token=token, base_url=BASE).complete("hi") == ANSWER
    assert any("hf_***" in r.getMessage() for r in caplog.records)
    assert all(token not in r.getMessage() for r in caplog.records)
