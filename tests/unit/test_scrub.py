"""qvq_sdk._scrub.scrub: the finished frames an error's traceback passed through lose their
local variables (along ``__cause__`` and ``__context__``), the frames still running keep
theirs, and a context hidden on purpose (``raise ... from None``) is dropped."""

from __future__ import annotations

import traceback

import pytest

from qvq_sdk._scrub import scrub

SECRET = "hf_UnitScrubSecret0123456789"


def frames(error):
    """(function name, its locals) of each frame of the error's traceback, outermost first."""
    found = []
    tb = error.__traceback__
    while tb is not None:
        found.append((tb.tb_frame.f_code.co_name, dict(tb.tb_frame.f_locals)))
        tb = tb.tb_next
    return found


def locals_of(error, name):
    return [values for function, values in frames(error) if function == name]


def send(headers):
    request = {"headers": headers, "body": b"..."}
    raise ConnectionError("reset: %d headers" % len(request))


def transport(headers):
    """Raises an error whose cause went through a frame holding the secret."""
    try:
        send(headers)
    except ConnectionError as exc:
        raise RuntimeError("could not talk to the server") from exc


def test_finished_frames_lose_their_locals_the_running_frame_keeps_its_own():
    here = "the caller's own local"
    with pytest.raises(RuntimeError) as info:
        transport({"Authorization": "Bearer " + SECRET})
    error = info.value
    assert locals_of(error.__cause__, "send")[0]["headers"]  # before: the secret is there
    scrub(error)
    assert locals_of(error, "transport") == [{}]
    assert locals_of(error.__cause__, "send") == [{}]
    assert locals_of(error.__cause__, "transport") == [{}]
    # This test's frame was running: it keeps its locals, and nothing else was touched.
    assert here == "the caller's own local" and error.__cause__ is not None
    ours = locals_of(error, "test_finished_frames_lose_their_locals_the_running_frame_keeps_its_own")
    assert ours and ours[0]["here"] == "the caller's own local"
    text = "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())
    assert SECRET not in text and "the caller's own local" in text


def test_the_frames_of_an_implicit_context_are_cleared_and_the_context_kept():
    def fails():
        headers = {"Authorization": "Bearer " + SECRET}
        raise ValueError("not JSON: %d" % len(headers))

    def decode():
        try:
            fails()
        except ValueError:
            raise KeyError("no event_id")  # noqa: B904 - the implicit context is the point

    with pytest.raises(KeyError) as info:
        decode()
    error = info.value
    context = error.__context__
    assert isinstance(context, ValueError) and not error.__suppress_context__
    scrub(error)
    assert error.__context__ is context  # kept: it says what happened
    assert locals_of(context, "fails") == [{}]


def test_a_context_hidden_on_purpose_is_dropped():
    """``raise ... from None`` hid the context (e.g. a JSON decoder's error, whose ``.doc``
    is what the server sent): scrub forgets it, so a tracker walking ``__context__`` cannot
    find it."""

    def decode():
        try:
            raise ValueError("Expecting value", "Bearer " + SECRET)
        except ValueError:
            raise RuntimeError("the server's answer is not JSON") from None

    with pytest.raises(RuntimeError) as info:
        decode()
    error = info.value
    assert error.__context__ is not None and error.__suppress_context__
    scrub(error)
    assert error.__context__ is None and error.__cause__ is None


def test_a_chain_that_loops_ends():
    first = ValueError("first")
    second = KeyError("second")
    first.__context__ = second
    second.__context__ = first
    scrub(first)  # returns
    scrub(ValueError("never raised: no traceback"))


def test_a_suspended_generator_in_the_chain_is_left_running():
    """A generator that caught an error and is suspended (its frame is in that error's
    traceback) is still running: the caller's, not the SDK's. An SDK error raised while the
    caller handles that error has it as ``__context__``; scrubbing the SDK error must not
    finalize the caller's generator (``frame.clear()`` on a suspended generator's frame
    closes the generator)."""

    def producer():
        try:
            raise ValueError("the caller's own failure")
        except ValueError as exc:
            caught = exc
        yield caught
        yield "the rest of the caller's work"

    work = producer()
    callers_error = next(work)
    try:
        try:
            raise callers_error
        except ValueError:
            raise RuntimeError("the SDK failed while the caller handled its own error")  # noqa: B904
    except RuntimeError as error:
        scrub(error)
    assert list(work) == ["the rest of the caller's work"]
