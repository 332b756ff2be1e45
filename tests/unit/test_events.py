"""qvq_sdk._events: the typed events, and the lazily joined text behind TextUpdate."""

import dataclasses

import pytest

from qvq_sdk._events import Done, ProcessingStarted, QueuePosition, TextBuffer, TextUpdate


def test_text_buffer_starts_empty_or_with_text():
    assert TextBuffer().text() == ""
    assert TextBuffer().count == 0
    assert TextBuffer("abc").text() == "abc"
    assert TextBuffer("abc").count == 1


def test_text_buffer_text_at_any_count():
    buffer = TextBuffer("a")
    for piece in ["b", "cd", "", "e"]:
        buffer.append(piece)
    assert buffer.count == 5
    assert [buffer.text(count) for count in range(6)] == ["", "a", "ab", "abcd", "abcd", "abcde"]
    # Asking out of order (after the join cache moved on) still answers right.
    assert buffer.text(2) == "ab"
    assert buffer.text() == "abcde"
    buffer.append("f")
    assert buffer.text(3) == "abcd"
    assert buffer.text() == "abcdef"


def test_text_update_is_lazy():
    joins = []

    class Spy(TextBuffer):
        __slots__ = ()

        def text(self, count=None):
            joins.append(count)
            return TextBuffer.text(self, count)

    buffer = Spy()
    updates = []
    for piece in ["one", " two", " three"]:
        buffer.append(piece)
        updates.append(TextUpdate(piece, buffer=buffer))
    assert joins == []  # making updates joins nothing
    assert updates[1].text == "one two"
    assert joins == [2]


def test_text_update_text_is_the_whole_text_at_its_time():
    buffer = TextBuffer()
    updates = []
    for piece in ["The", " cat", " sat"]:
        buffer.append(piece)
        updates.append(TextUpdate(piece, buffer=buffer))
    buffer.append(" down")  # later text does not change earlier updates
    assert [update.text for update in updates] == ["The", "The cat", "The cat sat"]
    assert [update.text for update in reversed(updates)] == ["The cat sat", "The cat", "The"]


def test_text_update_without_buffer_is_its_delta():
    update = TextUpdate("whole new text", replaced=True)
    assert update.text == "whole new text"
    assert update.replaced is True
    assert TextUpdate("").text == ""
    assert TextUpdate("x").replaced is False


def test_text_update_equality_and_hash():
    buffer = TextBuffer("ab")
    buffer.append("c")
    same_text = TextUpdate("c", buffer=buffer)
    assert same_text == TextUpdate("c", buffer=buffer)
    assert hash(same_text) == hash(TextUpdate("c", buffer=buffer))
    assert same_text != TextUpdate("c")  # same delta, other text so far
    assert TextUpdate("c") != TextUpdate("c", replaced=True)
    assert TextUpdate("c") != TextUpdate("d")
    assert TextUpdate("c") != "c"
    assert {TextUpdate("x"), TextUpdate("x")} == {TextUpdate("x")}


def test_text_update_repr():
    assert repr(TextUpdate("hi\n", replaced=True)) == "TextUpdate(delta='hi\\n', replaced=True)"
    assert repr(TextUpdate("")) == "TextUpdate(delta='', replaced=False)"


def test_text_update_has_no_instance_dict():
    with pytest.raises(AttributeError):
        TextUpdate("x").other = 1  # __slots__ keep many updates small


@pytest.mark.parametrize(
    "event, field, value",
    [
        (QueuePosition(rank=0, queue_size=1, eta=0.5), "rank", 3),
        (ProcessingStarted(eta=None), "eta", 1.0),
        (Done("text"), "text", "other"),
    ],
)
def test_events_are_frozen_values(event, field, value):
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(event, field, value)
    assert event == dataclasses.replace(event)
    assert event != dataclasses.replace(event, **{field: value})


def test_done_repr_shows_text():
    assert repr(Done("hi")) == "Done(text='hi')"
