"""qvq_sdk._events: the typed events, and the lazily joined text behind TextUpdate."""

import copy
import dataclasses
import logging
import pickle

import pytest

from qvq_sdk import _events
from qvq_sdk._events import (
    Done,
    Event,
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


@pytest.mark.parametrize("name", ["delta", "replaced", "text", "_buffer", "_count", "other"])
@pytest.mark.parametrize(
    "make",
    [
        lambda: TextUpdate("x"),
        lambda: TextUpdate("x", replaced=True, buffer=TextBuffer("x")),
        lambda: new_text_update("x", False, TextBuffer("x")),  # the decoders' fast way
    ],
)
def test_text_update_is_immutable(make, name):
    update = make()
    with pytest.raises(dataclasses.FrozenInstanceError):  # as the frozen dataclasses raise
        setattr(update, name, "changed")
    with pytest.raises(dataclasses.FrozenInstanceError):
        delattr(update, name)
    assert (update.delta, update.text) == ("x", "x")


def test_new_text_update_is_a_plain_text_update():
    buffer = TextBuffer("ab")
    buffer.append("c")
    fast = new_text_update("c", False, buffer)
    assert type(fast) is TextUpdate
    assert fast == TextUpdate("c", buffer=buffer)
    assert (fast.delta, fast.replaced, fast.text) == ("c", False, "abc")
    buffer.append("d")
    assert fast.text == "abc"  # its count was taken when it was made
    assert new_text_update("new", True, TextBuffer("new")).replaced is True


@pytest.mark.parametrize("clone", [copy.copy, copy.deepcopy, lambda u: pickle.loads(pickle.dumps(u))])
def test_text_update_copies_keep_delta_and_text(clone):
    buffer = TextBuffer("Hel")
    buffer.append("lo")
    update = TextUpdate("lo", buffer=buffer)
    copied = clone(update)
    assert type(copied) is TextUpdate
    assert copied == update
    assert (copied.delta, copied.replaced, copied.text) == ("lo", False, "Hello")
    with pytest.raises(dataclasses.FrozenInstanceError):
        copied.delta = "x"


@pytest.mark.parametrize(
    "event, field, value",
    [
        (QueuePosition(rank=0, queue_size=1, eta=0.5), "rank", 3),
        (ProcessingStarted(eta=None), "eta", 1.0),
        (Done("text"), "text", "other"),
        (SpaceLog("warning", "Image was resized", "Warning"), "message", "other"),
        (Progress(progress=0.5, index=None, length=None, unit="steps", desc="Thinking"), "progress", 0.75),
        (WakingUp("APP_STARTING", 3.0), "stage", "RUNNING"),
    ],
)
def test_events_are_frozen_values(event, field, value):
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(event, field, value)
    assert event == dataclasses.replace(event)
    assert event != dataclasses.replace(event, **{field: value})


def test_done_repr_shows_text():
    assert repr(Done("hi")) == "Done(text='hi', reasoning='', finish_reason=None, usage=None)"


@pytest.mark.parametrize(
    "level, expected",
    [
        ("warning", logging.WARNING),
        ("info", logging.INFO),
        ("success", logging.INFO),
        ("error", logging.ERROR),
        ("debug", logging.INFO),  # a level this version does not know
        ("", logging.INFO),
    ],
)
def test_space_log_level(level, expected):
    assert SpaceLog(level, "message", None).log_level == expected


def test_space_log_repr_says_what_it_is():
    assert (
        repr(SpaceLog("warning", "Image was resized", "Warning"))
        == "SpaceLog(level='warning', message='Image was resized', title='Warning')"
    )
    assert "level='error'" in repr(SpaceLog("error", "Oops", None))


@pytest.mark.parametrize(
    "progress, index, length, fraction",
    [
        (0.25, None, None, 0.25),
        (0.25, 9, 10, 0.25),  # progress wins
        (None, 2, 8, 0.25),  # tqdm-style
        (None, 3, None, None),  # steps of unknown count
        (None, 3, 0, None),
        (None, None, None, None),
        (0.0, None, None, 0.0),
    ],
)
def test_progress_fraction(progress, index, length, fraction):
    assert Progress(progress, index, length, "steps", None).fraction == fraction


def test_progress_and_waking_up_reprs():
    assert repr(Progress(0.5, None, None, "steps", "Thinking")) == (
        "Progress(progress=0.5, index=None, length=None, unit='steps', desc='Thinking')"
    )
    assert repr(WakingUp("SLEEPING", 1.5)) == "WakingUp(stage='SLEEPING', waited=1.5)"


def test_event_union_and_all_name_every_event():
    events = {Done, ProcessingStarted, Progress, QueuePosition, ReasoningUpdate, SpaceLog, TextUpdate, WakingUp}
    assert set(Event.__args__) == events
    assert set(_events.__all__) == {cls.__name__ for cls in events} | {"Event", "Usage"}
    for name in _events.__all__:
        assert name in _events.__doc__ or name == "Event", name
