"""qvq_sdk._chunks: the str chunks of chat() made from a chat's events: text as str, a rewrite as
Rewrite, reasoning as Reasoning, the Space's log messages on the qvq_sdk logger (redacted), a
warning for an answer cut at max_tokens, and the events' generator closed with the chunks'."""

from __future__ import annotations

import logging

import pytest

from qvq_sdk._chunks import Reasoning, Rewrite, text_chunks
from qvq_sdk._events import (
    Done,
    ProcessingStarted,
    Progress,
    QueuePosition,
    ReasoningUpdate,
    SpaceLog,
    TextBuffer,
    TextUpdate,
    WakingUp,
    new_text_update,
)


def no_redact(text):
    return text


def chunks(events, redact=no_redact):
    return list(text_chunks(iter_events(events), redact))


def iter_events(events):
    yield from events


def test_text_updates_are_plain_str_chunks():
    result = chunks([TextUpdate("Hel"), TextUpdate("lo"), Done("Hello")])
    assert result == ["Hel", "lo"]
    assert all(type(chunk) is str for chunk in result)


def test_a_rewrite_is_a_rewrite_chunk_holding_the_whole_new_text():
    result = chunks([TextUpdate("Thinking..."), TextUpdate("Answer: 42", replaced=True), TextUpdate("!")])
    assert result == ["Thinking...", "Answer: 42", "!"]
    assert [type(chunk) for chunk in result] == [str, Rewrite, str]
    assert repr(result[1]) == "Rewrite('Answer: 42')"


def test_an_empty_rewrite_is_kept_and_an_empty_delta_dropped():
    result = chunks([TextUpdate("a"), TextUpdate(""), TextUpdate("", replaced=True)])
    assert result == ["a", ""]
    assert type(result[1]) is Rewrite  # the Space cleared its text: the caller must know


def test_reasoning_is_a_reasoning_chunk_before_the_answer():
    events = [ReasoningUpdate("Let me "), ReasoningUpdate(""), ReasoningUpdate("look."), TextUpdate("42")]
    result = chunks(events)
    assert result == ["Let me ", "look.", "42"]
    assert [type(chunk) for chunk in result] == [Reasoning, Reasoning, str]
    assert repr(result[0]) == "Reasoning('Let me ')"
    assert "".join(result) == "Let me look.42"


def test_the_decoders_fast_text_updates_are_text_updates_too():
    buffer = TextBuffer()
    buffer.append("x")
    assert chunks([new_text_update("x", False, buffer)]) == ["x"]


def test_other_events_make_no_chunk():
    events = [
        WakingUp("SLEEPING", 1.0),
        QueuePosition(1, 2, 3.0),
        ProcessingStarted(None),
        Progress(0.5, None, None, None, "Thinking"),
        TextUpdate("a"),
        Done("a"),
    ]
    assert chunks(events) == ["a"]


def test_the_space_s_messages_go_to_the_logger_redacted(caplog):
    caplog.set_level(logging.DEBUG, logger="qvq_sdk")
    events = [
        SpaceLog("warning", "GPU quota low for hf_secret", "Warning"),
        SpaceLog("info", "Loading", "Please wait"),
        SpaceLog("error", "boom", None),
        SpaceLog("whatever", "new level", None),
        TextUpdate("a"),
    ]
    assert chunks(events, lambda text: text.replace("hf_secret", "hf_***")) == ["a"]
    records = [record for record in caplog.records if record.name == "qvq_sdk"]
    assert [(record.levelno, record.getMessage()) for record in records] == [
        (logging.WARNING, "the Space's warning: GPU quota low for hf_***"),  # its title is its level: not repeated
        (logging.INFO, "the Space's info: Please wait: Loading"),
        (logging.ERROR, "the Space's error: boom"),
        (logging.INFO, "the Space's whatever: new level"),
    ]
    assert records[0].qvq_event == events[0]


def test_the_space_s_messages_below_the_logger_s_level_cost_nothing(caplog):
    caplog.set_level(logging.ERROR, logger="qvq_sdk")
    redacted = []

    def redact(text):
        redacted.append(text)
        return text

    chunks([SpaceLog("info", "quiet", None)], redact)
    assert redacted == [] and not caplog.records


@pytest.mark.parametrize("finish_reason, warned", [("length", True), ("stop", False), (None, False)])
def test_an_answer_cut_at_max_tokens_is_a_warning(caplog, finish_reason, warned):
    caplog.set_level(logging.DEBUG, logger="qvq_sdk")
    assert chunks([TextUpdate("abc"), Done("abc", finish_reason=finish_reason)]) == ["abc"]
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    if warned:
        assert [record.getMessage() for record in warnings] == [
            "the answer was cut at max_tokens (finish_reason 'length'): 3 characters; raise max_tokens for all of it"
        ]
    else:
        assert warnings == []


def test_closing_the_chunks_closes_the_events():
    closed = []

    def events():
        try:
            yield TextUpdate("a")
            yield TextUpdate("b")
        finally:
            closed.append(True)

    inner = events()  # held here: closed by text_chunks, not by the garbage collector
    generator = text_chunks(inner, no_redact)
    assert next(generator) == "a"
    generator.close()
    assert closed == [True]


def test_an_error_of_the_events_reaches_the_caller_and_closes_them():
    closed = []

    def events():
        try:
            yield TextUpdate("a")
            raise RuntimeError("the stream broke")
        finally:
            closed.append(True)

    generator = text_chunks(events(), no_redact)
    assert next(generator) == "a"
    with pytest.raises(RuntimeError, match="the stream broke"):
        next(generator)
    assert closed == [True]


def test_the_chunk_classes_are_str():
    assert isinstance(Rewrite("x"), str) and isinstance(Reasoning("x"), str)
    assert Rewrite("x") == "x" and Reasoning("y") + "z" == "yz"
    with pytest.raises(AttributeError):
        Rewrite("x").note = 1  # __slots__: no per-chunk dict
